-- Rate limits set on teams (with per-model limits as JSON: {"gpt-4o": {"rpm": 60, "tpm": 100000}})
-- and organization defaults for keys that set none of their own.
ALTER TABLE teams ADD COLUMN rpm_limit BIGINT;
ALTER TABLE teams ADD COLUMN tpm_limit BIGINT;
ALTER TABLE teams ADD COLUMN model_limits TEXT NOT NULL DEFAULT '{}';
ALTER TABLE organizations ADD COLUMN rpm_limit BIGINT;
ALTER TABLE organizations ADD COLUMN tpm_limit BIGINT;
