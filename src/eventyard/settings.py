"""Every setting eventyard reads, in one table.

Each setting has a name, a type, a default and a sentence of documentation. The table is the
single source: `Settings.from_env` reads `EVENTYARD_<NAME>` for each row, the CLI flags
override a few of them, and `docs/configuration.md` is checked against it by a test, so the
documentation cannot drift from the code. Values are parsed and checked once, at start-up;
a bad value stops the process with a message naming the variable.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_DATABASE_URL = "sqlite:///./eventyard.db"


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str], Any]
    doc: str

    @property
    def env_var(self) -> str:
        return "EVENTYARD_" + self.name.upper()


class SettingsError(ValueError):
    """A setting's value could not be parsed or is out of range."""


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be a whole number, 0 or more")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a number, 0 or more")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _database_url(raw: str) -> str:
    if not raw.startswith(("sqlite:", "postgresql://", "postgres://")):
        raise ValueError("must start with sqlite:/// or postgresql://")
    return raw


def _optional_postgres_url(raw: str) -> str:
    if raw and not raw.startswith(("postgresql://", "postgres://")):
        raise ValueError("must start with postgresql:// (or be empty)")
    return raw


def _schedule(raw: str) -> str:
    parts = [p.strip() for p in raw.split(",")]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError("must be comma-separated whole seconds, like 0,5,300")
    return ",".join(parts)


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"text", "json"}:
        raise ValueError("must be text or json")
    return value


