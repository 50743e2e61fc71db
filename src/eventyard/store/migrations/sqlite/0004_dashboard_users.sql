-- Dashboard users (operators who sign in to /dashboard) and their sessions. A session's
-- token and CSRF token are stored as SHA-256 hashes; the cookie holds the token itself.

CREATE TABLE dashboard_users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    last_login_at  INTEGER
);

CREATE TABLE dashboard_sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES dashboard_users(id),
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (user_id);
