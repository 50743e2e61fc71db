"""eventyard's Python client: send events, manage triggers, keys and consumers, consume
events with a pull consumer and verify webhooks.

    from eventyard_client import Client

    with Client("http://127.0.0.1:8000", "sk_live_...") as client:
        client.track("successful_payment", "user123", {"value": 19.99})
"""

from eventyard_client._async import AsyncClient
from eventyard_client._batching import QueueStats, RejectedEvent
from eventyard_client._sync import Client
from eventyard_client._version import __version__
from eventyard_client.consume import (
    AsyncPulledTransaction,
    AsyncPullLoop,
    PulledTransaction,
    PullLoop,
)
from eventyard_client.errors import (
    APIError,
    AuthenticationError,
    BadRequest,
    Conflict,
    EventyardError,
    FieldError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TransportError,
    UnexpectedResponse,
    ValidationFailed,
    WebhookVerificationError,
)
from eventyard_client.resource import Resource
from eventyard_client.stream import AsyncEventStream, EventStream
from eventyard_client.webhooks import verify_webhook

__all__ = [
    "APIError",
    "AsyncClient",
    "AsyncEventStream",
    "AsyncPullLoop",
    "AsyncPulledTransaction",
    "AuthenticationError",
    "BadRequest",
    "Client",
    "Conflict",
    "EventStream",
    "EventyardError",
    "FieldError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "PullLoop",
    "PulledTransaction",
    "QueueStats",
    "RateLimited",
    "RejectedEvent",
    "Resource",
    "ServerError",
    "ServiceUnavailable",
    "TransportError",
    "UnexpectedResponse",
    "ValidationFailed",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]
