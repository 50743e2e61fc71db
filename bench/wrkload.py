"""Driving wrk and reading what it prints.

`run_wrk` runs one wrk load (pinned to a core with taskset) and parses its text report:
requests/s, the p50/p99 lines of `--latency`, the `Non-2xx or 3xx responses` line and the
`Socket errors` line. A run with any of those errors is `ok == False`, and the harness flags
it instead of quietly reporting its rate. A script's own `done()` may add figures as lines
`x-<name>: <number>` (post_batch.lua counts the events the server accepted); they land in
`WrkResult.custom`. `run_figures` turns a result into one run of a `Figure`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

INSTALL_HINT = "apt-get update && apt-get install -y wrk"
# wrk's own default (2 s) turns a slow answer into a socket error and leaves it out of the
# latencies; a longer one keeps slow answers in the p99, where they belong.
TIMEOUT_S = 10

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(\w+),", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s+(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_CUSTOM = re.compile(r"^x-([a-z_]+):\s+(-?[\d.]+)\s*$", re.MULTILINE)
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)


class WrkMissing(RuntimeError):
    pass


class WrkOutputError(RuntimeError):
    pass


@dataclass
class WrkResult:
    requests_per_s: float
    requests: int
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    raw: str = ""
    custom: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"] = self.errors
        return out


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(f"wrk is not installed; install it with:\n  {INSTALL_HINT}")
    return path


def wrk_version() -> str:
    # wrk has no --version; its usage text starts with the version and exits 1.
    proc = subprocess.run([wrk_path(), "-v"], capture_output=True, text=True, check=False)
    text = (proc.stdout + proc.stderr).strip()
    return text.splitlines()[0].partition(" Copyright")[0].strip() if text else "unknown"


def parse_wrk(text: str) -> WrkResult:
    rate = _RATE.search(text)
    total = _TOTAL.search(text)
    percentiles = {m[1]: float(m[2]) * _UNITS_MS[m[3]] for m in _PERCENTILE.finditer(text)}
    if rate is None or total is None or "50" not in percentiles or "99" not in percentiles:
        raise WrkOutputError(f"cannot read wrk's report (was --latency given?):\n{text}")
    non_2xx = _NON_2XX.search(text)
    socket = _SOCKET.search(text)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, socket.groups()), strict=True))
        if socket
        else {}
    )
    return WrkResult(
        requests_per_s=float(rate[1]),
        requests=int(total[1]),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors={k: v for k, v in socket_errors.items() if v},
        raw=text,
        custom={m[1]: float(m[2]) for m in _CUSTOM.finditer(text)},
    )


def run_figures(result: WrkResult, per_request: int = 1) -> dict[str, float]:
    """One run of a `Figure`: `rate` is requests/s times the events each request carries."""
    out = {
        "rate": result.requests_per_s * per_request,
        "requests_per_s": result.requests_per_s,
        "requests": float(result.requests),
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "errors": float(result.errors),
        "non_2xx": float(result.non_2xx),
        "socket_errors": float(sum(result.socket_errors.values())),
    }
    out.update(result.custom)
    return out


def wrk_command(
    url: str,
    *,
    script: Path,
    script_args: list[str],
    seconds: int,
    connections: int,
    threads: int,
    cpu: str,
) -> list[str]:
    return [
        "taskset",
        "-c",
        cpu,
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={TIMEOUT_S}s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        *script_args,
    ]


def run_wrk(
    url: str,
    *,
    script: Path,
    script_args: list[str],
    seconds: int,
    connections: int,
    threads: int,
    cpu: str,
) -> WrkResult:
    command = wrk_command(
        url,
        script=script,
        script_args=script_args,
        seconds=seconds,
        connections=connections,
        threads=threads,
        cpu=cpu,
    )
    proc = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + TIMEOUT_S + 60
    )
    if proc.returncode != 0:
        raise WrkOutputError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return parse_wrk(proc.stdout)


def start_wrk(
    url: str,
    *,
    script: Path,
    script_args: list[str],
    seconds: int,
    connections: int,
    threads: int,
    cpu: str,
) -> subprocess.Popen[str]:
    """wrk in the background (a load beside another measurement); read it with `finish_wrk`."""
    command = wrk_command(
        url,
        script=script,
        script_args=script_args,
        seconds=seconds,
        connections=connections,
        threads=threads,
        cpu=cpu,
    )
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_wrk(proc: subprocess.Popen[str], timeout: float) -> WrkResult:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise WrkOutputError(f"wrk did not finish in {timeout:.0f}s:\n{out}\n{err}") from None
    if proc.returncode != 0:
        raise WrkOutputError(f"wrk failed ({proc.returncode}):\n{out}\n{err}")
    return parse_wrk(out)
