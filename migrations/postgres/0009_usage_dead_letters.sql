-- Usage events the ledger refused for a reason that retrying cannot cure (text the database
-- cannot hold, a value out of range), set aside so that shipping goes on with the rest. The
-- record is kept whole as JSON (its control characters escaped, so any database stores it) for
-- `tollgate usage dead-letters replay`; nothing is dropped.
CREATE TABLE usage_dead_letters (
    -- The event's id; for a stream entry that could not even be read, `stream:<entry id>`.
    id           TEXT PRIMARY KEY,
    org_id       TEXT,
    record       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    set_aside_at BIGINT NOT NULL,
    -- When a replay stored it in the ledger; NULL while it waits.
    replayed_at  BIGINT
);
CREATE INDEX usage_dead_letters_waiting ON usage_dead_letters (set_aside_at) WHERE replayed_at IS NULL;
