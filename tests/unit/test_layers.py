"""CONTRIBUTING's layering rule, checked: the HTTP layers never run SQL themselves.

`api/` and `dashboard/` call services. They may import data types and constants from
`eventyard.store` modules (an `EventQuery`, an `Outcome`), but not query functions, not the
`Db` connection type, and they never call `store.read` or `store.write`.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "eventyard"
HTTP_LAYERS = sorted(p for layer in ("api", "dashboard") for p in (SRC / layer).rglob("*.py"))


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("eventyard.store"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                value = getattr(module, alias.name, None)
                if inspect.ismodule(value) or inspect.isfunction(value) or alias.name == "Db":
                    found.append(f"line {node.lineno}: imports {node.module}.{alias.name}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr in {"read", "write"}
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "store"
        ):
            found.append(f"line {node.lineno}: calls store.{node.attr}")
    return found


@pytest.mark.parametrize("path", HTTP_LAYERS, ids=lambda p: str(p.relative_to(SRC)))
def test_http_layers_reach_the_database_only_through_services(path: Path) -> None:
    assert _problems(path) == []


def test_the_check_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from eventyard.store import events as event_sql\n"
        "from eventyard.store.db import Db\n"
        "async def h(ctx):\n    return await ctx.services.store.read(lambda db: 1)\n"
    )
    assert len(_problems(bad)) == 3
