"""SQL for dashboard users and their sessions.

A session row is found by the SHA-256 of its cookie token, so the database never holds a
token that would sign anyone in; the CSRF token is stored as issued, since the pages it is
written into are served to the session's own user. Emails match by `email_key`, their
case-folded form, so `Élodie@x` and `élodie@x` are one user on SQLite and PostgreSQL alike
(SQL's `lower` folds only ASCII on SQLite).
"""

from __future__ import annotations

from dataclasses import dataclass

from eventyard.store.db import Db


@dataclass(frozen=True)
class DashboardUser:
    id: str
    email: str
    created_at: int
    last_login_at: int | None


@dataclass(frozen=True)
class DashboardSession:
    user: DashboardUser
    csrf_token: str
    expires_at: int


def email_key(email: str) -> str:
    """What makes two emails the same user: Unicode case-folding, done here, not in SQL."""
    return email.strip().casefold()


def insert_user(db: Db, user: DashboardUser, password_hash: str) -> bool:
    """Insert; False when a user with that email (case-folded) exists already."""
    cursor = db.execute(
        "INSERT INTO dashboard_users (id, email, email_key, password_hash, created_at,"
        " last_login_at) VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (email_key) DO NOTHING",
        (user.id, user.email, email_key(user.email), password_hash, user.created_at),
    )
    return bool(cursor.rowcount == 1)


def set_password(db: Db, user_id: str, password_hash: str) -> None:
    db.execute(
        "UPDATE dashboard_users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
    )


def find_user(db: Db, email: str) -> tuple[DashboardUser, str] | None:
    """The user with this email (compared case-insensitively) and the stored password hash."""
    row = db.one(
        "SELECT id, email, password_hash, created_at, last_login_at FROM dashboard_users"
        " WHERE email_key = ?",
        (email_key(email),),
    )
    if row is None:
        return None
    user = DashboardUser(row["id"], row["email"], row["created_at"], row["last_login_at"])
    return user, row["password_hash"]


def insert_session(
    db: Db, token_hash: str, user_id: str, csrf_token: str, now: int, expires_at: int
) -> None:
    db.execute(
        "INSERT INTO dashboard_sessions (token_hash, user_id, csrf_token, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (token_hash, user_id, csrf_token, now, expires_at),
    )
    db.execute("UPDATE dashboard_users SET last_login_at = ? WHERE id = ?", (now, user_id))
    db.execute("DELETE FROM dashboard_sessions WHERE expires_at <= ?", (now,))


def find_session(db: Db, token_hash: str, now: int) -> DashboardSession | None:
    row = db.one(
        "SELECT s.csrf_token, s.expires_at, u.id, u.email, u.created_at, u.last_login_at"
        " FROM dashboard_sessions s JOIN dashboard_users u ON u.id = s.user_id"
        " WHERE s.token_hash = ? AND s.expires_at > ?",
        (token_hash, now),
    )
    if row is None:
        return None
    user = DashboardUser(row["id"], row["email"], row["created_at"], row["last_login_at"])
    return DashboardSession(user, row["csrf_token"], row["expires_at"])


def delete_session(db: Db, token_hash: str) -> None:
    db.execute("DELETE FROM dashboard_sessions WHERE token_hash = ?", (token_hash,))


def delete_user_sessions(db: Db, user_id: str) -> None:
    db.execute("DELETE FROM dashboard_sessions WHERE user_id = ?", (user_id,))
