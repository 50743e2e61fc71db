"""A fast local webhook receiver for the delivery benchmark: answer 200 at once, note arrivals.

A raw asyncio HTTP/1.1 server (uvloop when installed), one process, keep-alive. Every POST
is answered `200` with an empty body as soon as its body is in, and recorded as (the time
it arrived, `time.time_ns()`, the wall clock the sender reads too; the event id from the
JSON body, the `id` every eventyard webhook carries; the `webhook-id` header). GETs:

- `GET /` answers 200 (readiness);
- `GET /count` answers the number of POSTs recorded so far, as text;
- `GET /results` answers every record as JSON `{"ns": [...], "event_ids": [...],
  "webhook_ids": [...]}`; `GET /results?clear=1` also forgets them.

    python bench/receiver.py --port 8123
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from typing import Any

import orjson

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
MAX_HEAD = 64 * 1024


class Records:
    def __init__(self) -> None:
        self.ns: list[int] = []
        self.event_ids: list[str | None] = []
        self.webhook_ids: list[str | None] = []

    def clear(self) -> None:
        self.ns, self.event_ids, self.webhook_ids = [], [], []


class Connection(asyncio.Protocol):
    def __init__(self, records: Records) -> None:
        self._records = records
        self._buffer = bytearray()
        self._transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # uvloop's transports are no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        arrived = time.time_ns()
        self._buffer += data
        while self._one_request(arrived):
            pass

    def _one_request(self, arrived: int) -> bool:
        """Answer one complete request from the buffer; False when none is complete yet."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD and self._transport is not None:
                self._transport.close()
            return False
        head = bytes(buffer[:end]).decode("latin-1")
        request_line, _, header_text = head.partition("\r\n")
        length = 0
        webhook_id = None
        for line in header_text.split("\r\n"):
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "webhook-id":
                webhook_id = value.strip()
        if len(buffer) < end + 4 + length:
            return False
        body = bytes(buffer[end + 4 : end + 4 + length])
        del buffer[: end + 4 + length]
        method, _, rest = request_line.partition(" ")
        path = rest.partition(" ")[0]
        if method == "POST":
            event_id = None
            with contextlib.suppress(orjson.JSONDecodeError, TypeError, KeyError):
                event_id = orjson.loads(body)["id"]
            records = self._records
            records.ns.append(arrived)
            records.event_ids.append(event_id)
            records.webhook_ids.append(webhook_id)
            self._transport.write(OK)
        else:
            self._transport.write(self._answer_get(path))
        return True

    def _answer_get(self, path: str) -> bytes:
        records = self._records
        if path.startswith("/count"):
            body = str(len(records.ns)).encode()
        elif path.startswith("/results"):
            body = orjson.dumps(
                {
                    "ns": records.ns,
                    "event_ids": records.event_ids,
                    "webhook_ids": records.webhook_ids,
                }
            )
            if "clear=1" in path:
                records.clear()
        else:
            body = b"ok"
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


async def serve(host: str, port: int) -> None:
    records = Records()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(records), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
