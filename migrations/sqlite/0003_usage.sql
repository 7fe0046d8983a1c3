-- Budgets, budget alerts, the usage ledger and its rollups. Money is a BIGINT count of
-- picodollars (10^-12 USD): exact for every catalog price and summable by either database.

-- A spending limit over a period. `scope` is organization, team, key or user; `target` is the
-- team or key id, the end-user id (the OpenAI `user` field), or '*' for a limit that every end
-- user of the organization gets on their own. A key's own `budget_usd` is a budget too.
CREATE TABLE budgets (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    scope         TEXT NOT NULL,
    target        TEXT NOT NULL,
    period        TEXT NOT NULL,
    -- decimal USD as text
    limit_usd     TEXT NOT NULL,
    -- JSON array of percentages, e.g. [50, 80, 100]
    thresholds    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (org_id, scope, target, period)
);

-- Where budget alerts go: one HTTPS endpoint per organization, signed with HMAC-SHA256.
ALTER TABLE organizations ADD COLUMN alert_webhook_url TEXT;
ALTER TABLE organizations ADD COLUMN alert_webhook_secret TEXT;

-- One row per threshold crossed per budget per period: the primary key is what makes an alert
-- fire once. Undelivered rows are the webhook outbox.
CREATE TABLE budget_alerts (
    budget_id      TEXT NOT NULL,
    -- the end user, for a per-user ('*') budget; '' otherwise
    subject        TEXT NOT NULL,
    period_start   BIGINT NOT NULL,
    threshold      BIGINT NOT NULL,
    id             TEXT NOT NULL UNIQUE,
    org_id         TEXT NOT NULL,
    payload        TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    delivered_at   BIGINT,
    attempts       BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error     TEXT,
    PRIMARY KEY (budget_id, subject, period_start, threshold)
);
CREATE INDEX budget_alerts_outbox ON budget_alerts (delivered_at, next_attempt_at);

-- The ledger: one row per request, written by the usage shipper, idempotent by event id.
CREATE TABLE usage_events (
    event_id         TEXT PRIMARY KEY,
    request_id       TEXT NOT NULL,
    time             BIGINT NOT NULL,
    org_id           TEXT NOT NULL,
    team_id          TEXT,
    key_id           TEXT,
    user_id          TEXT,
    end_user         TEXT,
    -- JSON object of the request's tags
    tags             TEXT NOT NULL,
    endpoint         TEXT NOT NULL,
    requested_model  TEXT NOT NULL,
    provider         TEXT,
    provider_model   TEXT,
    input_tokens     BIGINT NOT NULL,
    output_tokens    BIGINT NOT NULL,
    cached_tokens    BIGINT NOT NULL,
    usage_estimated  BIGINT NOT NULL,
    -- NULL when the model has no price
    cost_pico        BIGINT,
    reserved_pico    BIGINT NOT NULL,
    -- for a cache hit: what the answer cost when it was made
    saved_pico       BIGINT,
    latency_ms       BIGINT NOT NULL,
    ttft_ms          BIGINT,
    status           BIGINT NOT NULL,
    error            TEXT,
    cache            TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    stream           BIGINT NOT NULL
);
CREATE INDEX usage_events_org_time ON usage_events (org_id, time);

-- Totals per hour and per day ('hour' / 'day'), by every dimension analytics group on; ''
-- stands for none. Analytics and budgets read these, never the raw ledger over long ranges.
CREATE TABLE usage_rollups (
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
);

-- The same totals by tag (one row per tag key and value).
CREATE TABLE usage_tag_rollups (
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
);
