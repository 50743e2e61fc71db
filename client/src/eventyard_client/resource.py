"""`Resource`: the JSON the server answers, as a dict that also allows attribute access.

`event.id` and `event["id"]` are the same thing. Nested objects are Resources too, so
`txn.event.payload["amount"]` reads naturally, while `json.dumps(resource)` and every dict
operation still work unchanged.
"""

from __future__ import annotations

from typing import Any


class Resource(dict[str, Any]):
    """A JSON object from the server: a dict, with its keys also readable as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no field {name!r}; it has {sorted(self)}"
            ) from None

    def __repr__(self) -> str:
        return f"Resource({dict.__repr__(self)})"


def to_resource(value: Any) -> Resource:
    if isinstance(value, Resource):
        return value
    if isinstance(value, dict):
        return Resource(value)
    raise TypeError(f"expected a JSON object from the server, got {type(value).__name__}")
