"""Key lookup leaks nothing through timing: proved from the code path, not by measuring.

A key is looked up by its SHA-256 only. The secret itself is touched exactly twice in
`KeyService.authenticate` — to see whether one was sent at all and to hash it — so no
comparison, cache probe or query ever works on the secret's characters: a caller who varies
a guess character by character changes the whole hash, and learns nothing from how far an
index or dict probe got. The stored hash is then compared with `hmac.compare_digest`, and the
database holds no column from which a key could be compared or recovered. Dashboard session
tokens follow the same rule. Timing is not measured here: on a shared 2-core machine it
would prove nothing either way.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventyard.services.accounts import AccountService, csrf_matches
from eventyard.services.keys import KeyService
from eventyard.store import keys as key_sql

HERE = Path(__file__).resolve().parent
SNAPSHOTS = [HERE.parent / "integration" / f"schema_{b}.txt" for b in ("sqlite", "postgres")]


def _function(fn: Callable[..., Any]) -> ast.FunctionDef | ast.AsyncFunctionDef:
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    return node


def _uses(node: ast.AST, name: str) -> list[ast.AST]:
    """Every expression that reads `name`, as its immediate parent."""
    parents = {child: parent for parent in ast.walk(node) for child in ast.iter_child_nodes(parent)}
    return [
        parents[n]
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load)
    ]


def _calls(node: ast.AST) -> set[str]:
    return {ast.unparse(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}


def test_the_secret_is_only_tested_for_presence_and_hashed() -> None:
    fn = _function(KeyService.authenticate)
    uses = [ast.unparse(u) for u in _uses(fn, "secret")]
    assert sorted(uses) == ["hash_secret(secret)", "not secret"], uses


def test_the_cache_and_the_database_are_probed_with_the_hash_only() -> None:
    fn = _function(KeyService.authenticate)
    source = ast.unparse(fn)
    assert "self._cache.get(key_hash)" in source
    assert "key_sql.find_key_by_hash(db, key_hash)" in source
    assert "hmac.compare_digest" in _calls(fn)
    compare = next(
        n
        for n in ast.walk(fn)
        if isinstance(n, ast.Call) and ast.unparse(n.func) == "hmac.compare_digest"
    )
    assert {ast.unparse(a) for a in compare.args} == {"found[2]", "key_hash"}
    # The query selects by the hash column alone.
    query = inspect.getsource(key_sql.find_key_by_hash)
    assert "WHERE k.hash = ?" in query


def test_no_stored_column_holds_a_key_or_a_session_token() -> None:
    for snapshot in SNAPSHOTS:
        columns = [
            line.split()[1]
            for line in snapshot.read_text().splitlines()
            if line.startswith("column api_keys.") or line.startswith("column dashboard_sessions.")
        ]
        assert columns, snapshot
        assert not [c for c in columns if c.endswith((".key", ".secret", ".token"))], columns
        assert "api_keys.hash" in columns
        assert "dashboard_sessions.token_hash" in columns


def test_session_tokens_are_hashed_before_lookup_and_csrf_compared_in_constant_time() -> None:
    fn = _function(AccountService.session)
    uses = [ast.unparse(u) for u in _uses(fn, "token")]
    assert sorted(uses) == ["_token_hash(token)", "not token"], uses
    assert "hmac.compare_digest" in _calls(_function(csrf_matches))
