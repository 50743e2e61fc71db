-- Events and everything that hangs off them become range-partitioned tables, so retention
-- drops whole partitions instead of deleting rows (store/partitions.py creates the ranges
-- ahead and drops old ones). All four tables are partitioned by the event's id, whose first
-- ten characters after `evt_` are its receive time in milliseconds:
--   events               by id;
--   transactions         by event_id (a transaction made later for an old event lives beside
--                        it, and UNIQUE (consumer_id, event_id) includes the partition key);
--   transaction_history  by transaction_id, and delivery_attempts likewise: a transaction's
--                        id carries its event's millisecond (ids.id_at), so its history and
--                        attempts fall in the same range as its event, and reading them by
--                        transaction id reads one partition.
-- A partitioned table's unique keys must hold its partition key, so the transactions' key is
-- (id, event_id) and the history's and attempts' (transaction_id, id). PostgreSQL 15 has no
-- identity columns on partitioned tables: their ids come from sequences.
--
-- Existing rows are copied into the new tables, where they land in each table's DEFAULT
-- partition (the only one there is yet); housekeeping then moves them out, one range per
-- transaction, into ranges of their own (store/partitions.py), so old rows are dropped by
-- retention like new ones. Copying costs a pass over the data at upgrade; attaching the old
-- tables as DEFAULT partitions would cost nothing now, but every later range would then
-- have to scan the whole default partition as it is created, and legacy rows could only go
-- by long deletes.

ALTER TABLE events RENAME TO events_0007;
ALTER TABLE transactions RENAME TO transactions_0007;
ALTER TABLE transaction_history RENAME TO transaction_history_0007;
ALTER TABLE delivery_attempts RENAME TO delivery_attempts_0007;
ALTER INDEX events_pkey RENAME TO events_0007_pkey;
ALTER INDEX events_by_time RENAME TO events_0007_by_time;
ALTER INDEX events_by_user RENAME TO events_0007_by_user;
ALTER INDEX events_by_trigger RENAME TO events_0007_by_trigger;
ALTER INDEX transactions_pkey RENAME TO transactions_0007_pkey;
ALTER INDEX transactions_due RENAME TO transactions_0007_due;
ALTER INDEX transactions_event RENAME TO transactions_0007_event;
ALTER INDEX transactions_open RENAME TO transactions_0007_open;
ALTER INDEX transactions_failed RENAME TO transactions_0007_failed;
ALTER TABLE transactions_0007 RENAME CONSTRAINT transactions_consumer_id_event_id_key
    TO transactions_0007_consumer_event;
ALTER INDEX transaction_history_pkey RENAME TO transaction_history_0007_pkey;
ALTER INDEX transaction_history_txn RENAME TO transaction_history_0007_txn;
ALTER INDEX delivery_attempts_pkey RENAME TO delivery_attempts_0007_pkey;
ALTER INDEX delivery_attempts_txn RENAME TO delivery_attempts_0007_txn;
ALTER INDEX delivery_attempts_at RENAME TO delivery_attempts_0007_at;
ALTER SEQUENCE transaction_history_id_seq RENAME TO transaction_history_0007_id_seq;
ALTER SEQUENCE delivery_attempts_id_seq RENAME TO delivery_attempts_0007_id_seq;

CREATE TABLE events (
    id               TEXT NOT NULL,
    project_id       TEXT NOT NULL,
    environment      TEXT NOT NULL,
    trigger_id       TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    payload          TEXT NOT NULL,
    timestamp        BIGINT NOT NULL,
    received_at      BIGINT NOT NULL,
    idempotency_key  TEXT,
    source           TEXT NOT NULL,
    expires_at       BIGINT,
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);
CREATE INDEX events_by_time ON events (project_id, environment, timestamp, id);
CREATE INDEX events_by_user ON events (project_id, environment, user_id, timestamp, id);
CREATE INDEX events_by_trigger ON events (project_id, environment, trigger_id, timestamp, id);
CREATE TABLE events_default PARTITION OF events DEFAULT;
-- Each partition's indexes are named for the parent's (store/partitions.py does the same);
-- its keys keep the names their constraints got.
ALTER INDEX events_default_project_id_environment_timestamp_id_idx
    RENAME TO events_by_time_default;
