"""Verifying the webhooks eventyard sends (to be written)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str) -> Any:
    raise NotImplementedError
