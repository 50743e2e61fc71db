"""`GET /v1/events/stream` against real server processes, on SQLite and PostgreSQL.

A streaming response never ends, which httpx's ASGI transport cannot show while it runs, so
these tests start `eventyard serve` on a free port. On PostgreSQL a second process takes the
events, so the stream is shown to follow events stored by another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.server import ServerProcess, init_project

pytestmark = pytest.mark.anyio
WAIT = 5.0  # seconds for an expected message; the feed polls every half second


@dataclass
class Message:
    id: str | None = None
    event: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return orjson.loads(self.data)


class Stream:
    """An open SSE connection whose messages land in a queue as they come."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.comments: list[str] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        current = Message()
        async for line in self.response.aiter_lines():
            if line == "":
                if current.id is not None or current.data:
                    await self.messages.put(current)
                current = Message()
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "id":
                    current.id = value
                elif name == "event":
                    current.event = value
                elif name == "data":
                    current.data += value

    async def next(self) -> Message:
        return await asyncio.wait_for(self.messages.get(), WAIT)

    async def take(self, count: int) -> list[Message]:
        return [await self.next() for _ in range(count)]

    async def nothing_for(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        assert self.messages.empty(), f"unexpected: {self.messages.get_nowait()}"

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await self._task
        await self.response.aclose()


@dataclass
class Deployment:
    """One or two server processes on one database, with a project's keys."""

    reader: ServerProcess  # where the streams connect
    writer: ServerProcess  # where events are sent: another process on PostgreSQL
    live_key: str
    test_key: str
    other_live_key: str
    client: httpx.AsyncClient

    async def open(self, key: str, **params: str) -> Stream:
        headers = {"Authorization": f"Bearer {key}"}
        if "last_event_id" in params:
            headers["Last-Event-ID"] = params.pop("last_event_id")
        request = self.client.build_request(
            "GET", self.reader.url + "/v1/events/stream", headers=headers, params=params
        )
        response = await self.client.send(request, stream=True)
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        stream = Stream(response)
        for _ in range(100):  # the opening comment: the feed has taken its starting point
            if "connected" in stream.comments:
                return stream
            await asyncio.sleep(0.02)
        raise AssertionError("the stream did not open")

    async def send(self, trigger: str, user_id: str, **payload: Any) -> dict[str, Any]:
        sent = await self.client.post(
            self.writer.url + "/v1/events",
            headers={"Authorization": f"Bearer {self.live_key}"},
            json={"trigger": trigger, "user_id": user_id, "payload": payload},
        )
        assert sent.status_code == 201, sent.text
        body: dict[str, Any] = sent.json()
        return body

    async def get_event(self, event_id: str) -> Any:
        got = await self.client.get(
            self.reader.url + f"/v1/events/{event_id}",
            headers={"Authorization": f"Bearer {self.live_key}"},
        )
        assert got.status_code == 200, got.text
        return got.json()


@pytest.fixture
def servers(store_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    reader = ServerProcess(store_url, tmp_path / "reader.log", worker=False)
    writer = reader
    reader.start()
    try:
        if store_url.startswith("postgres"):
            writer = ServerProcess(store_url, tmp_path / "writer.log", worker=False)
            writer.start()
        yield reader, writer
    finally:
        for server in {id(reader): reader, id(writer): writer}.values():
            server.stop()


@pytest.fixture
async def deployment(
    store_url: str, servers: tuple[ServerProcess, ServerProcess]
) -> AsyncIterator[Deployment]:
    ours = init_project(store_url, "shop")
    theirs = init_project(store_url, "elsewhere")
    async with httpx.AsyncClient(timeout=10) as client:
        yield Deployment(
            reader=servers[0],
            writer=servers[1],
            live_key=ours["keys"]["live"],
            test_key=ours["keys"]["test"],
            other_live_key=theirs["keys"]["live"],
            client=client,
        )


async def test_new_events_arrive_in_order_as_get_event_shows_them(deployment: Deployment) -> None:
    before = await deployment.send("signup", "early")  # stored before the stream: not sent
    stream = await deployment.open(deployment.live_key)
    other_env = await deployment.open(deployment.test_key)
    other_project = await deployment.open(deployment.other_live_key)
    sent = [
        await deployment.send("signup", f"u{n}", n=n, html="<script>alert(1)</script>")
        for n in range(3)
    ]
    got = await stream.take(3)
    assert [m.id for m in got] == [e["id"] for e in sent]
    assert {m.event for m in got} == {"event"}
    for message in got:
        assert message.json() == await deployment.get_event(str(message.id))
    assert got[0].json()["payload"] == {"n": 0, "html": "<script>alert(1)</script>"}
    assert before["id"] not in {m.id for m in got}
    await stream.nothing_for(0.3)
    await other_env.nothing_for(0.5)  # the same project's test environment sees nothing
    await other_project.nothing_for(0.0)  # nor does another project
    for s in (stream, other_env, other_project):
        await s.close()


async def test_filters_by_trigger_and_user(deployment: Deployment) -> None:
    by_trigger = await deployment.open(deployment.live_key, trigger="purchase")
    by_user = await deployment.open(deployment.live_key, user_id="ada")
    both = await deployment.open(deployment.live_key, trigger="purchase", user_id="ada")
    signup_ada = await deployment.send("signup", "ada")
    purchase_bob = await deployment.send("purchase", "bob")
    purchase_ada = await deployment.send("purchase", "ada")
    assert [m.id for m in await by_trigger.take(2)] == [purchase_bob["id"], purchase_ada["id"]]
    assert [m.id for m in await by_user.take(2)] == [signup_ada["id"], purchase_ada["id"]]
    assert [m.id for m in await both.take(1)] == [purchase_ada["id"]]
    for s in (by_trigger, by_user, both):
        await s.nothing_for(0.3)
        await s.close()


async def test_last_event_id_resumes_without_gaps(deployment: Deployment) -> None:
    """A resume sends everything after the id, and repeats what the 2 s window holds at or
    below it (one may have committed late): a client drops repeats by id, never misses."""
    first = await deployment.open(deployment.live_key)
    one = await deployment.send("signup", "u1")
    assert (await first.next()).id == one["id"]
    await first.close()
    missed = [await deployment.send("signup", f"u{n}") for n in (2, 3)]
    resumed = await deployment.open(deployment.live_key, last_event_id=one["id"])
    assert [m.id for m in await resumed.take(3)] == [one["id"], *(e["id"] for e in missed)]
    later = await deployment.send("signup", "u4")
    assert (await resumed.next()).id == later["id"]
    await resumed.nothing_for(0.3)
    await resumed.close()
    # since_id does the same from a query parameter
    again = await deployment.open(deployment.live_key, since_id=missed[0]["id"])
    assert [m.id for m in await again.take(4)] == [
        one["id"],
        missed[0]["id"],
        missed[1]["id"],
        later["id"],
    ]
    await again.close()


async def test_bad_resume_points_are_refused_before_the_stream(deployment: Deployment) -> None:
    url = deployment.reader.url + "/v1/events/stream"
    auth = {"Authorization": f"Bearer {deployment.live_key}"}
    for headers, params in (
        ({**auth, "Last-Event-ID": "nonsense"}, {}),
        (auth, {"since_id": "evt_short"}),
        (auth, {"max_seconds": "0"}),
        (auth, {"surprise": "1"}),
    ):
        refused = await deployment.client.get(url, headers=headers, params=params)
        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert (await deployment.client.get(url)).status_code == 401


async def test_a_bounded_stream_ends_by_itself(deployment: Deployment) -> None:
    stream = await deployment.open(deployment.live_key, max_seconds="1")
    sent = await deployment.send("signup", "u1")
    assert (await stream.next()).id == sent["id"]
    await asyncio.wait_for(stream._task, 3)  # the body ends: the reader task finishes
    await stream.close()


async def test_clients_going_away_leave_the_server_well(deployment: Deployment) -> None:
    streams = [await deployment.open(deployment.live_key) for _ in range(5)]
    await deployment.send("signup", "u1")
    for s in streams:
        await s.next()
        await s.close()
    # Still serving, and new streams still work.
    fresh = await deployment.open(deployment.live_key)
    sent = await deployment.send("signup", "u2")
    assert (await fresh.next()).id == sent["id"]
    await fresh.close()
    await asyncio.sleep(0.3)
    ready = await deployment.client.get(deployment.reader.url + "/readyz")
    assert ready.status_code == 200
    reader = deployment.reader
    started = time.monotonic()
    reader.stop()  # with no stream left open, a graceful stop is prompt and clean
    assert time.monotonic() - started < 5
    log = reader.log_path.read_text()
    assert "Application shutdown complete" in log
    assert "Traceback" not in log
    assert "ERROR" not in log


async def test_a_revoked_key_stops_its_open_stream(deployment: Deployment) -> None:
    """The key is checked again while the stream is open, not only when it opened."""
    admin = {"Authorization": f"Bearer {deployment.live_key}"}
    made = await deployment.client.post(
        deployment.reader.url + "/v1/keys",
        json={"name": "watcher", "scopes": ["read"], "environment": "live"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    stream = await deployment.open(made.json()["key"])
    first = await deployment.send("signup", "before")
    assert (await stream.next()).id == first["id"]
    revoked = await deployment.client.delete(
        deployment.reader.url + f"/v1/keys/{made.json()['id']}", headers=admin
    )
    assert revoked.status_code == 200, revoked.text
    await asyncio.sleep(5.2)  # past the re-check interval (RECHECK_SECONDS)
    await deployment.send("signup", "after")
    await asyncio.wait_for(stream._task, 10)  # the server ended the stream
    assert stream.messages.empty()  # and sent nothing after the revocation
    await stream.close()


async def test_past_the_stream_limit_a_new_stream_is_refused_with_retry_after(
    store_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(
        store_url, tmp_path / "limited.log", {"EVENTYARD_MAX_STREAMS": "1"}, worker=False
    )
    server.start()
    try:
        keys = init_project(store_url, "limited")["keys"]
        async with httpx.AsyncClient(timeout=10) as client:
            limited = Deployment(
                reader=server,
                writer=server,
                live_key=keys["live"],
                test_key=keys["test"],
                other_live_key=keys["test"],
                client=client,
            )
            first = await limited.open(limited.live_key)
            sent = await limited.send("signup", "u1")
            assert (await first.next()).id == sent["id"]  # the first stream is open
            refused = await client.get(
                server.url + "/v1/events/stream",
                headers={"Authorization": f"Bearer {limited.live_key}"},
            )
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "10"
            assert "EVENTYARD_MAX_STREAMS=1" in refused.json()["message"]
            await first.close()
            for _ in range(50):  # the server notices the closed stream and frees its place
                again = await limited.open(limited.live_key, max_seconds="0.5")
                if not again._task.done():
                    break
                await asyncio.sleep(0.1)
            later = await limited.send("signup", "u2")
            assert (await again.next()).id == later["id"]
            await again.close()
    finally:
        server.stop()
