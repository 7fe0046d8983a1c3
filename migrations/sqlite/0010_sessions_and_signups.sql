-- Sessions end a fixed time after their login (`auth.session_max_lifetime_secs`), however
-- often their refresh token is rotated: every token of a family carries the family's end.
-- Tokens issued before end with themselves.
ALTER TABLE refresh_tokens ADD COLUMN session_expires_at BIGINT;
UPDATE refresh_tokens SET session_expires_at = expires_at;
-- A password change ends all of a user's other sessions.
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- Sign-ups waiting for their address to be confirmed (`auth.signup_verification`), under the
-- hash of the token mailed to it; the account is created when the token comes back.
CREATE TABLE pending_signups (
    token_hash     TEXT PRIMARY KEY,
    email          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    organization   TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX pending_signups_expiry ON pending_signups (expires_at);

-- The generated JWT signing key's `secret` is sealed (`sealed:` and AES-256-GCM, base64) when
-- `auth.encryption_key` is set; the service seals a plain one at start-up. No change of shape.
