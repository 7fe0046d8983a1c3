-- The rollups are read as ranges of their primary key (granularity, organization, time): as
-- WITHOUT ROWID tables SQLite stores the rows in that order, so a range scan reads them
-- directly instead of looking up each one from the key's index (a 30-day series from hourly
-- rows about 2.5 times faster). The tables are rebuilt with the same columns and keys.

CREATE TABLE usage_rollups_clustered (
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
    PRIMARY KEY (granularity, org_id, bucket_start, team_id, key_id, end_user, model, provider)
) WITHOUT ROWID;
INSERT INTO usage_rollups_clustered SELECT * FROM usage_rollups;
DROP TABLE usage_rollups;
ALTER TABLE usage_rollups_clustered RENAME TO usage_rollups;

CREATE TABLE usage_tag_rollups_clustered (
    granularity     TEXT NOT NULL,
    bucket_start    BIGINT NOT NULL,
    org_id          TEXT NOT NULL,
    tag_key         TEXT NOT NULL,
    tag_value       TEXT NOT NULL,
    requests        BIGINT NOT NULL,
    errors          BIGINT NOT NULL,
    input_tokens    BIGINT NOT NULL,
    output_tokens   BIGINT NOT NULL,
    cost_pico       BIGINT NOT NULL,
    PRIMARY KEY (granularity, org_id, bucket_start, tag_key, tag_value)
) WITHOUT ROWID;
INSERT INTO usage_tag_rollups_clustered SELECT * FROM usage_tag_rollups;
DROP TABLE usage_tag_rollups;
ALTER TABLE usage_tag_rollups_clustered RENAME TO usage_tag_rollups;