def _log_level(raw: str) -> str:
    level = raw.strip().lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise ValueError("must be debug, info, warning or error")
    return level


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        DEFAULT_DATABASE_URL,
        _database_url,
        "Where events are stored: `sqlite:///path/to/file.db` (the default, a file in the "
        "working directory) or `postgresql://user@host:port/dbname`.",
    ),
    Setting("host", "127.0.0.1", str, "The address `eventyard serve` listens on."),
    Setting("port", 8000, _positive_int, "The port `eventyard serve` listens on."),
    Setting(
        "max_event_bytes",
        32 * 1024,
        _positive_int,
        "The largest event accepted, in bytes, measured as the event's JSON payload.",
    ),
    Setting(
        "max_request_bytes",
        512 * 1024,
        _positive_int,
        "The largest request body accepted, in bytes. Larger bodies are refused with 413 "
        "before they are read.",
    ),
    Setting(
        "max_header_bytes",
        64 * 1024,
        _positive_int,
        "The longest request line and headers accepted, in bytes. Past it the client gets "
        "431 and the connection is closed.",
    ),
    Setting(
        "header_timeout_seconds",
        10,
        _positive_int,
        "How long a client may take to send a request's line and headers, from the moment "
        "it connects (or begins the next request on a kept-alive connection). Past it the "
        "client gets 408 and the connection is closed; one that never sent a byte is closed.",
    ),
    Setting(
        "body_timeout_seconds",
        30,
        _positive_int,
        "How long a client may take to send a request's body, from the end of its headers. "
        "Past it the client gets 408 and the connection is closed.",
    ),
    Setting(
        "max_batch_events", 1000, _positive_int, "The most events one batch request may carry."
    ),
    Setting(
        "max_json_depth",
        32,
        _positive_int,
        "The deepest nesting of objects and arrays accepted in a request body.",
    ),
    Setting(
        "max_id_length",
        256,
        _positive_int,
        "The longest user id and idempotency key accepted, in characters.",
    ),
    Setting(
        "idempotency_window_seconds",
        7 * 24 * 3600,
        _positive_int,
        "How long an idempotency key is remembered (default 7 days). A key reused after "
        "the window creates a new event.",
    ),
    Setting(
        "commit_max_events",
        2000,
        _positive_int,
        "The most events one group commit gathers before it commits.",
    ),
    Setting(
        "cache_seconds",
        5,
        _positive_int,
        "How long a process trusts its cached copy of a key or trigger changed by another "
        "process. Changes made through the same process apply at once.",
    ),
    Setting(
        "read_connections",
        4,
        _positive_int,
        "How many database connections each process keeps for reads.",
    ),
    Setting(
        "database_session_url",
        "",
        _optional_postgres_url,
        "On PostgreSQL, a URL for the connections that need a session of their own: the "
        "LISTEN connection (delivery wake-ups, live streams) and a worker's presence lock. "
        "Set it to reach PostgreSQL directly (or a pool in session mode) when "
        "`EVENTYARD_DATABASE_URL` goes through PgBouncer in transaction mode. Empty: "
        "`EVENTYARD_DATABASE_URL`.",
    ),
    Setting(
        "database_prepared_statements",
        True,
        _bool,
        "On PostgreSQL, prepare statements a connection runs often (psycopg's default). "
        "Turn it off behind a pooler in transaction mode that cannot keep prepared "
        "statements (PgBouncer before 1.21, or without `max_prepared_statements`).",
    ),
    Setting(
        "database_timeout_seconds",
        30,
        _positive_int,
        "How long a serving process waits for the database (a read, or a write's commit) "
        "before it answers 503 with Retry-After, so a database that hangs rather than refuses "
        "(a frozen server, a network dropping packets) cannot hang requests or the worker. "
        "A write may still land once the database answers; retrying with the same "
        "idempotency key is safe.",
    ),
    Setting("log_level", "info", _log_level, "The log level: debug, info, warning or error."),
    Setting(
        "log_format",
        "text",
        _log_format,
        "`text` (one readable line a record: time, level, logger, message, `key=value` "
        "fields) or `json` (one JSON object a line: `time`, `level`, `logger`, `message`, "
        "the fields, `exc` for a traceback), for a log collector. Every line logged while "
        "handling a request carries its `request_id`.",
    ),
    Setting(
        "access_log",
        True,
        _bool,
        "Log one line a request (at info level): method, route template, status, "
        "`duration_ms`, `request_id`, the key's `project` and `environment`, `bytes`. Never "
        "the raw path, the query, headers or the body.",
    ),
    Setting(
        "metrics_token",
        "",
        str,
        "When set, `GET /metrics` needs `Authorization: Bearer <this token>`; when empty "
        "(the default), `/metrics` is public, like `/healthz`.",
    ),
    Setting(
        "webhook_allow_private",
        False,
        _bool,
        "Let webhooks reach private, loopback and link-local addresses (off by default, to "
        "keep consumers from probing the server's own network; turn it on for local use "
        "and tests).",
    ),
    Setting(
        "retry_schedule",
        "0,5,300,1800,7200,18000,36000,36000",
        _schedule,
        "Seconds before each webhook attempt: at once, then 5 s, 5 min, 30 min, 2 h, 5 h, "
        "10 h, 10 h. A consumer's own `retry_schedule` overrides it.",
    ),
    Setting(
        "webhook_timeout_seconds",
        15,
        _positive_int,
        "How long one webhook attempt may take (connect, send, answer) before it counts as "
        "failed. A consumer's own `timeout_seconds` overrides it.",
    ),
    Setting(
        "disable_failing_after_seconds",
        5 * 24 * 3600,
        _positive_int,
        "A webhook consumer whose every attempt has failed for this long (default 5 days) is "
        "disabled; its events still get pending transactions and wait for it.",
    ),
    Setting(
        "worker_concurrency",
        64,
        _positive_int,
        "How many webhook attempts one worker process runs at once.",
    ),
    Setting(
        "consumer_concurrency",
        8,
        _positive_int,
        "How many attempts to one consumer run at once, so a slow endpoint holds at most "
        "this many of the worker's slots and never delays the others.",
    ),
    Setting(
        "secret_overlap_seconds",
        24 * 3600,
        _positive_int,
        "After a signing secret is rotated, how long webhooks are signed with the old one "
        "too, unless the rotation says otherwise.",
    ),
    Setting(
        "max_streams",
        200,
        _positive_int,
        "How many event streams (GET /v1/events/stream and the dashboard's live mode) one "
        "server process keeps open at once; past it a new one is answered 503 with "
        "Retry-After.",
    ),
    Setting(
        "session_hours",
        12,
        _positive_int,
        "How long a dashboard sign-in lasts before the dashboard asks for the password again.",
    ),
    Setting(
        "rate_limit_per_second",
        0.0,
        _non_negative_float,
        "Requests a second each API key may make, on average (a token bucket per key, shared "
        "by every server process on PostgreSQL); past it the key gets 429 with Retry-After "
        "and RateLimit headers. 0, the default, turns limits off.",
    ),
    Setting(
        "rate_limit_burst",
        100,
        _positive_int,
        "How many requests a key may make at once before `rate_limit_per_second` paces it "
        "(the bucket's size), when limits are on.",
    ),
    Setting(
        "housekeeping_seconds",
        60,
        _non_negative_int,
        "How often `eventyard serve` and `eventyard worker` run a housekeeping pass: remove "
        "events past their TTL or their project's retention (in batches, between other "
        "writes), expired idempotency keys, and on PostgreSQL make partitions ahead and drop "
        "old ones. One process at a time does it on PostgreSQL. 0 turns it off "
        "(run `eventyard housekeep` from cron instead).",
    ),
    Setting(
        "partition_days",
        7,
        _positive_int,
        "On PostgreSQL, the span in days of each time partition of events (with their "
        "transactions, history and attempts), made ahead by housekeeping. Retention drops "
        "a partition once all of it is past every project's retention, so a shorter span "
        "frees space sooner; but every partition adds to the planning and reading of the "
        "queries that span them all (claiming deliveries, listing events), so a longer span "
        "suits a database that keeps events for years. A change applies to partitions "
        "made after it.",
    ),
)

