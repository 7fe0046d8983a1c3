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
-- so that analytics grouped or filtered by it sum whole rows and stay exact. SQLite cannot
-- change a primary key in place: the table is rebuilt (clustered by its key, as 0005 made
-- it) with the same columns and the new one. Existing rows are requests from before
-- guardrails: none.
CREATE TABLE usage_rollups_guarded (
    granularity     TEXT NOT NULL,
    bucket_start    BIGINT NOT NULL,
    org_id          TEXT NOT NULL,
    team_id         TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    end_user        TEXT NOT NULL,
    model           TEXT NOT NULL,
    provider        TEXT NOT NULL,
    requests        BIGINT NOT NULL,
    errors          BIGINT NOT NULL,
    cache_hits      BIGINT NOT NULL,
    input_tokens    BIGINT NOT NULL,
    output_tokens   BIGINT NOT NULL,
    cached_tokens   BIGINT NOT NULL,
    cost_pico       BIGINT NOT NULL,
    saved_pico      BIGINT NOT NULL,
    latency_ms_sum  BIGINT NOT NULL,
    latency_b00     BIGINT NOT NULL DEFAULT 0,
    latency_b01     BIGINT NOT NULL DEFAULT 0,
    latency_b02     BIGINT NOT NULL DEFAULT 0,
    latency_b03     BIGINT NOT NULL DEFAULT 0,
    latency_b04     BIGINT NOT NULL DEFAULT 0,
    latency_b05     BIGINT NOT NULL DEFAULT 0,
    latency_b06     BIGINT NOT NULL DEFAULT 0,
    latency_b07     BIGINT NOT NULL DEFAULT 0,
    latency_b08     BIGINT NOT NULL DEFAULT 0,
    latency_b09     BIGINT NOT NULL DEFAULT 0,
    latency_b10     BIGINT NOT NULL DEFAULT 0,
    latency_b11     BIGINT NOT NULL DEFAULT 0,
    latency_b12     BIGINT NOT NULL DEFAULT 0,
    latency_b13     BIGINT NOT NULL DEFAULT 0,
    latency_b14     BIGINT NOT NULL DEFAULT 0,
    latency_b15     BIGINT NOT NULL DEFAULT 0,
    latency_b16     BIGINT NOT NULL DEFAULT 0,
    latency_b17     BIGINT NOT NULL DEFAULT 0,
    latency_b18     BIGINT NOT NULL DEFAULT 0,
    latency_b19     BIGINT NOT NULL DEFAULT 0,
    latency_b20     BIGINT NOT NULL DEFAULT 0,
    latency_b21     BIGINT NOT NULL DEFAULT 0,
    latency_b22     BIGINT NOT NULL DEFAULT 0,
    latency_b23     BIGINT NOT NULL DEFAULT 0,
    guardrail       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (granularity, org_id, bucket_start, team_id, key_id, end_user, model, provider,
        guardrail)
) WITHOUT ROWID;
INSERT INTO usage_rollups_guarded SELECT *, '' FROM usage_rollups;
DROP TABLE usage_rollups;
ALTER TABLE usage_rollups_guarded RENAME TO usage_rollups;
