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
    previous_secret_expires_at  BIGINT,
    retry_schedule              TEXT,
    timeout_ms                  BIGINT,
    triggers                    TEXT,
    state                       TEXT NOT NULL,
    disabled_reason             TEXT,
    failing_since               BIGINT,
    deleted_at                  BIGINT,
    created_at                  BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL
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
    attempts          BIGINT NOT NULL DEFAULT 0,
    schedule_index    BIGINT NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT,
    lease_expires_at  BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (consumer_id, event_id)
);
CREATE INDEX transactions_due ON transactions (consumer_id, state, next_attempt_at);
CREATE INDEX transactions_event ON transactions (event_id);

CREATE TABLE transaction_history (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  TEXT NOT NULL,
    exit_state      TEXT,
    enter_state     TEXT NOT NULL,
    at              BIGINT NOT NULL,
    actor           TEXT NOT NULL
);
CREATE INDEX transaction_history_txn ON transaction_history (transaction_id, id);

CREATE TABLE delivery_attempts (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id    TEXT NOT NULL,
    attempt           BIGINT NOT NULL,
    at                BIGINT NOT NULL,
    status_code       BIGINT,
    duration_ms       BIGINT NOT NULL,
    response_excerpt  TEXT,
    error             TEXT
);
CREATE INDEX delivery_attempts_txn ON delivery_attempts (transaction_id, id);
