"""Slow and hostile clients against a real `eventyard serve` process, over raw sockets.

A client that sends its headers or its body a byte at a time is answered 408 and cut off at
the deadline (set short here through EVENTYARD_HEADER_TIMEOUT_SECONDS and
EVENTYARD_BODY_TIMEOUT_SECONDS); a connection that never sends a byte is closed. A body
past the 512 KB limit, streamed chunked for hundreds of megabytes or announced with a huge
Content-Length, is answered 413 stating the limit and the connection is closed, while the
server's resident memory (/proc/PID/status) stays flat; so does an endless header (431).
Hundreds of idle connections do not stop new requests being served. Requests that arrive
normally — whole, split across packets, pipelined, kept alive — are not disturbed.

These are tests of the HTTP layer, not of storage: they run on SQLite only.
"""

from __future__ import annotations

import http.client
import json
import re
import resource
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import ServerProcess, init_project

HEADER_TIMEOUT = 1
BODY_TIMEOUT = 2
LIMIT = 512 * 1024
MB = 1024 * 1024


@dataclass
class Server:
    process: ServerProcess
    key: str

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.process.port)

    def rss_kb(self) -> int:
        assert self.process.proc is not None
        for line in Path(f"/proc/{self.process.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def connect(self) -> socket.socket:
        return socket.create_connection(self.address, timeout=10)

    def count_events(self, user_id: str) -> int:
        got = httpx.get(
            self.process.url + "/v1/events",
            params={"user_id": user_id},
            headers={"Authorization": f"Bearer {self.key}"},
        )
        assert got.status_code == 200, got.text
        return len(got.json()["data"])


def _start(tmp: Path, env: dict[str, str], open_files: int | None = None) -> Iterator[Server]:
    """A server; with `open_files`, started under that soft limit on open files."""
    url = f"sqlite:///{tmp / 'hostile.db'}"
    key = init_project(url)["keys"]["test"]
    process = ServerProcess(url, tmp / "server.log", env, worker=False)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if open_files is not None:  # the child inherits the limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))
    try:
        process.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield Server(process, key)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "EVENTYARD_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "EVENTYARD_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    }
    yield from _start(tmp_path_factory.mktemp("hostile"), env)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after it

    def json(self) -> Any:
        return json.loads(self.body)


def read_answer(sock: socket.socket, within: float = 10.0, close_within: float = 3.0) -> Answer:
    """Read one answer (Content-Length framed); `closed` if the connection then ended
    within `close_within` seconds (an idle kept-alive connection ends after 5)."""
    sock.settimeout(within)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(sock)
        assert chunk, f"the connection closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = _recv(sock)
        assert chunk, "the connection closed in the middle of the answer"
        body += chunk
    closed = _closes(sock, close_within) if close_within else False
    return Answer(int(status_line.split()[1]), headers, body[:length], closed)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def _closes(sock: socket.socket, within: float = 5.0) -> bool:
    """Whether the server ends the connection within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def post_head(server: Server, path: str = "/v1/events", **headers: str) -> bytes:
    fields = {
        "Host": "eventyard.test",
        "Authorization": f"Bearer {server.key}",
        "Content-Type": "application/json",
        **headers,
    }
    lines = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in fields.items())
    return f"POST {path} HTTP/1.1\r\n{lines}\r\n".encode("latin-1")


def event_body(user_id: str) -> bytes:
    return json.dumps({"trigger": "hostile", "user_id": user_id}).encode()


class Sender(threading.Thread):
    """Sends `chunks` on the socket until they run out or the server cuts the connection."""

    def __init__(self, sock: socket.socket, chunks: Iterator[bytes]) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.chunks = chunks
        self.sent = 0
        self.cut_off = False
        self.started = time.monotonic()
        self.cut_off_after = 0.0  # seconds from start to the server cutting it off

    def run(self) -> None:
        try:
            for chunk in self.chunks:
                self.sock.sendall(chunk)
                self.sent += len(chunk)
        except OSError:  # broken pipe or reset: the server closed the connection
            self.cut_off = True
            self.cut_off_after = time.monotonic() - self.started


class RssWatch(threading.Thread):
    """Samples the server's resident memory every 20 ms until stopped; keeps the peak."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.before = server.rss_kb()
        self.peak = self.before
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.server.rss_kb())

    def growth_mb(self) -> float:
        self.done.set()
        self.join()
        self.peak = max(self.peak, self.server.rss_kb())
        return (self.peak - self.before) / 1024


