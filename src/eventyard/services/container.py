"""The services of one process, built once and shared by the API, the CLI and the tests."""

from __future__ import annotations

from dataclasses import dataclass

from eventyard.clock import Clock, SystemClock
from eventyard.delivery.metrics import DeliveryMetrics
from eventyard.delivery.notify import Notifier
from eventyard.services.accounts import AccountService
from eventyard.services.consumers import ConsumerService
from eventyard.services.events import EventService
from eventyard.services.ingest import IngestService
from eventyard.services.keys import KeyService
from eventyard.services.live import LiveFeed
from eventyard.services.ratelimit import RateLimiter
from eventyard.services.telemetry import Telemetry
from eventyard.services.transactions import TransactionService
from eventyard.services.triggers import TriggerService
from eventyard.settings import Settings
from eventyard.store import Store


@dataclass
class Services:
    store: Store
    settings: Settings
    clock: Clock
    keys: KeyService
    triggers: TriggerService
    ingest: IngestService
    events: EventService
    notifier: Notifier
    consumers: ConsumerService
    transactions: TransactionService
    metrics: DeliveryMetrics
    accounts: AccountService
    live: LiveFeed
    ratelimit: RateLimiter
    telemetry: Telemetry


def build_services(store: Store, settings: Settings, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    keys = KeyService(store, clock, settings.cache_seconds)
    triggers = TriggerService(store, clock, settings.cache_seconds)
    notifier = Notifier()
    consumers = ConsumerService(store, settings, clock, notifier)
    committed = Notifier()  # pulsed after each commit of events, for the live feeds
    ingest = IngestService(store, settings, clock, triggers, notifier, committed)
    metrics = DeliveryMetrics()
    return Services(
        store=store,
        settings=settings,
        clock=clock,
        keys=keys,
        triggers=triggers,
        ingest=ingest,
        events=EventService(store, clock),
        notifier=notifier,
        consumers=consumers,
        transactions=TransactionService(store, settings, clock, consumers, notifier),
        metrics=metrics,
        accounts=AccountService(store, clock, settings.session_hours),
        live=LiveFeed(store, clock, committed, max_streams=settings.max_streams),
        ratelimit=RateLimiter(
            store, clock, settings.rate_limit_per_second, settings.rate_limit_burst
        ),
        telemetry=Telemetry(store, clock, metrics, ingest.metrics, settings.metrics_token),
    )
