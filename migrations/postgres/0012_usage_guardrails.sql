-- What guardrails did to each request: in the ledger, the most severe action's name
-- (`blocked`, `redacted`, ...; NULL when none acted) and every action as a JSON array of
-- {policy, rule, taken, entities} (entity types only, never the values found).
ALTER TABLE usage_events ADD COLUMN guardrail TEXT;
ALTER TABLE usage_events ADD COLUMN guardrail_actions TEXT;

-- The request log's "only blocked" (or redacted, ...) reads newest first through this index
-- rather than walking every request of the organization; most requests have no guardrail
-- action, so the index holds only those that do.
CREATE INDEX usage_events_org_guardrail_time ON usage_events (org_id, guardrail, time)
    WHERE guardrail IS NOT NULL;

-- The rollups gain the guardrail outcome as one more dimension of their key ('' for none),
-- so that analytics grouped or filtered by it sum whole rows and stay exact. Existing rows
-- are requests from before guardrails: none.
ALTER TABLE usage_rollups ADD COLUMN guardrail TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_rollups DROP CONSTRAINT usage_rollups_pkey;
ALTER TABLE usage_rollups ADD PRIMARY KEY
    (granularity, org_id, bucket_start, team_id, key_id, end_user, model, provider, guardrail);
