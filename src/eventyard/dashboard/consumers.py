"""Consumers: the list with each one's health, the create form, and a consumer's page.

The forms map to the same bodies the v1 API takes, so the service's validation answers them
and its field errors are shown beside the form (422), never as a server error. A webhook
consumer's signing secret is shown once, on its page right after the create or rotate form
redirects there (carried by `reveal_once`), so a reload neither repeats the action nor
shows the secret again.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any
from urllib.parse import quote, urlsplit

from eventyard.api.context import Context
from eventyard.api.http import Form, Request, Response, redirect
from eventyard.dashboard.web import (
    Pages,
    forget_revealed,
    form_of,
    parse_utc,
    project_base,
    render,
    reveal_once,
    revealed,
)
from eventyard.delivery.outbound import blocked_reason
from eventyard.domain.models import Consumer, ConsumerKind, ConsumerState
from eventyard.errors import FieldError, InvalidRequest, ValidationFailed
from eventyard.store.consumer_health import ConsumerHealth

routes = Pages()

HEALTH_WINDOW_US = 24 * 3600 * 1_000_000
_NOTICES = {
    "created": "The consumer is created. New events of its triggers get a transaction for it.",
    "paused": "The consumer is paused: its transactions wait, nothing is sent or claimed.",
    "resumed": "The consumer is enabled again; its waiting transactions go out now.",
    "deleted": "The consumer is deleted; its open transactions were closed as failed.",
    "rotated": "The signing secret is rotated. The previous one keeps signing too until it "
    "expires.",
    "rotated_alone": "The signing secret is rotated; the previous one no longer signs.",
}
# The v1 body's field paths, as the form names them.
_FIELD_LABELS = {
    "$.name": "Name",
    "$.kind": "Kind",
    "$.url": "URL",
    "$.triggers": "Triggers",
    "$.since": "Since",
}


def _field_label(path: str) -> str:
    if path.startswith("$.triggers["):
        return "Triggers"
    return _FIELD_LABELS.get(path, path)


def _notice(req: Request) -> str | None:
    query = dict(req.query)
    code = query.get("notice", "")
    if code == "replayed":
        requeued, created = query.get("requeued", "0"), query.get("created", "0")
        if requeued.isdigit() and created.isdigit():
            return (
                f"Replay queued: {int(requeued):,} transaction(s) sent again, "
                f"{int(created):,} created for events the consumer never had."
            )
    return _NOTICES.get(code)


def private_destination(url: str | None) -> str | None:
    """Why the sender will refuse `url` (an IP literal or localhost), or None.

    Creation refuses such a URL, but a consumer made while private destinations were allowed
    keeps its URL when they no longer are (and a name may resolve differently later): the
    page warns at once instead of leaving the operator to find failed attempts.
    """
    if not url:
        return None
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is a loopback name"
    try:
        reason = blocked_reason(ipaddress.ip_address(host))
    except ValueError:
        return None
    return f"{host} is {reason}" if reason else None


async def _health(ctx: Context) -> dict[str, ConsumerHealth]:
    principal = ctx.principal
    since = ctx.services.clock.now_us() - HEALTH_WINDOW_US
    return await ctx.services.consumers.health(principal, since)


@routes.page("GET", "/p/{project}/{env}/consumers", summary="The consumers list")
async def consumer_list(req: Request, ctx: Context) -> Response:
    consumers = await ctx.services.consumers.list_consumers(ctx.principal)
    return await render(
        req,
        ctx,
        "consumers.html",
        section="consumers",
        consumers=consumers,
        health=await _health(ctx),
        empty=ConsumerHealth(),
        notice=_notice(req),
    )


@routes.page("GET", "/p/{project}/{env}/consumers/new", summary="The create consumer form")
async def new_consumer(req: Request, ctx: Context) -> Response:
    return await _consumer_form(req, ctx, values={"kind": "webhook"}, errors=[])


async def _consumer_form(
    req: Request, ctx: Context, *, values: dict[str, Any], errors: list[FieldError]
) -> Response:
    return await render(
        req,
        ctx,
        "consumer_new.html",
        status=422 if errors else 200,
        section="consumers",
        values=values,
        errors=[(_field_label(e.path), e.message) for e in errors],
        error_paths={e.path.split("[")[0] for e in errors},
        allow_private=ctx.services.settings.webhook_allow_private,
    )


def consumer_body(form: Form) -> dict[str, Any]:
    """The v1 create body from the form: a webhook with its URL, or a pull consumer."""
    kind = form.get("kind")
    body: dict[str, Any] = {"name": form.get("name").strip(), "kind": kind}
    url = form.get("url").strip()
    if kind == ConsumerKind.WEBHOOK.value and url:
        body["url"] = url
    triggers = [t.strip() for t in form.get("triggers").split(",") if t.strip()]
    if triggers:
        body["triggers"] = triggers
    return body


@routes.page("POST", "/p/{project}/{env}/consumers/new", summary="Create a consumer")
async def create_consumer(req: Request, ctx: Context) -> Response:
    form = await form_of(req)
    values = {k: form.get(k) for k in ("name", "kind", "url", "triggers")}
    try:
        consumer = await ctx.services.consumers.create(ctx.principal, consumer_body(form))
    except (ValidationFailed, InvalidRequest) as exc:
        errors = exc.errors or [FieldError("$", exc.message)]
        return await _consumer_form(req, ctx, values=values, errors=errors)
    return _with_secret(req, ctx, consumer, "created")


def _with_secret(req: Request, ctx: Context, consumer: Consumer, notice: str) -> Response:
    """Redirect to the consumer's page, which shows its signing secret once (if it has one)."""
    response = redirect(_consumer_url(ctx, consumer.id, notice))
    if consumer.secret is None:
        return response
    page = _consumer_url(ctx, consumer.id, notice).split("?", 1)[0]
    return reveal_once(req, response, page, consumer.secret)