def trickle(sock: socket.socket, data: bytes, gap: float) -> Answer | None:
    """Send `data` a byte at a time, `gap` seconds apart, watching for an answer between
    bytes; the answer if one came before the data ran out (the loop is bounded by it)."""
    for i in range(len(data)):
        try:
            sock.sendall(data[i : i + 1])
        except OSError:
            break
        sock.settimeout(gap)
        try:
            peek = sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if peek:
            return read_answer(sock)
        break
    try:
        return read_answer(sock, within=BODY_TIMEOUT + 5)
    except AssertionError:
        return None


# --- slowloris ---------------------------------------------------------------------------------


def _assert_timed_out(answer: Answer | None, elapsed: float, limit: int, setting: str) -> None:
    """A 408 naming the deadline and its setting, at the deadline, and the connection ended."""
    assert answer is not None, "no answer: the server went on waiting"
    assert answer.status == 408
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == "request_timeout"
    assert f"{limit} s" in problem["message"]
    assert setting in problem["message"]
    assert answer.closed
    assert limit * 0.9 <= elapsed < limit + 3


def test_headers_sent_byte_by_byte_are_cut_off_at_the_header_deadline(server: Server) -> None:
    head = post_head(server, X_Padding="p" * 200)
    with server.connect() as sock:
        started = time.monotonic()
        answer = trickle(sock, head, gap=0.1)  # 0.1 s a byte: 30 s for the whole head
        elapsed = time.monotonic() - started
    _assert_timed_out(answer, elapsed, HEADER_TIMEOUT, "EVENTYARD_HEADER_TIMEOUT_SECONDS")


def test_a_body_sent_byte_by_byte_is_cut_off_at_the_body_deadline(server: Server) -> None:
    body = event_body("slow-body") + b" " * 100
    with server.connect() as sock:
        sock.sendall(post_head(server, Content_Length=str(len(body))))
        started = time.monotonic()
        answer = trickle(sock, body, gap=0.1)  # 0.1 s a byte: 15 s for the whole body
        elapsed = time.monotonic() - started
    _assert_timed_out(answer, elapsed, BODY_TIMEOUT, "EVENTYARD_BODY_TIMEOUT_SECONDS")
    assert server.count_events("slow-body") == 0


def test_a_connection_that_never_sends_a_byte_is_closed_at_the_header_deadline(
    server: Server,
) -> None:
    with server.connect() as sock:
        started = time.monotonic()
        assert _closes(sock, within=HEADER_TIMEOUT + 5)
        assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9


def test_the_next_request_on_a_kept_alive_connection_has_its_own_header_deadline(
    server: Server,
) -> None:
    body = event_body("kept-alive")
    with server.connect() as sock:
        sock.sendall(post_head(server, Content_Length=str(len(body))) + body)
        first = read_answer(sock, close_within=0.5)
        assert first.status == 201
        assert not first.closed
        answer = trickle(sock, post_head(server), gap=0.1)
    assert answer is not None
    assert answer.status == 408
    assert answer.closed


# --- requests that arrive normally are untouched -----------------------------------------------


def test_a_body_arriving_in_pieces_within_the_deadline_is_stored(server: Server) -> None:
    body = event_body("in-pieces")
    with server.connect() as sock:
        sock.sendall(post_head(server, Content_Length=str(len(body))))
        time.sleep(0.3)
        sock.sendall(body[:10])
        time.sleep(0.3)
        sock.sendall(body[10:])
        answer = read_answer(sock, close_within=0)
    assert answer.status == 201, answer.body
    assert server.count_events("in-pieces") == 1


def test_pipelined_and_kept_alive_requests_are_all_answered(server: Server) -> None:
    requests = b""
    for i in range(5):
        body = event_body(f"pipelined-{i}")
        requests += post_head(server, Content_Length=str(len(body))) + body
    with server.connect() as sock:
        sock.sendall(requests)
        statuses = [read_answer(sock, close_within=0).status for _ in range(5)]
    assert statuses == [201] * 5
    with httpx.Client(base_url=server.process.url) as client:
        auth = {"Authorization": f"Bearer {server.key}"}
        for _ in range(20):
            sent = client.post(
                "/v1/events", json={"trigger": "hostile", "user_id": "keep"}, headers=auth
            )
            assert sent.status_code == 201, sent.text
    assert server.count_events("keep") == 20


# --- oversized bodies and headers --------------------------------------------------------------


ENDLESS = 1024 * 1024  # MB: a terabyte, more than any test could send before its timeout


def _mb_chunks(total_mb: int) -> Iterator[bytes]:
    chunk = b"%x\r\n" % MB + b"x" * MB + b"\r\n"
    for _ in range(total_mb):
        yield chunk


def _raw_mb(total_mb: int) -> Iterator[bytes]:
    block = b"x" * MB
    for _ in range(total_mb):
        yield block


