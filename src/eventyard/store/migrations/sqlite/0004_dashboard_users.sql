-- Dashboard users (operators who sign in to /dashboard) and their sessions. A session's
-- token is stored as its SHA-256 (the cookie holds the token itself); its CSRF token is
-- stored as issued. `email_key` is the email case-folded by the application, so matching
-- and uniqueness are the same on every database.

CREATE TABLE dashboard_users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL,
    email_key      TEXT NOT NULL UNIQUE,
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
