"""Triggers: the list, Create Trigger (as the Reward walk-through has it), a trigger's page."""

from __future__ import annotations

import re
from typing import Any

import orjson

from eventyard.api.context import Context
from eventyard.api.http import Form, Request, Response, redirect
from eventyard.dashboard.examples import examples
from eventyard.dashboard.web import Pages, form_of, origin_of, project_base, render
from eventyard.domain.schema import AttributeType
from eventyard.errors import Conflict, FieldError, InvalidRequest, ValidationFailed

routes = Pages()

ATTRIBUTE_TYPES = [t.value for t in AttributeType]
_EMPTY_ROWS = 3
_NOTICES = {
    "created": "The trigger is created. Its ID is below; send events to it with a key.",
    "archived": "The trigger is archived: its events stay, new ones are refused.",
}


_ATTRIBUTE_PATH = re.compile(r"^\$\.attributes\[(\d+)\]\.?(.*)$")
_FIELD_LABELS = {
    "$": "The trigger",
    "$.name": "Name",
    "$.id": "Trigger ID",
    "$.type": "Type",
    "$.description": "Description",
    "$.attributes": "Attributes",
    "$.additional_attributes": "Other payload fields",
}


def field_label(path: str) -> str:
    """What the form calls the field a JSON path names: `$.attributes[0].values` → Attribute 1
    values."""
    if path in _FIELD_LABELS:
        return _FIELD_LABELS[path]
    attribute = _ATTRIBUTE_PATH.match(path)
    if attribute:
        rest = attribute.group(2)
        return f"Attribute {int(attribute.group(1)) + 1}" + (f" {rest}" if rest else "")
    if path.startswith("$.json_schema"):
        return "JSON Schema" + (
            f" at {path[len('$.json_schema') :]}" if path != "$.json_schema" else ""
        )
    return path


@routes.page("GET", "/p/{project}/{env}/triggers", summary="The triggers list")
async def trigger_list(req: Request, ctx: Context) -> Response:
    principal = ctx.principal
    triggers = await ctx.services.triggers.list(principal.project_id, include_archived=True)
    activity = await ctx.services.events.trigger_activity(principal)
    return await render(
        req,
        ctx,
        "triggers.html",
        section="triggers",
        triggers=triggers,
        activity=activity,
        notice=_NOTICES.get(dict(req.query).get("notice", "")),
    )


@routes.page("GET", "/p/{project}/{env}/triggers/new", summary="The Create Trigger form")
async def new_trigger(req: Request, ctx: Context) -> Response:
    return await _trigger_form(req, ctx, values={}, errors=[])


async def _trigger_form(
    req: Request, ctx: Context, *, values: dict[str, Any], errors: list[FieldError]
) -> Response:
    rows = values.get("attributes") or []
    rows = rows + [{}] * max(0, _EMPTY_ROWS - len(rows))
    return await render(
        req,
        ctx,
        "trigger_new.html",
        status=422 if errors else 200,
        section="triggers",
        values=values,
        rows=rows,
        errors=[(field_label(e.path), e.message) for e in errors],
        attribute_types=ATTRIBUTE_TYPES,
    )


_ROW_COLUMNS = ("attr_name", "attr_type", "attr_required", "attr_values", "attr_description")


def attribute_rows(form: Form) -> list[dict[str, Any]]:
    """The attribute rows the form holds, as typed (blank names left out)."""
    return [
        {"name": n, "type": t, "required": r == "required", "values": v, "description": d}
        for n, t, r, v, d in zip(*(form.getlist(c) for c in _ROW_COLUMNS), strict=False)
        if n.strip()
    ]


def trigger_body(form: Form) -> dict[str, Any]:
    """The v1 create body from the form: typed attributes, or a JSON Schema, or neither."""
    body: dict[str, Any] = {"name": form.get("name"), "type": form.get("type", "custom")}
    if form.get("id").strip():
        body["id"] = form.get("id").strip()
    if form.get("description").strip():
        body["description"] = form.get("description").strip()
    if len({len(form.getlist(column)) for column in _ROW_COLUMNS}) > 1:
        raise InvalidRequest("The attribute rows of the form are incomplete; reload the page.")
    attributes = []
    for row in attribute_rows(form):
        attr: dict[str, Any] = {
            "name": row["name"].strip(),
            "type": row["type"],
            "required": row["required"],
        }
        if row["type"] == "enum":
            attr["values"] = [v.strip() for v in row["values"].split(",") if v.strip()]
        if row["description"].strip():
            attr["description"] = row["description"].strip()
        attributes.append(attr)
    raw_schema = form.get("json_schema").strip()
    if raw_schema:
        try:
            body["json_schema"] = orjson.loads(raw_schema)
        except orjson.JSONDecodeError as exc:
            raise ValidationFailed(
                "The trigger is not valid.",
                errors=[FieldError("$.json_schema", f"is not valid JSON: {exc}")],
            ) from None
    if attributes:
        body["attributes"] = attributes
        body["additional_attributes"] = form.get("additional_attributes") == "yes"
    return body


@routes.page("POST", "/p/{project}/{env}/triggers/new", summary="Create a trigger")
async def create_trigger(req: Request, ctx: Context) -> Response:
    form = await form_of(req)
    values: dict[str, Any] = {
        "name": form.get("name"),
        "id": form.get("id"),
        "description": form.get("description"),
        "json_schema": form.get("json_schema"),
        "additional_attributes": form.get("additional_attributes") == "yes",
        "attributes": attribute_rows(form),
    }
    try:
        trigger = await ctx.services.triggers.create(ctx.principal.project_id, trigger_body(form))
    except (ValidationFailed, InvalidRequest, Conflict) as exc:
        errors = exc.errors or [FieldError("$", exc.message)]
        return await _trigger_form(req, ctx, values=values, errors=errors)
    base = project_base(ctx.principal.project_id, ctx.principal.environment)
    return redirect(f"{base}/triggers/{trigger.id}?notice=created")


@routes.page("GET", "/p/{project}/{env}/triggers/{trigger_id}", summary="A trigger's page")
async def trigger_page(req: Request, ctx: Context) -> Response:
    principal = ctx.principal
    trigger = await ctx.services.triggers.get(principal.project_id, req.path_params["trigger_id"])
    count = await ctx.services.events.count_for_trigger(principal, trigger.id)
    origin = origin_of(req)
    return await render(
        req,
        ctx,
        "trigger.html",
        section="triggers",
        trigger=trigger,
        event_count=count,
        cdp_url=f"{origin}/cdp/webhooks/{trigger.inbound_token}",
        examples=examples(trigger, origin, principal.environment.value),
        notice=_NOTICES.get(dict(req.query).get("notice", "")),
    )


@routes.page("POST", "/p/{project}/{env}/triggers/{trigger_id}/archive", summary="Archive")
async def archive_trigger(req: Request, ctx: Context) -> Response:
    trigger = await ctx.services.triggers.archive(
        ctx.principal.project_id, req.path_params["trigger_id"]
    )
    base = project_base(ctx.principal.project_id, ctx.principal.environment)
    return redirect(f"{base}/triggers/{trigger.id}?notice=archived")
