"""An erased payload leaves the SQLite file itself, not only the tables: deleted content is
overwritten (`PRAGMA secure_delete`), so it survives neither in free pages nor in a copy of
the file such as `eventyard backup` makes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Api

MARKER = "marker-5f1c0e-carol@example.com"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: the property is of the SQLite file."""
    return f"sqlite:///{tmp_path}/eventyard.db"


@pytest.mark.anyio
async def test_an_erased_payload_is_not_left_in_the_sqlite_file(api: Api, store_url: str) -> None:
    for n in range(20):
        sent = await api.send("signup", user_id="carol", payload={"email": MARKER, "n": n})
        assert sent.status_code in (200, 201, 202), sent.text
    path = Path(store_url.removeprefix("sqlite:///"))
    erased = await api.client.delete("/v1/users/carol", headers=api.auth())
    assert erased.status_code == 200, erased.text
    assert erased.json()["deleted"]["events"] == 20
    assert MARKER.encode() not in _file_after_checkpoint(path)


def _file_after_checkpoint(path: Path) -> bytes:
    with sqlite3.connect(path) as db:  # what is in the -wal goes into the file
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()
