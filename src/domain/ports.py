"""Ports: what the application needs from the outside world, and nothing about how it is done.

Adapters implement these (``adapters.*``); the resilience layer wraps each one in a circuit-breaker
decorator with the same methods; tests use in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain.gateway import GatewayOrder, PaymentSnapshot, RefundSnapshot
from domain.idempotency import IdempotencyOutcome, StoredResponse
from domain.journal import JournalTransaction
from domain.money import Money
from domain.payments import Order
from domain.sessions import Principal
from domain.webhooks import GatewayEvent, InboxEvent, InboxStatus


class Clock(Protocol):
    """Time, so that tests can control it."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for timeouts and breakers)."""
        ...


class PaymentGateway(Protocol):
    """The payment gateway (Razorpay).

    Raises ``GatewayUnavailable`` when the gateway cannot answer usefully (5xx, HTML, reset, timeout)
    and ``GatewayRejected`` when it refused the request as invalid. Never retries a non-idempotent
    call on its own.
    """

    @property
    def key_id(self) -> str:
        """The public API key id Checkout needs."""
        ...

    async def create_order(
        self, amount: Money, receipt: str | None, notes: Mapping[str, str]
    ) -> GatewayOrder:
        """Create an order at the gateway."""
        ...

    async def fetch_payment(self, payment_id: str) -> PaymentSnapshot:
        """The payment as the gateway sees it now."""
        ...

    async def capture_payment(self, payment_id: str, amount: int, currency: str) -> PaymentSnapshot:
        """Capture an authorized payment. A payment that is already captured is a success."""
        ...

    async def refund_payment(
        self, payment_id: str, amount: int, idempotency_key: str, notes: Mapping[str, str]
    ) -> RefundSnapshot:
        """Refund (part of) a captured payment. The same ``idempotency_key`` never refunds twice."""
        ...

    async def fetch_refund(self, refund_id: str) -> RefundSnapshot:
        """The refund as the gateway sees it now."""
        ...

    async def fetch_order_payments(self, gateway_order_id: str) -> list[PaymentSnapshot]:
        """Every payment attempt the gateway knows for an order."""
        ...

    async def fetch_payment_refunds(self, payment_id: str) -> list[RefundSnapshot]:
        """Every refund the gateway knows for a payment."""
        ...

    async def close(self) -> None:
        """Release the gateway's threads and connections."""
        ...


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: list[Order]
    next_cursor: str | None


class LedgerUnitOfWork(Protocol):
    """One database transaction on the ledger. Nothing is stored unless :meth:`commit` is called."""

    async def get_order(self, order_id: str, *, for_update: bool = False) -> Order | None:
        """Load an order; ``for_update`` holds its row lock until the end of the transaction."""
        ...

    async def get_order_by_gateway_id(
        self, gateway_order_id: str, *, for_update: bool = False
    ) -> Order | None:
        """Load an order by the gateway's order id."""
        ...

    async def get_order_by_payment_id(self, payment_id: str, *, for_update: bool = False) -> Order | None:
        """Load the order that a gateway payment belongs to."""
        ...

    async def add_order(self, order: Order) -> None:
        """Insert a new order."""
        ...

    async def save_order(self, order: Order) -> None:
        """Store the order's changed state, payments and refunds."""
        ...

    async def post(self, transaction: JournalTransaction) -> bool:
        """Append a journal transaction; False (and nothing written) if its key exists already."""
        ...

    async def commit(self) -> None: ...


