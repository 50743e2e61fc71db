"""Transactions: reading them, reporting a pull consumer's progress, retrying.

A pull consumer reports with a state and an output. `processing` renews the lease (for long
work); `pending` hands the transaction back to the queue; `finished` and `failed` end it;
any other lowercase name is the consumer's own intermediate state. Every change appends to
the history, with the reporting key's id as `by`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from eventyard.clock import Clock
from eventyard.delivery.notify import Notifier
from eventyard.domain.jsonbody import whole_number
from eventyard.domain.models import (
    TERMINAL_STATES,
    Consumer,
    ConsumerKind,
    Event,
    Principal,
    Transaction,
    TxState,
)
from eventyard.errors import Conflict, FieldError, NotFound, ValidationFailed, unknown_fields
from eventyard.services.consumers import MAX_LEASE_SECONDS, ConsumerService
from eventyard.settings import Settings
from eventyard.store import Store
from eventyard.store import transactions as txn_sql

STATE_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")
DEFAULT_LEASE_SECONDS = 60


class TransactionNotFound(NotFound):
    code = "transaction_not_found"


class TransactionClosed(Conflict):
    code = "transaction_closed"


@dataclass(frozen=True)
class Summary:
    has_transactions: bool
    total: int
    has_future_transactions: bool  # any still to come: not finished and not failed
    is_completed: bool  # there are some, and every one is finished or failed


def summarize(transactions: list[Transaction]) -> Summary:
    open_ = [t for t in transactions if t.state not in TERMINAL_STATES]
    return Summary(
        has_transactions=bool(transactions),
        total=len(transactions),
        has_future_transactions=bool(open_),
        is_completed=bool(transactions) and not open_,
    )


class TransactionService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        consumers: ConsumerService,
        notifier: Notifier,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._consumers = consumers
        self._notifier = notifier

    async def of_consumer(
        self,
        principal: Principal,
        consumer_id: str,
        state: str | None,
        after: str | None,
        limit: int,
    ) -> list[Transaction]:
        """A consumer's transactions, newest first, after the id `after`."""
        consumer = await self._consumers.get(principal, consumer_id)
        return await self._store.read(
            lambda db: txn_sql.list_transactions(db, consumer.id, state, after, limit)
        )

    async def get(self, principal: Principal, txn_id: str) -> Transaction:
        project_id, env = principal.project_id, principal.environment
        txn = await self._store.read(
            lambda db: txn_sql.get_transaction(db, project_id, env, txn_id)
        )
        if txn is None:
            raise TransactionNotFound(f"No transaction {txn_id!r} in this project and environment.")
        return txn

    async def of_event(self, event_id: str) -> list[Transaction]:
        return await self._store.read(lambda db: txn_sql.transactions_of_event(db, event_id))

    async def of_events(self, event_ids: list[str]) -> dict[str, list[Transaction]]:
        return await self._store.read(lambda db: txn_sql.transactions_of_events(db, event_ids))

    async def ensure(
        self, principal: Principal, consumer: Consumer, event: Event
    ) -> Transaction | None:
        """The consumer's transaction for the event, created if the consumer came later;
        None when the consumer's trigger filter leaves the event out."""
        now, by = self._clock.now_us(), principal.key.id
        return await self._store.write(
            lambda db: txn_sql.ensure_transaction(db, consumer, event.id, event.trigger, now, by)
        )

    async def report(
        self, principal: Principal, txn_id: str, body: dict[str, Any], by: str
    ) -> Transaction:
        errors = unknown_fields(body, {"state", "output", "lease_seconds"})
        state = body.get("state")
        if not isinstance(state, str) or not STATE_NAME.fullmatch(state):
            errors.append(
                FieldError(
                    "$.state",
                    "is required: a lowercase state name (letters, digits, '_' and '-', up to "
                    "64 characters), such as processing, finished or failed",
                )
            )
        lease_seconds = whole_number(body.get("lease_seconds", DEFAULT_LEASE_SECONDS))
        if lease_seconds is None or not 1 <= lease_seconds <= MAX_LEASE_SECONDS:
            errors.append(
                FieldError(
                    "$.lease_seconds", f"must be whole seconds from 1 to {MAX_LEASE_SECONDS}"
                )
            )
        output = body.get("output")
        if "output" in body and len(orjson.dumps(output)) > self._settings.max_event_bytes:
            errors.append(
                FieldError(
                    "$.output",
                    f"is larger than {self._settings.max_event_bytes:,} bytes as JSON",
                )
            )
        if errors:
            raise ValidationFailed("The transaction report is not valid.", errors=errors)
        assert isinstance(state, str)
        assert lease_seconds is not None
        txn = await self.get(principal, txn_id)
        consumer = await self._consumers.get(principal, txn.consumer_id)
        if consumer.kind is not ConsumerKind.PULL:
            raise Conflict(
                "This transaction belongs to a webhook consumer, which eventyard delivers "
                "itself; retry it with POST /v1/transactions/{id}/retry instead."
            )
        if txn.state in TERMINAL_STATES:
            raise TransactionClosed(
                f"The transaction is already {txn.state}; retry it to process it again."
            )
        now = self._clock.now_us()
        lease_until = now + lease_seconds * 1_000_000 if state == TxState.PROCESSING else None
        kwargs: dict[str, Any] = {"output": output} if "output" in body else {}
        changed = await self._store.write(
            lambda db: txn_sql.set_state(
                db, txn, state, now=now, by=by, lease_until=lease_until, **kwargs
            )
        )
        if not changed:  # another report (or a lease expiry) got there first
            current = await self.get(principal, txn_id)
            error = TransactionClosed if current.state in TERMINAL_STATES else Conflict
            raise error(
                f"The transaction changed while this report was made: it is now "
                f"{current.state}, not {txn.state}. Read it again before reporting."
            )
        if state == TxState.PENDING:
            self._notifier.pulse()
        return await self.get(principal, txn_id)

    async def retry(self, principal: Principal, txn_id: str, by: str) -> Transaction:
        txn = await self.get(principal, txn_id)
        if txn.state in (TxState.PENDING, TxState.PROCESSING):
            raise Conflict(f"The transaction is {txn.state} already.")
        now = self._clock.now_us()
        await self._store.write(lambda db: txn_sql.retry(db, txn, now, by))
        self._notifier.pulse()
        return await self.get(principal, txn_id)
