-- Invitations to join an organization: the token is sent to the invitee and stored only as
-- its SHA-256; accepting one makes (or reuses) the user with the invitation's email.
CREATE TABLE invitations (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email             TEXT NOT NULL,
    email_normalized  TEXT NOT NULL,
    role              TEXT NOT NULL,
    token_hash        TEXT NOT NULL UNIQUE,
    invited_by        TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    accepted_at       BIGINT,
    accepted_by       TEXT REFERENCES users (id) ON DELETE SET NULL,
    revoked_at        BIGINT
);
CREATE INDEX invitations_org ON invitations (org_id, created_at);

-- Admin API tokens: bearer tokens for scripts calling the admin API, acting with a role no
-- higher than their creator's (checked on every use), stored only as SHA-256 hashes.
CREATE TABLE admin_tokens (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_by      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    display_prefix  TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT,
    last_used_at    BIGINT,
    revoked_at      BIGINT
);
CREATE INDEX admin_tokens_org ON admin_tokens (org_id, created_at);

-- A latency histogram in every rollup row: requests per latency bucket (bounds in
-- tollgate_common::latency), from which analytics estimate percentiles.
ALTER TABLE usage_rollups ADD COLUMN latency_b00 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b01 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b02 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b03 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b04 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b05 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b06 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b07 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b08 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b09 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b10 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b11 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b12 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b13 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b14 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b15 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b16 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b17 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b18 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b19 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b20 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b21 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b22 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN latency_b23 BIGINT NOT NULL DEFAULT 0;
