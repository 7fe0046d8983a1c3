-- Guardrail policies set on an organization, a team or a key, as JSON text
-- ({"input": {"pii": {"email": "redact"}}, "webhook": {"url": "https://..."}}; `{}` asks for
-- nothing). A key's requests are checked against all three, widest first.
ALTER TABLE organizations ADD COLUMN guardrail_policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE teams ADD COLUMN guardrail_policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE virtual_keys ADD COLUMN guardrail_policy TEXT NOT NULL DEFAULT '{}';
