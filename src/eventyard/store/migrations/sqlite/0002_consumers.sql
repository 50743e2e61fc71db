-- Consumers, their transactions (one per consumer per event), the transactions' state
-- history and the webhook delivery attempts.

CREATE TABLE consumers (
    id                          TEXT PRIMARY KEY,
    project_id                  TEXT NOT NULL REFERENCES projects(id),
    environment                 TEXT NOT NULL,
    name                        TEXT NOT NULL,
    kind                        TEXT NOT NULL,
    url                         TEXT,
    secret                      TEXT,
    previous_secret             TEXT,
    previous_secret_expires_at  INTEGER,
    retry_schedule              TEXT,
    timeout_ms                  INTEGER,
    triggers                    TEXT,
    state                       TEXT NOT NULL,
    disabled_reason             TEXT,
    failing_since               INTEGER,
    deleted_at                  INTEGER,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
);
CREATE INDEX consumers_project ON consumers (project_id, environment);

CREATE TABLE transactions (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL,
    environment       TEXT NOT NULL,
    consumer_id       TEXT NOT NULL,
    event_id          TEXT NOT NULL,
    state             TEXT NOT NULL,
    output            TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    schedule_index    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER,
    lease_expires_at  INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (consumer_id, event_id)
);
CREATE INDEX transactions_due ON transactions (consumer_id, state, next_attempt_at);
CREATE INDEX transactions_event ON transactions (event_id);

CREATE TABLE transaction_history (
    id              INTEGER PRIMARY KEY,
    transaction_id  TEXT NOT NULL,
    exit_state      TEXT,
    enter_state     TEXT NOT NULL,
    at              INTEGER NOT NULL,
    actor           TEXT NOT NULL
);
CREATE INDEX transaction_history_txn ON transaction_history (transaction_id, id);

CREATE TABLE delivery_attempts (
    id                INTEGER PRIMARY KEY,
    transaction_id    TEXT NOT NULL,
    attempt           INTEGER NOT NULL,
    at                INTEGER NOT NULL,
    status_code       INTEGER,
    duration_ms       INTEGER NOT NULL,
    response_excerpt  TEXT,
    error             TEXT
);
CREATE INDEX delivery_attempts_txn ON delivery_attempts (transaction_id, id);
