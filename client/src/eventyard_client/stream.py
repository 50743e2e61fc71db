"""Following `GET /v1/events/stream` (to be written)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from eventyard_client.resource import Resource

if TYPE_CHECKING:
    from eventyard_client._async import AsyncClient
    from eventyard_client._sync import Client


def stream_events(client: Client, **options: Any) -> Iterator[Resource]:
    raise NotImplementedError


def stream_events_async(client: AsyncClient, **options: Any) -> AsyncIterator[Resource]:
    raise NotImplementedError