ALTER INDEX events_default_project_id_environment_user_id_timestamp_id_idx
    RENAME TO events_by_user_default;
ALTER INDEX events_default_project_id_environment_trigger_id_timestamp__idx
    RENAME TO events_by_trigger_default;

CREATE TABLE transactions (
    id                TEXT NOT NULL,
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
    PRIMARY KEY (id, event_id),
    UNIQUE (consumer_id, event_id)
) PARTITION BY RANGE (event_id);
CREATE INDEX transactions_due ON transactions (consumer_id, state, next_attempt_at);
CREATE INDEX transactions_event ON transactions (event_id);
CREATE INDEX transactions_open ON transactions (project_id, environment, consumer_id, created_at)
    WHERE state NOT IN ('finished', 'failed');
CREATE INDEX transactions_failed ON transactions (project_id, environment, updated_at)
    WHERE state = 'failed';
CREATE TABLE transactions_default PARTITION OF transactions DEFAULT;
ALTER INDEX transactions_default_consumer_id_state_next_attempt_at_idx
    RENAME TO transactions_due_default;
ALTER INDEX transactions_default_event_id_idx RENAME TO transactions_event_default;
ALTER INDEX transactions_default_project_id_environment_consumer_id_cre_idx
    RENAME TO transactions_open_default;
ALTER INDEX transactions_default_project_id_environment_updated_at_idx
    RENAME TO transactions_failed_default;

CREATE SEQUENCE transaction_history_id_seq AS BIGINT;
CREATE TABLE transaction_history (
    id              BIGINT NOT NULL DEFAULT nextval('transaction_history_id_seq'),
    transaction_id  TEXT NOT NULL,
    exit_state      TEXT,
    enter_state     TEXT NOT NULL,
    at              BIGINT NOT NULL,
    actor           TEXT NOT NULL,
    PRIMARY KEY (transaction_id, id)
) PARTITION BY RANGE (transaction_id);
ALTER SEQUENCE transaction_history_id_seq OWNED BY transaction_history.id;
CREATE TABLE transaction_history_default PARTITION OF transaction_history DEFAULT;

CREATE SEQUENCE delivery_attempts_id_seq AS BIGINT;
CREATE TABLE delivery_attempts (
    id                BIGINT NOT NULL DEFAULT nextval('delivery_attempts_id_seq'),
    transaction_id    TEXT NOT NULL,
    attempt           BIGINT NOT NULL,
    at                BIGINT NOT NULL,
    status_code       BIGINT,
    duration_ms       BIGINT NOT NULL,
    response_excerpt  TEXT,
    error             TEXT,
    PRIMARY KEY (transaction_id, id)
) PARTITION BY RANGE (transaction_id);
ALTER SEQUENCE delivery_attempts_id_seq OWNED BY delivery_attempts.id;
CREATE INDEX delivery_attempts_at ON delivery_attempts (at);
CREATE TABLE delivery_attempts_default PARTITION OF delivery_attempts DEFAULT;
ALTER INDEX delivery_attempts_default_at_idx RENAME TO delivery_attempts_at_default;

INSERT INTO events SELECT * FROM events_0007;
INSERT INTO transactions SELECT * FROM transactions_0007;
INSERT INTO transaction_history (id, transaction_id, exit_state, enter_state, at, actor)
    SELECT id, transaction_id, exit_state, enter_state, at, actor FROM transaction_history_0007;
INSERT INTO delivery_attempts (id, transaction_id, attempt, at, status_code, duration_ms,
    response_excerpt, error)
    SELECT id, transaction_id, attempt, at, status_code, duration_ms, response_excerpt, error
    FROM delivery_attempts_0007;
SELECT setval('transaction_history_id_seq',
    (SELECT COALESCE(MAX(id), 0) + 1 FROM transaction_history_0007), false);
SELECT setval('delivery_attempts_id_seq',
    (SELECT COALESCE(MAX(id), 0) + 1 FROM delivery_attempts_0007), false);

DROP TABLE events_0007;
DROP TABLE transactions_0007;
DROP TABLE transaction_history_0007;
DROP TABLE delivery_attempts_0007;

ANALYZE events;
ANALYZE transactions;
ANALYZE transaction_history;
ANALYZE delivery_attempts;
