"""Pull consumers: claim, yield, report, with lease renewal (to be written)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventyard_client._async import AsyncClient
    from eventyard_client._sync import Client


class PulledTransaction:
    pass


class AsyncPulledTransaction:
    pass


def consume(client: Client, consumer_id: str, **options: Any) -> Iterator[PulledTransaction]:
    raise NotImplementedError


def consume_async(
    client: AsyncClient, consumer_id: str, **options: Any
) -> AsyncIterator[AsyncPulledTransaction]:
    raise NotImplementedError