def _stream_and_answer(
    server: Server, head: bytes, chunks: Iterator[bytes]
) -> tuple[Answer, Sender, float]:
    with server.connect() as sock:
        sock.sendall(head)
        watch = RssWatch(server)
        watch.start()
        sender = Sender(sock, chunks)
        sender.start()
        answer = read_answer(sock, within=20)
        sender.join(timeout=BODY_TIMEOUT + 10)
        growth = watch.growth_mb()
    return answer, sender, growth


def _assert_cut_off_with_flat_memory(
    sender: Sender, growth_mb: float, within: float = BODY_TIMEOUT + 3
) -> None:
    """The server ended the endless stream within `within` seconds (after an early answer
    it drops what comes until the body deadline), its memory flat all along."""
    assert sender.cut_off, "the server read the whole stream"
    assert sender.cut_off_after < within, f"cut off only after {sender.cut_off_after:.1f} s"
    assert growth_mb < 16, f"the server's memory grew {growth_mb:.1f} MB"


def _assert_too_large(answer: Answer) -> None:
    assert answer.status == 413, answer.body
    problem = answer.json()
    assert problem["code"] == "payload_too_large"
    assert problem["limit"] == LIMIT
    assert "524,288 bytes" in problem["message"]
    assert answer.closed


def test_a_chunked_stream_of_hundreds_of_megabytes_is_refused_with_flat_memory(
    server: Server,
) -> None:
    for _ in range(2):  # the first round warms up the paths, the second is the one judged
        answer, sender, growth = _stream_and_answer(
            server, post_head(server, Transfer_Encoding="chunked"), _mb_chunks(ENDLESS)
        )
    _assert_too_large(answer)
    _assert_cut_off_with_flat_memory(sender, growth)


def test_a_huge_content_length_is_refused_before_the_body_is_read(server: Server) -> None:
    head = post_head(server, Content_Length=str(50 * 1024 * MB))
    answer, sender, growth = _stream_and_answer(server, head, _raw_mb(ENDLESS))
    _assert_too_large(answer)
    assert answer.json()["size"] == 50 * 1024 * MB
    _assert_cut_off_with_flat_memory(sender, growth)


def test_a_body_sent_without_a_key_is_not_read_on(server: Server) -> None:
    head = post_head(server, Transfer_Encoding="chunked", Authorization="Bearer nope")
    answer, sender, growth = _stream_and_answer(server, head, _mb_chunks(ENDLESS))
    assert answer.status == 401
    assert answer.closed
    _assert_cut_off_with_flat_memory(sender, growth)


def test_a_client_that_reads_only_after_sending_a_50_mb_body_gets_the_413(
    server: Server,
) -> None:
    # http.client (under requests, kept alive) writes the whole body before it reads.
    body = b'{"trigger": "hostile", "user_id": "big", "payload": {"x": "' + b"x" * 50 * MB
    connection = http.client.HTTPConnection(*server.address, timeout=20)
    try:
        connection.request(
            "POST",
            "/v1/events",
            body=body + b'"}}',
            headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
        )
        answer = connection.getresponse()
        assert answer.status == 413
        problem = json.loads(answer.read())
    finally:
        connection.close()
    assert "the limit is 524,288 bytes a request" in problem["message"]
    assert server.count_events("big") == 0


def test_an_endless_header_is_refused_431_with_flat_memory(server: Server) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: eventyard.test\r\nX-Endless: "
    answer, sender, growth = _stream_and_answer(server, head, _raw_mb(ENDLESS))
    assert answer.status == 431
    problem = answer.json()
    assert problem["code"] == "headers_too_large"
    assert "65,536 bytes" in problem["message"]
    assert "EVENTYARD_MAX_HEADER_BYTES" in problem["message"]
    assert answer.closed
    _assert_cut_off_with_flat_memory(sender, growth, within=3)  # at once: nothing to linger for


def test_a_header_past_the_limit_is_refused_431_when_it_arrives_whole(tmp_path: Path) -> None:
    """The head is measured the same whether it trickles in or comes in one piece (before,
    a head that arrived whole was parsed before it was measured, and passed)."""
    for server in _start(tmp_path, {"EVENTYARD_MAX_HEADER_BYTES": "1000"}):
        for size, expected in ((600, 200), (1500, 431), (50_000, 431)):
            sock = server.connect()
            try:
                sock.sendall(
                    b"GET /healthz HTTP/1.1\r\nHost: eventyard.test\r\n"
                    + b"X-Big: "
                    + b"a" * size
                    + b"\r\nConnection: close\r\n\r\n"
                )
                answer = read_answer(sock)
            finally:
                sock.close()
            assert answer.status == expected, (size, answer.status)
            if expected == 431:
                assert "1,000 bytes" in answer.json()["message"]


