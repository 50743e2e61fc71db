-- eventyard 0.1.0: projects, keys, triggers, events, idempotency keys.
-- Times are integer microseconds since the Unix epoch (UTC).

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    mode        TEXT NOT NULL DEFAULT 'open',
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects(id),
    environment   TEXT NOT NULL,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    hash          TEXT NOT NULL UNIQUE,
    scopes        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_keys_project ON api_keys (project_id, created_at);

CREATE TABLE triggers (
    project_id   TEXT NOT NULL REFERENCES projects(id),
    id           TEXT NOT NULL,
    uuid         TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    type         TEXT NOT NULL DEFAULT 'custom',
    platform     TEXT,
    label        TEXT,
    schema       TEXT,
    archived_at  BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, id)
);

CREATE TABLE events (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL,
    environment      TEXT NOT NULL,
    trigger_id       TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    payload          TEXT NOT NULL,
    timestamp        BIGINT NOT NULL,
    received_at      BIGINT NOT NULL,
    idempotency_key  TEXT,
    source           TEXT NOT NULL,
    expires_at       BIGINT
);
CREATE INDEX events_by_time ON events (project_id, environment, timestamp, id);
CREATE INDEX events_by_user ON events (project_id, environment, user_id, timestamp, id);
CREATE INDEX events_by_trigger ON events (project_id, environment, trigger_id, timestamp, id);

CREATE TABLE idempotency_keys (
    project_id   TEXT NOT NULL,
    environment  TEXT NOT NULL,
    key          TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    body_hash    TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, environment, key)
);
CREATE INDEX idempotency_keys_event ON idempotency_keys (event_id);
