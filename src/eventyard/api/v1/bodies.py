"""Reading a JSON object body under the configured limits."""

from __future__ import annotations

from typing import Any

from eventyard.api.context import Context
from eventyard.api.http import Request
from eventyard.domain.jsonbody import parse_json
from eventyard.errors import FieldError, ValidationFailed


async def read_object(req: Request, ctx: Context, *, empty_ok: bool = False) -> dict[str, Any]:
    s = ctx.services.settings
    raw = await req.body(s.max_request_bytes)
    if empty_ok and not raw.strip():
        return {}
    body = parse_json(raw, s.max_json_depth)
    if not isinstance(body, dict):
        raise ValidationFailed(
            "The request body must be a JSON object.",
            errors=[FieldError("$", "must be an object")],
        )
    return body