class Ledger(Protocol):
    """The ledger database: orders, payments, refunds and the double-entry journal."""

    def unit_of_work(self, *, read_only: bool = False) -> AbstractAsyncContextManager[LedgerUnitOfWork]:
        """Begin a transaction; leaving the block without commit rolls it back.

        ``read_only`` transactions only read (no ``for_update``, no commit) and do not wait for writers.
        """
        ...

    async def list_orders(self, user_id: str, limit: int, cursor: str | None) -> OrderPage:
        """A user's orders, newest first, keyset-paginated."""
        ...

    async def balances(self) -> dict[str, dict[str, int]]:
        """Trial balance: per currency, each account's signed balance (debit positive)."""
        ...

    async def journal(self, order_id: str | None = None) -> list[JournalTransaction]:
        """Journal transactions (of one order, or all), in the order they were posted."""
        ...

    async def orders_to_reconcile(
        self,
        created_before: datetime,
        created_after: datetime,
        now: datetime,
        lease_seconds: float,
        limit: int,
    ) -> list[str]:
        """Lease up to ``limit`` orders that need the reconciler and return their ids.

        Those are orders in ``created``/``attempted`` created in the window, and orders holding a refund
        reservation older than ``created_before``. A leased order is not returned again (to this or
        another reconciler) until its lease ends: ``lease_seconds``, or half the order's age when that is
        longer, so several instances do not ask the gateway twice and abandoned orders are asked about
        less and less often.
        """
        ...

    async def ping(self) -> None:
        """Raise ``LedgerUnavailable`` when the database cannot answer."""
        ...

    async def close(self) -> None: ...


class IdempotencyStore(Protocol):
    """Stripe-style idempotency keys, stored durably beside the ledger."""

    async def begin(
        self, scope: str, key: str, fingerprint: str, now: datetime, lock_timeout_s: float
    ) -> IdempotencyOutcome:
        """Claim the key for a new request, or say how an earlier request with it stands.

        ``STARTED`` carries a fresh fencing ``token``; taking over a stale claim issues a new one.
        """
        ...

    async def complete(
        self, scope: str, key: str, token: str, response: StoredResponse, expires_at: datetime
    ) -> bool:
        """Store the response to replay, if the key is still claimed with ``token``.

        False (and nothing written) when the claim was taken over, released or completed meanwhile.
        """
        ...

    async def release(self, scope: str, key: str, token: str) -> bool:
        """Forget a claim whose request stored nothing worth replaying (so a retry runs again).

        Only the claim holding ``token`` is forgotten; False (and nothing deleted) otherwise.
        """
        ...

    async def purge_expired(self, now: datetime) -> int:
        """Delete expired keys; return how many."""
        ...


class TokenVerifier(Protocol):
    """Verifies a bearer token and says who is calling. Raises ``InvalidToken`` for any refusal."""

    async def verify(self, token: str) -> Principal: ...


class GatewayEventParser(Protocol):
    """Turns a webhook body into a :class:`GatewayEvent`. Raises ``ValidationError`` when malformed."""

    def parse(self, body: bytes) -> GatewayEvent: ...


class WebhookInbox(Protocol):
    """Durable storage of webhook deliveries (beside the ledger)."""

    async def store(self, event: InboxEvent) -> bool:
        """Insert the event durably; False (and nothing written) when its id is stored already."""
        ...

    async def get(self, event_id: str) -> InboxEvent | None: ...

    async def claim(self, event_id: str, now: datetime, lease_seconds: float) -> InboxEvent | None:
        """Lease one pending event for processing; None when it is not pending or leased elsewhere."""
        ...

    async def claim_due(self, now: datetime, limit: int, lease_seconds: float) -> list[InboxEvent]:
        """Lease up to ``limit`` pending events whose next attempt is due (no two workers get one)."""
        ...

    async def finish(
        self,
        event_id: str,
        status: InboxStatus,
        now: datetime,
        *,
        lease_token: str | None,
        attempts: int,
        next_attempt_at: datetime | None = None,
        last_error: str | None = None,
        order_id: str | None = None,
    ) -> bool:
        """Record the outcome of an attempt and release the lease.

        Writes only while the event still carries ``lease_token`` (the one its claim returned): a
        worker whose lease lapsed and was taken over cannot overwrite the new holder's outcome.
        Returns whether it wrote.
        """
        ...

    async def list(
        self, status: InboxStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[InboxEvent], str | None]:
        """Events newest first, optionally of one status, keyset-paginated."""
        ...

    async def redrive(self, event_id: str, now: datetime) -> InboxEvent | None:
        """Put a dead, ignored or pending event back to pending, due now, attempts reset.

        An event a worker holds right now (a live lease) is returned unchanged.
        """
        ...
