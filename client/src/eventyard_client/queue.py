"""The background queue behind `Client.track()` (to be written)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eventyard_client._core import QueueOptions

if TYPE_CHECKING:
    from eventyard_client._async import AsyncClient
    from eventyard_client._sync import Client


@dataclass(frozen=True)
class QueueStats:
    queued: int = 0
    sent: int = 0
    duplicates: int = 0
    rejected: int = 0
    dropped: int = 0
    retries: int = 0


class BackgroundQueue:
    def __init__(self, client: Client, options: QueueOptions) -> None:
        self._client = client
        self._options = options

    def put(self, event: dict[str, Any]) -> bool:
        raise NotImplementedError

    def flush(self, timeout: float | None = None) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def stats(self) -> QueueStats:
        raise NotImplementedError


class AsyncBackgroundQueue:
    def __init__(self, client: AsyncClient, options: QueueOptions) -> None:
        self._client = client
        self._options = options

    async def put(self, event: dict[str, Any]) -> bool:
        raise NotImplementedError

    async def flush(self, timeout: float | None = None) -> bool:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def stats(self) -> QueueStats:
        raise NotImplementedError
