-- What an organization pays with and how it stands: its Stripe customer, its card, its plan,
-- whether its payments are in order, and its prepaid credit.
CREATE TABLE billing_accounts (
    org_id                TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    stripe_customer_id    TEXT UNIQUE,
    -- the subscription to the metered usage price that turns reported usage into invoices
    stripe_subscription_id TEXT,
    -- 'payg' (provider cost plus markup) or 'byok' (own provider keys, platform fee)
    plan                  TEXT NOT NULL,
    -- JSON {"id", "brand", "last4", "exp_month", "exp_year"} of the default card, or NULL
    payment_method        TEXT,
    -- 'good', or 'past_due' from a failed payment until an invoice is paid
    standing              TEXT NOT NULL,
    past_due_since        BIGINT,
    -- Stripe's `created` (seconds) of the event that last set the standing: an older event
    -- delivered late changes nothing
    standing_event_at     BIGINT NOT NULL,
    -- prepaid balance, picodollars of billable usage
    credit_pico           BIGINT NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);

-- Every Stripe webhook event processed, so that a redelivery is processed once.
CREATE TABLE stripe_events (
    id            TEXT PRIMARY KEY,
    type          TEXT NOT NULL,
    created       BIGINT NOT NULL,
    received_at   BIGINT NOT NULL
);

-- Calls to Stripe waiting to be made, made, or given up: a Stripe outage delays them and
-- loses none. The idempotency key makes a retried call one call at Stripe.
CREATE TABLE stripe_outbox (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL,
    kind              TEXT NOT NULL,
    idempotency_key   TEXT NOT NULL UNIQUE,
    path              TEXT NOT NULL,
    -- JSON list of [name, value] form fields
    form              TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    attempts          BIGINT NOT NULL,
    next_attempt_at   BIGINT NOT NULL,
    claimed_until     BIGINT,
    sent_at           BIGINT,
    failed_at         BIGINT,
    last_error        TEXT
);
CREATE INDEX stripe_outbox_due ON stripe_outbox (sent_at, failed_at, next_attempt_at);

-- Usage reported per organization and hour: revision 0 when the hour is first reported,
-- then one more for usage of the hour that reached the ledger later (each reports only what
-- the earlier ones did not). The primary key makes each report once, however often the job
-- runs; `identifier` is the Stripe meter event's, derived from the key.
CREATE TABLE usage_reports (
    org_id             TEXT NOT NULL,
    hour_start         BIGINT NOT NULL,
    revision           BIGINT NOT NULL,
    -- billable usage added by this report, picodollars
    billable_pico      BIGINT NOT NULL,
    provider_cost_pico BIGINT NOT NULL,
    -- what the month's free allowance covered, picodollars
    free_used_pico     BIGINT NOT NULL,
    -- what prepaid credit covered, picodollars
    credit_used_pico   BIGINT NOT NULL,
    -- what was reported to the meter, micro-USD (0 when nothing was left to bill)
    metered_micros     BIGINT NOT NULL,
    identifier         TEXT NOT NULL UNIQUE,
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (org_id, hour_start, revision)
);

-- Invoices as Stripe last told us, for the dashboard.
CREATE TABLE invoices (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL,
    status            TEXT NOT NULL,
    currency          TEXT NOT NULL,
    amount_due        BIGINT NOT NULL,
    amount_paid       BIGINT NOT NULL,
    hosted_url        TEXT,
    pdf_url           TEXT,
    period_start      BIGINT,
    period_end        BIGINT,
    event_at          BIGINT NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX invoices_org ON invoices (org_id, created_at);

-- Prepaid credit added, once per Checkout Session.
CREATE TABLE credit_grants (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    amount_pico   BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
