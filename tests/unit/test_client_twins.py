"""`Client` and `AsyncClient` are twins: the same classes, the same methods, the same
parameters with the same defaults. A method added to one shell and not the other, or a
default changed in one, fails here (CONTRIBUTING: "the client's two shells stay twins")."""

from __future__ import annotations

import ast
from pathlib import Path

import eventyard_client

SOURCE = Path(eventyard_client.__file__).parent
# Names that differ between the shells by design.
ASYNC_TO_SYNC = {
    "AsyncClient": "Client",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "AsyncIterator": "Iterator",
    "AsyncBackgroundQueue": "BackgroundQueue",
    "AsyncPullLoop": "PullLoop",
    "AsyncEventStream": "EventStream",
    "httpx.AsyncBaseTransport": "httpx.BaseTransport",
}


def _sync_name(text: str) -> str:
    for old, new in ASYNC_TO_SYNC.items():
        text = text.replace(old, new)
    return text


def _signatures(path: Path, rename: bool) -> dict[str, dict[str, str]]:
    """class -> method -> its parameters, defaults and return annotation, as text."""
    tree = ast.parse(path.read_text())
    classes: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        methods: dict[str, str] = {}
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                args = item.args
                text = ast.unparse(args) + " -> " + (ast.unparse(item.returns or ast.Constant()))
                name = item.name
                methods[_sync_name(name) if rename else name] = _sync_name(text) if rename else text
        classes[_sync_name(node.name) if rename else node.name] = methods
    return classes


def test_the_async_shell_has_every_method_of_the_sync_one_with_the_same_parameters() -> None:
    sync = _signatures(SOURCE / "_sync.py", rename=False)
    async_ = _signatures(SOURCE / "_async.py", rename=True)
    assert sorted(async_) == sorted(sync)
    for cls, methods in sync.items():
        assert sorted(async_[cls]) == sorted(methods), cls
        for name, signature in methods.items():
            assert async_[cls][name] == signature, f"{cls}.{name}"


def test_the_async_shell_awaits_every_public_method_that_does_io() -> None:
    tree = ast.parse((SOURCE / "_async.py").read_text())
    plain = {
        f"{node.name}.{item.name}"
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        for item in node.body
        if isinstance(item, ast.FunctionDef) and not item.name.startswith("_")
    }
    # These return an iterator or a loop object, or read local state: no I/O of their own.
    assert plain <= {
        "AsyncClient.queue_stats",
        "AsyncClient.consume",
        "Events.stream",
    }, plain
