"""A client used in a forked child (pre-forking servers, multiprocessing's "fork") talks to
the server over connections of its own, never over the parent's pooled sockets."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from eventyard_client import Client

from tests.client.conftest import RunningServer

SCRIPT = textwrap.dedent(
    """
    import os, sys, threading
    from eventyard_client import Client

    url, key = sys.argv[1], sys.argv[2]
    client = Client(url, key, max_retries=0)
    client.send("forked", "parent", {"n": -1})  # the pool now holds a kept-alive socket
    before = client._http
    pid = os.fork()
    if pid == 0:
        ok = client._http is not before
        try:
            for n in range(30):
                sent = client.send("forked", "child", {"n": n})
                ok = ok and sent.user_id == "child" and sent.payload == {"n": n}
        except Exception as exc:
            print("child:", repr(exc), file=sys.stderr, flush=True)
            ok = False
        os._exit(0 if ok else 1)
    errors = []
    for n in range(30):
        sent = client.send("forked", "parent", {"n": n})
        if sent.user_id != "parent" or sent.payload != {"n": n}:
            errors.append(sent)
    _, status = os.waitpid(pid, 0)
    client.close()
    sys.exit(1 if errors or os.waitstatus_to_exitcode(status) else 0)
    """
)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_gets_connections_of_its_own(shared_server: RunningServer) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, shared_server.url, shared_server.live_key],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with Client(shared_server.url, shared_server.live_key) as client:
        stored = list(client.events.iter(trigger="forked"))
    assert sorted((e.user_id, e.payload["n"]) for e in stored) == sorted(
        [("parent", -1)] + [("parent", n) for n in range(30)] + [("child", n) for n in range(30)]
    )
