"""`tests/receiver.py`'s `Receiver` on an event loop of its own, for tests that drive server
processes from blocking code.

The receiver records every request in its loop's thread; the test reads `requests` from its
own thread (a list only ever appended to), and `wait_until` polls it with a deadline::

    with ThreadedReceiver(default=Reply(200, delay_seconds=0.01)) as receiver:
        ...  # point a consumer at receiver.url("/hook")
        receiver.wait_until(lambda got: len(got) >= 10, within=20)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from tests.receiver import ReceivedRequest, Receiver, Reply


class ThreadedReceiver:
    def __init__(self, default: Reply | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._receiver: Receiver | None = None
        self._default = default

    def _call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> ThreadedReceiver:
        self._thread.start()

        async def make() -> Receiver:
            receiver = Receiver(default=self._default)
            await receiver.start()
            return receiver

        self._receiver = self._call(make())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._receiver is not None:
            self._call(self._receiver.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def url(self, path: str = "/") -> str:
        assert self._receiver is not None
        return self._receiver.url(path)

    @property
    def requests(self) -> list[ReceivedRequest]:
        assert self._receiver is not None
        return list(self._receiver.requests)

    def wait_until(
        self, done: Callable[[list[ReceivedRequest]], bool], within: float
    ) -> list[ReceivedRequest]:
        """Poll until `done(requests)` holds; fail with what arrived after `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            got = self.requests
            if done(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"after {within} s the receiver had {len(got)} requests")
            time.sleep(0.05)
