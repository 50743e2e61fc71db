-- One row per erasure of an end user (DELETE /v1/users/{user_id}): who asked (the API key's
-- id), when it began and ended, and how many rows of each kind it removed, as a JSON object.
-- Deliberately NOT the user id, nor a hash of it, nor anything of the erased data: a record
-- that names the erased person would itself be their personal data, kept forever. The
-- receipt the caller got names the user; this table only proves that erasures happened.
-- `finished_at` is NULL while an erasure runs, and stays NULL if the process stopped
-- half-way (the counts say how far it got; asking again finishes it).
CREATE TABLE erasures (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    environment TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    counts TEXT NOT NULL
);

CREATE INDEX erasures_by_project ON erasures (project_id, environment, id);