_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    max_event_bytes: int = 32 * 1024
    max_request_bytes: int = 512 * 1024
    max_header_bytes: int = 64 * 1024
    header_timeout_seconds: int = 10
    body_timeout_seconds: int = 30
    max_batch_events: int = 1000
    max_json_depth: int = 32
    max_id_length: int = 256
    idempotency_window_seconds: int = 7 * 24 * 3600
    commit_max_events: int = 2000
    cache_seconds: int = 5
    read_connections: int = 4
    database_session_url: str = ""
    database_prepared_statements: bool = True
    database_timeout_seconds: int = 30
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = True
    metrics_token: str = ""
    webhook_allow_private: bool = False
    retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"
    webhook_timeout_seconds: int = 15
    disable_failing_after_seconds: int = 5 * 24 * 3600
    worker_concurrency: int = 64
    consumer_concurrency: int = 8
    secret_overlap_seconds: int = 24 * 3600
    max_streams: int = 200
    session_hours: int = 12
    rate_limit_per_second: float = 0.0
    rate_limit_burst: int = 100
    housekeeping_seconds: int = 60
    partition_days: int = 7

    @property
    def default_retry_schedule(self) -> tuple[int, ...]:
        return tuple(int(x) for x in self.retry_schedule.split(","))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from `EVENTYARD_*` variables; `overrides` (CLI flags) win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = env.get(setting.env_var)
            if raw is None or raw == "":
                continue
            try:
                values[setting.name] = setting.parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{setting.env_var}={raw!r}: {exc}") from None
        for name, value in overrides.items():
            if value is None:
                continue
            if name not in _BY_NAME:
                raise SettingsError(f"unknown setting {name!r}")
            values[name] = value
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _check_table_matches_dataclass() -> None:
    fields = {f.name: f.default for f in dataclasses.fields(Settings)}
    table = {s.name: s.default for s in SETTINGS}
    if fields != table:  # pragma: no cover - a programming error caught at import
        raise RuntimeError("SETTINGS and Settings disagree")


_check_table_matches_dataclass()


def settings_markdown() -> str:
    """The settings table as Markdown; docs/configuration.md embeds it (a test checks)."""
    lines = ["| environment variable | default | what it does |", "|---|---|---|"]
    for s in SETTINGS:
        lines.append(f"| `{s.env_var}` | `{s.default}` | {s.doc} |")
    return "\n".join(lines) + "\n"
