"""Dashboard users: creating them, signing them in, and the sessions that follow.

Passwords are hashed with Argon2id (argon2-cffi's defaults: 64 MiB, 3 passes), which is
memory-hard, so a stolen table costs an attacker real hardware per guess. Hashing runs in a
thread so a sign-in never stalls the event loop, at most two at a time so a flood of
sign-ins cannot take the process's memory, and with at most 16 waiting (more are refused
with 429). Tries for one email are a token bucket in the database (`rate_buckets`, shared
by every process): five at once, then one per 30 seconds; each try is taken before it is
checked, so parallel guesses count too, and a right password empties the count.

A session is a random 256-bit token in an HttpOnly cookie, stored as its SHA-256; each
session carries its own CSRF token, which every form posts back (the synchronizer-token
pattern).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from eventyard import ids
from eventyard.clock import Clock
from eventyard.errors import Conflict, InvalidRequest, TooManyRequests, Unauthenticated
from eventyard.store import Store
from eventyard.store import accounts as sql
from eventyard.store import ratelimit as buckets
from eventyard.store.accounts import DashboardSession, DashboardUser
from eventyard.store.db import Db

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # hashing cost grows with length; nobody types more
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_HASHER = PasswordHasher()
# Compared against when the email is unknown, so a wrong email costs as long as a wrong
# password and the timing does not tell which emails exist.
_DUMMY_HASH = _HASHER.hash("not a password anyone has")
FREE_FAILURES = 5  # wrong passwords for one email before it must wait between attempts
FAILURE_WAIT_SECONDS = 30
_FULL_AGAIN_US = FREE_FAILURES * FAILURE_WAIT_SECONDS * 1_000_000
_HASHES_AT_ONCE = 2
_MAX_WAITING = 16


class UserExists(Conflict):
    code = "user_exists"


@dataclass(frozen=True)
class NewSession:
    token: str  # the cookie's value; not stored anywhere
    session: DashboardSession


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _sign_in_bucket(email: str) -> str:
    """The bucket of an email's sign-in tries, named by a hash so no address is stored."""
    return "sign-in:" + hashlib.sha256(email.casefold().encode("utf-8")).hexdigest()


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"The password has {len(password)} characters; it needs at least {MIN_PASSWORD_LENGTH}."
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"The password has {len(password)} characters; the limit is {MAX_PASSWORD_LENGTH}."
        )


class AccountService:
    def __init__(self, store: Store, clock: Clock, session_hours: int) -> None:
        self._store = store
        self._clock = clock
        self._session_us = session_hours * 3600 * 1_000_000
        self._hashing: asyncio.Semaphore | None = None
        self._waiting = 0  # sign-ins queued for a hashing slot

    async def _hash(self, password: str) -> str:
        async with self._slot():
            return await asyncio.to_thread(_HASHER.hash, password)

    async def _verify(self, stored: str, password: str) -> bool:
        async with self._slot():
            try:
                return bool(await asyncio.to_thread(_HASHER.verify, stored, password))
            except (VerificationError, InvalidHashError):
                return False

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of the few hashing slots; refused at once when too many already wait."""
        if self._hashing is None:
            self._hashing = asyncio.Semaphore(_HASHES_AT_ONCE)
        if self._waiting >= _MAX_WAITING:
            raise TooManyRequests(
                f"{self._waiting} sign-ins are already waiting to be checked (the limit is "
                f"{_MAX_WAITING}); try again in a few seconds.",
                headers={"Retry-After": "2"},
            )
        self._waiting += 1
        try:
            await self._hashing.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._hashing.release()

    async def create_user(self, email: str, password: str) -> DashboardUser:
        email = email.strip()
        if not _EMAIL.fullmatch(email) or len(email) > 254:
            raise InvalidRequest(f"{email!r} is not an email address.")
        check_password_rules(password)
        password_hash = await self._hash(password)
        user = DashboardUser(ids.new_id("usr"), email, self._clock.now_us(), None)

        def op(db: Db) -> DashboardUser:
            if not sql.insert_user(db, user, password_hash):
                raise UserExists(f"A dashboard user {email!r} already exists.")
            return user

        return await self._store.write(op)

    async def set_password(self, email: str, password: str) -> DashboardUser:
        check_password_rules(password)
        password_hash = await self._hash(password)

        def op(db: Db) -> DashboardUser:
            found = sql.find_user(db, email)
            if found is None:
                raise InvalidRequest(f"There is no dashboard user {email!r}.")
            sql.set_password(db, found[0].id, password_hash)
            sql.delete_user_sessions(db, found[0].id)  # a new password signs everyone out
            return found[0]

        return await self._store.write(op)

    async def sign_in(self, email: str, password: str) -> NewSession:
        """A new session for the right email and password; one refusal for any mistake."""
        email = email.strip()
        if len(password) > MAX_PASSWORD_LENGTH:
            raise Unauthenticated("The email or the password is wrong.")
        # Count the try before checking it, so guesses sent at once each count.
        bucket = _sign_in_bucket(email)
        await self._take_try(bucket)
        found = await self._store.read(lambda db: sql.find_user(db, email))
        ok = await self._verify(found[1] if found else _DUMMY_HASH, password)
        if not ok or found is None:
            raise Unauthenticated("The email or the password is wrong.")
        await self._store.write(lambda db: buckets.forget(db, bucket))
        user = found[0]
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self._clock.now_us()
        expires = now + self._session_us

        def op(db: Db) -> None:
            sql.insert_session(db, _token_hash(token), user.id, csrf, now, expires)

        await self._store.write(op)
        return NewSession(token, DashboardSession(user, csrf, expires))

    async def _take_try(self, bucket: str) -> None:
        now = self._clock.now_us()
        rate = 1 / FAILURE_WAIT_SECONDS
        idle = now - _FULL_AGAIN_US  # a bucket untouched this long is full: no row needed

        def op(db: Db) -> tuple[float, int]:
            buckets.forget_idle(db, "sign-in:", idle)
            return buckets.take(db, bucket, rate, FREE_FAILURES, now)

        left, got = await self._store.write(op)
        if not got:
            seconds = max(1, math.ceil((1 - left) * FAILURE_WAIT_SECONDS))
            raise TooManyRequests(
                f"Too many wrong passwords for this email; wait {seconds} s before the next "
                f"try (the limit: {FREE_FAILURES} tries at once, then one per "
                f"{FAILURE_WAIT_SECONDS} s).",
                headers={"Retry-After": str(seconds)},
            )

    async def session(self, token: str | None) -> DashboardSession | None:
        if not token:
            return None
        now = self._clock.now_us()
        digest = _token_hash(token)
        return await self._store.read(lambda db: sql.find_session(db, digest, now))

    async def sign_out(self, token: str) -> None:
        digest = _token_hash(token)
        await self._store.write(lambda db: sql.delete_session(db, digest))


def csrf_matches(session: DashboardSession, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(
        session.csrf_token.encode(), submitted.encode("utf-8", "replace")
    )
