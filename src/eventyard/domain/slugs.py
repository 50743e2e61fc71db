"""Trigger ids: slugs made from names, and the rule a slug must follow."""

from __future__ import annotations

import hashlib
import re
import unicodedata

TRIGGER_ID_MAX = 128
TRIGGER_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
TRIGGER_ID_RULE = (
    "a trigger id is 1 to 128 characters: lowercase letters, digits, '_', '-' and '.', "
    "starting with a letter or digit"
)


def slugify(name: str) -> str:
    """`Successful Payment!` → `successful_payment`; accents are folded to ASCII."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9_.\-]+", "_", folded.lower()).strip("_.-")
    slug = re.sub(r"_+", "_", slug)
    return slug[:TRIGGER_ID_MAX].rstrip("_.-")


def trigger_id_for_name(name: str) -> str:
    """The trigger id an event name maps to, for adapters whose clients send names.

    The slug when there is one (`Order Completed` → `order_completed`); for a name with no
    ASCII letter or digit but some other letter (`注文完了`), a stable `event_` id from its
    hash, so distinct names stay distinct triggers; "" for a name of punctuation only.
    """
    slug = slugify(name)
    if slug:
        return slug
    if any(ch.isalnum() for ch in name):
        return "event_" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return ""


def trigger_id_problem(value: str) -> str | None:
    """Why `value` is not a valid trigger id, or None when it is."""
    if not value:
        return "must not be empty; " + TRIGGER_ID_RULE
    if len(value) > TRIGGER_ID_MAX:
        return f"is {len(value)} characters long; " + TRIGGER_ID_RULE
    if not TRIGGER_ID_PATTERN.fullmatch(value):
        return f"{value!r} is not a valid trigger id; " + TRIGGER_ID_RULE
    return None
