"""Fixtures shared by every tier.

`store_url` is parametrized over both backends, so every test that uses a store (directly or
through `services`, `client` or `api`) runs once on SQLite and once on PostgreSQL:

* SQLite: a fresh file in the test's temporary directory;
* PostgreSQL: a database cloned from a migrated template, created per test and dropped after.

PostgreSQL is found at EVENTYARD_TEST_POSTGRES_URL (default: the local server, database
`postgres` for administration). When it does not answer, its tests are skipped — unless
CI=true or EVENTYARD_REQUIRE_POSTGRES=1, where that is an error: CI must not pass by skipping.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from eventyard.api.app import EventyardApp, create_app
from eventyard.clock import SystemClock
from eventyard.services.container import Services, build_services
from eventyard.services.projects import init_project
from eventyard.settings import Settings
from eventyard.store import Store, open_store

PG_ADMIN_URL = os.environ.get(
    "EVENTYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("CI") == "true" or os.environ.get("EVENTYARD_REQUIRE_POSTGRES") == "1"
_counter = itertools.count()


def _pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc)
    return None


class _Dropper:
    """Drops finished tests' databases in a background thread, overlapping the next tests."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-drop")

    def drop(self, name: str) -> None:
        self._pool.submit(_drop_database, name)

    def close(self) -> None:
        # Drops still queued finish before the interpreter exits (concurrent.futures joins
        # its threads then), not inside the last test's 60 s: on a busy machine each DROP
        # waits for a checkpoint, and a queue of them ran past the timeout at teardown.
        self._pool.shutdown(wait=False)


def _drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def pg_dropper() -> Iterator[_Dropper]:
    dropper = _Dropper()
    yield dropper
    dropper.close()


def require_pg() -> None:
    """Skip the test when PostgreSQL does not answer (fail it where PostgreSQL is required)."""
    problem = _pg_available()
    if problem is not None:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required here but does not answer: {problem}")
        pytest.skip(f"PostgreSQL not available: {problem}")


@contextlib.contextmanager
def empty_pg_database(prefix: str) -> Iterator[str]:
    """The URL of a new PostgreSQL database with nothing in it (no migrations), dropped after."""
    require_pg()
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield _pg_url(name)
    finally:
        _drop_database(name)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    require_pg()
    name = f"eventyard_tmpl_{os.getpid()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    Store(_pg_url(name)).migrate()
    yield name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _clone_template(template: str) -> str:
    name = f"eventyard_t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        # WAL_LOG copies a small template in ~60 ms; FILE_COPY forces a checkpoint (~400 ms).
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY WAL_LOG")
    return name


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, pg_dropper: _Dropper) -> Iterator[str]:
    name = _clone_template(request.getfixturevalue("pg_template"))
    yield _pg_url(name)
    pg_dropper.drop(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/eventyard.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_store_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_dropper: _Dropper,
) -> Iterator[str]:
    """Like `store_url`, but one database per test module and backend: for a server process
    that a module's tests share, each test in a project of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db')}/eventyard.db"
        return
    name = _clone_template(request.getfixturevalue("pg_template"))
    yield _pg_url(name)
    pg_dropper.drop(name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(store_url: str) -> Settings:
    return Settings(database_url=store_url)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = open_store(settings.database_url, read_connections=2)
    yield s
    s.close()


@pytest.fixture
def services(store: Store, settings: Settings) -> Services:
    return build_services(store, settings, SystemClock())


@pytest.fixture
def app(services: Services) -> EventyardApp:
    return create_app(services)


@pytest.fixture
async def client(app: EventyardApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as c:
        yield c


@dataclass
class Api:
    """A project with its two admin keys, and a client to call the API with them."""

    client: httpx.AsyncClient
    project_id: str
    live_key: str
    test_key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.test_key}"}

    async def post(
        self, path: str, json: object = None, key: str | None = None, **kw: object
    ) -> httpx.Response:
        headers = {**self.auth(key), **kw.pop("headers", {})}  # type: ignore[dict-item]
        return await self.client.post(path, json=json, headers=headers, **kw)  # type: ignore[arg-type]

    async def get(self, path: str, key: str | None = None, **kw: object) -> httpx.Response:
        return await self.client.get(path, headers=self.auth(key), **kw)  # type: ignore[arg-type]

    async def send(
        self, trigger: str = "signup", user_id: str = "u1", key: str | None = None, **fields: object
    ) -> httpx.Response:
        return await self.post(
            "/v1/events", {"trigger": trigger, "user_id": user_id, **fields}, key=key
        )


async def make_api(client: httpx.AsyncClient, services: Services, name: str) -> Api:
    result = await init_project(services.store, services.clock, name)
    return Api(
        client=client,
        project_id=result.project.id,
        live_key=result.keys[_env("live")],
        test_key=result.keys[_env("test")],
    )


def _env(value: str):  # type: ignore[no-untyped-def]
    from eventyard.domain.models import Environment

    return Environment(value)


@pytest.fixture
async def api(client: httpx.AsyncClient, services: Services) -> Api:
    return await make_api(client, services, "acme")


@pytest.fixture
async def other_api(client: httpx.AsyncClient, services: Services) -> Api:
    return await make_api(client, services, "globex")