def test_a_head_whose_blank_line_straddles_two_reads_is_not_taken_for_a_large_head(
    server: Server,
) -> None:
    """The blank line that ends the head may be split across reads, with the body in the
    second: the body must not be counted as head (it once got a 431)."""
    # 100 KB, past the 64 KB head limit, in whitespace: the payload itself stays small.
    body = b'{"trigger": "t", "user_id": "u",' + b" " * 100_000 + b'"payload": {}}'
    head = (
        b"POST /v1/events HTTP/1.1\r\nHost: eventyard.test\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {server.key}\r\n".encode()
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    )
    for split in (len(head) - 2, len(head) - 1, len(head) - 3):
        sock = server.connect()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(head[:split])
            time.sleep(0.1)  # two reads on the server's side
            sock.sendall(head[split:] + body)
            answer = read_answer(sock)
        finally:
            sock.close()
        assert answer.status == 201, (split, answer.status)


def _statuses_until_closed(sock: socket.socket, within: float = 10.0) -> list[int]:
    """The status of every answer on the connection, read until the server closes it."""
    sock.settimeout(within)
    data = b""
    while chunk := _recv(sock):
        data += chunk
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def test_pipelined_requests_with_a_large_body_are_not_taken_for_a_large_head(
    server: Server,
) -> None:
    """Bytes of a body are never counted as head, whatever else shares the read."""
    body = b'{"trigger": "t", "user_id": "pipelined-big",' + b" " * 200_000 + b'"payload": {}}'
    get = b"GET /healthz HTTP/1.1\r\nHost: eventyard.test\r\n\r\n"
    post = post_head(server, Content_Length=str(len(body)), Connection="close") + body
    with server.connect() as sock:
        sock.sendall(get + get + post)
        assert _statuses_until_closed(sock) == [200, 200, 201]


def test_a_pipelined_request_past_the_head_limit_is_answered_431_in_its_turn(
    server: Server,
) -> None:
    """The request before it is answered as usual; the oversized one gets the 431, and the
    connection ends after it."""
    get = b"GET /healthz HTTP/1.1\r\nHost: eventyard.test\r\n\r\n"
    big = b"GET /healthz HTTP/1.1\r\nHost: eventyard.test\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    with server.connect() as sock:
        sock.sendall(get + big + get)
        assert _statuses_until_closed(sock) == [200, 431]


# --- many idle connections ---------------------------------------------------------------------

IDLE = 600


def test_hundreds_of_idle_connections_do_not_stop_new_requests(tmp_path: Path) -> None:
    # The default header deadline (10 s): the idle connections stay open through the test.
    # Started with a soft limit of 256 open files, the server must lift it to hold them all.
    for server in _start(tmp_path, {}, open_files=256):
        idle: list[socket.socket] = []
        try:
            for i in range(IDLE):
                sock = server.connect()
                if i % 2:  # half of them begin a request and stop in its headers
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                idle.append(sock)
            slowest = 0.0
            auth = {"Authorization": f"Bearer {server.key}"}
            for i in range(30):  # a fresh connection each
                started = time.monotonic()
                sent = httpx.post(
                    server.process.url + "/v1/events",
                    json={"trigger": "hostile", "user_id": "among-idle"},
                    headers=auth,
                    timeout=5,
                )
                slowest = max(slowest, time.monotonic() - started)
                assert sent.status_code == 201, (i, sent.text)
            assert slowest < 2, f"a request among {IDLE} idle connections took {slowest:.1f} s"
            assert server.count_events("among-idle") == 30
            # and none of the idle ones was dropped to make room
            assert not any(_closes(sock, within=0.01) for sock in idle[:20])
        finally:
            for sock in idle:
                sock.close()


def test_an_answer_before_the_body_says_the_connection_closes(server: Server) -> None:
    """A 401 sent while the body is still on its way ends the connection, and says so, so a
    client with a pool of kept-alive connections does not send its next request on it."""
    with server.connect() as sock:
        sock.sendall(post_head(server, Content_Length="40", Authorization="Bearer nope"))
        answer = read_answer(sock)
    assert answer.status == 401
    assert answer.headers.get("connection") == "close"
    assert answer.closed
    with server.connect() as sock:  # a body sent whole
        body = event_body("u-close")
        sock.sendall(post_head(server, Content_Length=str(len(body))) + body)
        answer = read_answer(sock, close_within=0)
    assert answer.status == 201
    assert "connection" not in answer.headers
