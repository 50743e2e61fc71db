"""`eventyard serve --processes N`: N server processes sharing one listening socket.

The parent binds the port once (so a port in use is one clear error), applies migrations,
and forks N children before it has opened any database connection or started a thread:
each child opens its own store, builds its own app and accepts connections on the inherited
socket; the kernel hands each new connection to one of them. Nothing a request needs lives
in one child only (rate limits, idempotency, claims and the live feed all go through the
database), so which child answers does not matter.

Only child 0 runs the delivery worker (unless `--no-worker`): one worker per machine keeps
`consumer_concurrency` a per-consumer bound rather than N times it; claims would be safe
with more (leases, `FOR UPDATE SKIP LOCKED`), and `eventyard worker` adds workers where more
delivery is wanted.

SIGTERM or SIGINT to the parent stops every child gracefully (SIGTERM to each; those still
running after `STOP_GRACE_S` are killed) and the parent exits when they all have. The kill
is armed as a timer (SIGALRM) when the stop begins, so it comes even while the parent blocks
in `waitpid` for children that never exit on their own. The
children run in a process group of their own, so a terminal's Ctrl-C reaches the parent
only and each child hears one signal. A child that dies while the others serve is logged
with its exit status and started again; one that dies within `START_GRACE_S` of its start
(a bad setting, a database refused) stops them all, since restarting would fail alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

from eventyard.logs import close_access_log

logger = logging.getLogger("eventyard.serve")

START_GRACE_S = 10.0
STOP_GRACE_S = 15.0


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Forks `run_child(index, sock)` N times and keeps N running until told to stop."""

    def __init__(
        self,
        processes: int,
        sock: socket.socket,
        run_child: Callable[..., None],
        *,
        start_grace: float = START_GRACE_S,
        stop_grace: float | None = None,
    ):
        self._processes = processes
        self._sock = sock  # kept open here too: a child started again inherits it
        self._run_child = run_child
        self._start_grace = start_grace
        self._stop_grace = STOP_GRACE_S if stop_grace is None else stop_grace
        self._children: dict[int, tuple[int, float]] = {}  # pid -> (index, started at)
        self._stopping = False
        self.failed = False

    def _fork(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child: serve, then leave without running the parent's cleanup
            code = 1
            try:
                os.setpgid(0, 0)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                self._run_child(index, self._sock)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                logger.exception("server process %d failed", index)
            finally:
                close_access_log()  # os._exit runs no atexit hook
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self._children[pid] = (index, time.monotonic())
        logger.info("server process %d started (pid %d)", index, pid)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            logger.info("stopping %d server processes", len(self._children))
            self._stopping = True
            # A signal handler runs while `run` blocks in waitpid (which then resumes), so
            # the escalation is a timer of its own rather than a step of the loop.
            signal.signal(signal.SIGALRM, self._kill)
            signal.setitimer(signal.ITIMER_REAL, self._stop_grace)
        for pid in self._children:
            _signal(pid, signal.SIGTERM)

    def _kill(self, signum: int, frame: FrameType | None) -> None:
        if self._children:
            logger.warning(
                "%d server processes still running %.0f s after SIGTERM; killing them",
                len(self._children),
                self._stop_grace,
            )
        for pid in self._children:
            _signal(pid, signal.SIGKILL)

    def run(self) -> int:
        """Serve until stopped; the exit code: 0, or 1 when a child failed at start."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for index in range(self._processes):
            self._fork(index)
        while self._children:
            pid, status = os.waitpid(-1, 0)
            index, started = self._children.pop(pid)
            if self._stopping:
                continue
            how = _describe(status)
            if time.monotonic() - started < self._start_grace:
                logger.error("server process %d %s at start; stopping the others", index, how)
                self.failed = True
                self._stop(signal.SIGTERM, None)
                continue
            logger.error("server process %d (pid %d) %s; starting it again", index, pid, how)
            self._fork(index)
        signal.setitimer(signal.ITIMER_REAL, 0)  # all ended: no kill is due
        self._sock.close()
        return 1 if self.failed else 0


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
