-- Cache defaults set on an organization, a team or a key, as JSON text
-- ({"mode": "semantic", "ttl_secs": 3600, "share": "team"}; a field left out inherits).
ALTER TABLE organizations ADD COLUMN cache_policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE teams ADD COLUMN cache_policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE virtual_keys ADD COLUMN cache_policy TEXT NOT NULL DEFAULT '{}';
