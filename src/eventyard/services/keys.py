"""API keys: minting, authenticating, listing and revoking.

A key is `sk_<env>_` followed by 32 base62 characters (190 bits from `secrets`). Only its
SHA-256 is stored — the key has far more entropy than any password, so a fast hash is the
right one — and the lookup is by hash, with a constant-time comparison of the stored hash.
A verified key is cached for `cache_seconds`; revoking through this process drops it from
the cache at once. `last_used_at` is written at most once a minute per key, off the hot path.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import string
from collections.abc import Iterable

from eventyard import ids
from eventyard.clock import Clock
from eventyard.domain.models import ApiKey, Environment, Principal, Project, Scope
from eventyard.errors import (
    FieldError,
    Forbidden,
    InvalidRequest,
    KeyNotFound,
    Unauthenticated,
    ValidationFailed,
)
from eventyard.services.ttlcache import TtlCache
from eventyard.store import Store
from eventyard.store import keys as key_sql

logger = logging.getLogger("eventyard.keys")

_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 32
_TOUCH_EVERY_US = 60 * 1_000_000
MAX_KEY_NAME = 200
BEARER_HINT = "as 'Authorization: Bearer sk_live_...' (or sk_test_...)"


def generate_secret(environment: Environment) -> str:
    return f"sk_{environment.value}_" + "".join(
        secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH)
    )


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def display_prefix(secret: str) -> str:
    """What the key list shows: the environment prefix and four characters."""
    return secret[: len("sk_live_") + 4]


def parse_scopes(raw: Iterable[str]) -> frozenset[Scope]:
    scopes = set()
    for item in raw:
        name = item.strip()
        if not name:
            continue
        try:
            scopes.add(Scope(name))
        except ValueError:
            allowed = ", ".join(s.value for s in Scope)
            raise InvalidRequest(f"unknown scope {name!r}; scopes are {allowed}") from None
    if not scopes:
        raise InvalidRequest("a key needs at least one scope: write, read, delete or admin")
    return frozenset(scopes)


def new_key(
    project_id: str, environment: Environment, scopes: frozenset[Scope], name: str, now: int
) -> tuple[ApiKey, str]:
    secret = generate_secret(environment)
    key = ApiKey(
        id=ids.new_id("key"),
        project_id=project_id,
        environment=environment,
        name=name,
        prefix=display_prefix(secret),
        scopes=scopes,
        created_at=now,
        last_used_at=None,
        revoked_at=None,
    )
    return key, secret


class KeyService:
    def __init__(self, store: Store, clock: Clock, cache_seconds: int) -> None:
        self._store = store
        self._clock = clock
        self._cache: TtlCache[str, tuple[ApiKey, Project]] = TtlCache(
            clock, cache_seconds * 1_000_000
        )
        self._touched: dict[str, int] = {}

    async def create(
        self, project_id: str, environment: Environment, scopes: frozenset[Scope], name: str
    ) -> tuple[ApiKey, str]:
        if len(name) > MAX_KEY_NAME:
            raise ValidationFailed(
                "The key is not valid.",
                errors=[
                    FieldError("$.name", f"is {len(name)} characters; the limit is {MAX_KEY_NAME}")
                ],
            )
        if not scopes:
            raise ValidationFailed(
                "The key is not valid.",
                errors=[FieldError("$.scopes", "must name at least one scope")],
            )
        key, secret = new_key(project_id, environment, scopes, name, self._clock.now_us())
        await self._store.write(lambda db: key_sql.insert_key(db, key, hash_secret(secret)))
        return key, secret

    async def authenticate(self, secret: str | None, send_it: str = BEARER_HINT) -> Principal:
        """The principal of a live key; `send_it` tells a caller without one where it goes."""
        if not secret:
            raise Unauthenticated(f"No API key: send it {send_it}.")
        key_hash = hash_secret(secret)
        cached = self._cache.get(key_hash)
        if cached is None:
            found = await self._store.read(lambda db: key_sql.find_key_by_hash(db, key_hash))
            if found is None or not hmac.compare_digest(found[2], key_hash):
                raise Unauthenticated("The API key is not valid.")
            cached = (found[0], found[1])
            self._cache.put(key_hash, cached)
        key, project = cached
        if key.revoked_at is not None:
            raise Unauthenticated("The API key has been revoked.")
        self._touch(key)
        return Principal(key=key, project=project)

    def _touch(self, key: ApiKey) -> None:
        now = self._clock.now_us()
        if now - self._touched.get(key.id, 0) < _TOUCH_EVERY_US:
            return
        self._touched[key.id] = now
        # Fire and forget: the stamp is informational and must not slow the request.
        self._store.writer.submit(lambda db: key_sql.touch_key(db, key.id, now))

    async def list(self, project_id: str) -> list[ApiKey]:
        return await self._store.read(lambda db: key_sql.list_keys(db, project_id))

    async def get(self, project_id: str, key_id: str) -> ApiKey:
        key = await self._store.read(lambda db: key_sql.get_key(db, project_id, key_id))
        if key is None:
            raise KeyNotFound(f"No key {key_id!r} in this project and environment.")
        return key

    async def revoke(self, project_id: str, key_id: str) -> ApiKey:
        await self.get(project_id, key_id)
        now = self._clock.now_us()
        await self._store.write(lambda db: key_sql.revoke_key(db, project_id, key_id, now))
        self.forget_cached()
        return await self.get(project_id, key_id)

    def forget_cached(self) -> None:
        """Drop every cached key, so the next request reads keys and projects afresh."""
        self._cache.clear()


def require_scope(principal: Principal, scope: Scope) -> None:
    if not principal.key.allows(scope):
        held = ", ".join(sorted(s.value for s in principal.key.scopes))
        raise Forbidden(
            f"This key has the scopes [{held}]; this request needs the {scope.value!r} scope."
        )