def _consumer_url(ctx: Context, consumer_id: str, notice: str) -> str:
    base = project_base(ctx.principal.project_id, ctx.principal.environment)
    return f"{base}/consumers/{quote(consumer_id, safe='')}?notice={notice}"


async def _consumer_page(
    req: Request,
    ctx: Context,
    consumer: Consumer,
    *,
    secret: str | None = None,
    notice: str | None = None,
    replay_errors: list[str] | None = None,
    replay_since: str = "",
) -> Response:
    health = await _health(ctx)
    now = ctx.services.clock.now_us()
    default_since = dt.datetime.fromtimestamp((now - HEALTH_WINDOW_US) / 1e6, tz=dt.UTC)
    allow_private = ctx.services.settings.webhook_allow_private
    return await render(
        req,
        ctx,
        "consumer.html",
        status=422 if replay_errors else 200,
        section="consumers",
        c=consumer,
        h=health.get(consumer.id, ConsumerHealth()),
        secret=secret,
        notice=notice,
        overlap_hours=ctx.services.settings.secret_overlap_seconds / 3600,
        private_problem=None if allow_private else private_destination(consumer.url),
        replay_errors=replay_errors or [],
        replay_since=replay_since or default_since.strftime("%Y-%m-%dT%H:%M"),
    )


@routes.page("GET", "/p/{project}/{env}/consumers/{consumer_id}", summary="A consumer's page")
async def consumer_page(req: Request, ctx: Context) -> Response:
    consumer = await ctx.services.consumers.get(ctx.principal, req.path_params["consumer_id"])
    secret = revealed(req)
    response = await _consumer_page(
        req,
        ctx,
        consumer,
        secret=secret if secret == consumer.secret else None,
        notice=_notice(req),
    )
    return forget_revealed(req, response)


@routes.page("POST", "/p/{project}/{env}/consumers/{consumer_id}/pause", summary="Pause")
async def pause_consumer(req: Request, ctx: Context) -> Response:
    consumer = await ctx.services.consumers.set_state(
        ctx.principal, req.path_params["consumer_id"], ConsumerState.PAUSED
    )
    return redirect(_consumer_url(ctx, consumer.id, "paused"))


@routes.page("POST", "/p/{project}/{env}/consumers/{consumer_id}/resume", summary="Resume")
async def resume_consumer(req: Request, ctx: Context) -> Response:
    consumer = await ctx.services.consumers.set_state(
        ctx.principal, req.path_params["consumer_id"], ConsumerState.ENABLED
    )
    return redirect(_consumer_url(ctx, consumer.id, "resumed"))


@routes.page(
    "POST", "/p/{project}/{env}/consumers/{consumer_id}/rotate-secret", summary="Rotate secret"
)
async def rotate_secret(req: Request, ctx: Context) -> Response:
    form = await form_of(req)
    overlap = None if form.get("keep_previous") == "yes" else 0
    consumer = await ctx.services.consumers.rotate_secret(
        ctx.principal, req.path_params["consumer_id"], overlap
    )
    return _with_secret(req, ctx, consumer, "rotated" if overlap is None else "rotated_alone")


@routes.page("POST", "/p/{project}/{env}/consumers/{consumer_id}/replay", summary="Replay")
async def replay_consumer(req: Request, ctx: Context) -> Response:
    form = await form_of(req)
    consumer_id = req.path_params["consumer_id"]
    raw = form.get("since")
    try:
        since = parse_utc(raw)
    except ValueError:
        consumer = await ctx.services.consumers.get(ctx.principal, consumer_id)
        problem = "Give a date and time (UTC) to replay from, such as 2025-01-31T09:00."
        return await _consumer_page(req, ctx, consumer, replay_errors=[problem], replay_since=raw)
    counts = await ctx.services.consumers.replay(
        ctx.principal,
        consumer_id,
        since,
        form.get("only_failed") == "yes",
        ctx.principal.key.id,
    )
    counted = f"&requeued={counts.get('requeued', 0)}&created={counts.get('created', 0)}"
    return redirect(_consumer_url(ctx, consumer_id, "replayed") + counted)


@routes.page("POST", "/p/{project}/{env}/consumers/{consumer_id}/delete", summary="Delete")
async def delete_consumer(req: Request, ctx: Context) -> Response:
    await ctx.services.consumers.delete(ctx.principal, req.path_params["consumer_id"])
    base = project_base(ctx.principal.project_id, ctx.principal.environment)
    return redirect(f"{base}/consumers?notice=deleted")
