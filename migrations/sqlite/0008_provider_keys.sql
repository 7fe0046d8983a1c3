-- Organizations' own provider keys (bring your own key), one per configured provider, sealed
-- with AES-256-GCM under the deployment's encryption key and bound to the organization and
-- provider; only the last four characters are kept readable, for display.
CREATE TABLE provider_keys (
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provider    TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    hint        TEXT NOT NULL,
    created_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, provider)
);
