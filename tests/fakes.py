"""In-memory fakes of the ports, for unit tests and for integration tests that need a gateway but are
about something else (the ledger database). The real gateway adapter is tested against the simulator."""

from __future__ import annotations

import copy
import itertools
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from domain import journal as journal_rules
from domain.errors import GatewayRejected, GatewayUnavailable, LedgerUnavailable, ValidationError
from domain.gateway import GatewayOrder, PaymentSnapshot, RefundSnapshot
from domain.idempotency import IdempotencyOutcome, IdempotencyState, StoredResponse, new_claim_token
from domain.journal import JournalTransaction
from domain.money import Money
from domain.payments import Order, OrderStatus
from domain.ports import OrderPage
from domain.webhooks import InboxEvent, InboxStatus

T = TypeVar("T")


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


@dataclass
class _Payment:
    id: str
    order_id: str
    amount: int
    currency: str
    status: str
    method: str = "card"
    fee: int = 0
    tax: int = 0
    refunded: int = 0


@dataclass
class FakeGateway:
    """Behaves like Razorpay for the calls the service makes; faults are set per method."""

    key_id: str = "rzp_test_fake"
    orders: dict[str, GatewayOrder] = field(default_factory=dict)
    payments: dict[str, _Payment] = field(default_factory=dict)
    refunds: dict[str, RefundSnapshot] = field(default_factory=dict)
    refund_tokens: dict[str, str] = field(default_factory=dict)
    unavailable: set[str] = field(default_factory=set)  # method names that raise GatewayUnavailable
    reject: set[str] = field(default_factory=set)  # method names that raise GatewayRejected
    calls: list[str] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if name in self.unavailable:
            raise GatewayUnavailable()
        if name in self.reject:
            raise GatewayRejected("The request was rejected by the gateway.")

    def _snap(self, p: _Payment) -> PaymentSnapshot:
        return PaymentSnapshot(
            id=p.id,
            order_id=p.order_id,
            amount=p.amount,
            currency=p.currency,
            status=p.status,
            captured=p.status in ("captured", "refunded"),
            method=p.method,
            fee=p.fee if p.status in ("captured", "refunded") else 0,
            tax=p.tax if p.status in ("captured", "refunded") else 0,
            amount_refunded=p.refunded,
        )

    # -- test helpers ---------------------------------------------------------------------------
    def pay(self, order_id: str, status: str = "authorized", fee: int = 0, tax: int = 0) -> str:
        """What Checkout does: a payment attempt on an order. Returns the payment id."""
        o = self.orders[order_id]
        pid = f"pay_fake{next(self._seq):010d}"
        self.payments[pid] = _Payment(pid, order_id, o.amount, o.currency, status, fee=fee, tax=tax)
        return pid

    # -- the port ---------------------------------------------------------------------------------
    async def create_order(
        self, amount: Money, receipt: str | None, notes: Mapping[str, str]
    ) -> GatewayOrder:
        self._enter("create_order")
        oid = f"order_fake{next(self._seq):010d}"
        o = GatewayOrder(oid, amount.amount, amount.currency.code, "created", receipt)
        self.orders[oid] = o
        return o

    async def fetch_payment(self, payment_id: str) -> PaymentSnapshot:
        self._enter("fetch_payment")
        if payment_id not in self.payments:
            raise GatewayRejected("The id provided does not exist")
        return self._snap(self.payments[payment_id])

    async def capture_payment(self, payment_id: str, amount: int, currency: str) -> PaymentSnapshot:
        self._enter("capture_payment")
        p = self.payments[payment_id]
        if p.status not in ("authorized", "captured"):
            raise GatewayRejected(
                "Only payments which have been authorized and not yet captured can be captured"
            )
        p.status = "captured"
        return self._snap(p)

    async def refund_payment(
        self, payment_id: str, amount: int, idempotency_key: str, notes: Mapping[str, str]
    ) -> RefundSnapshot:
        self._enter("refund_payment")
        if idempotency_key in self.refund_tokens:
            return self.refunds[self.refund_tokens[idempotency_key]]
        p = self.payments[payment_id]
        if p.status not in ("captured", "refunded") or p.refunded + amount > p.amount:
            raise GatewayRejected("The refund amount provided is greater than amount captured")
        p.refunded += amount
        if p.refunded == p.amount:
            p.status = "refunded"
        rid = f"rfnd_fake{next(self._seq):010d}"
        r = RefundSnapshot(rid, payment_id, amount, p.currency, "processed", dict(notes))
        self.refunds[rid] = r
        self.refund_tokens[idempotency_key] = rid
        return r

    async def fetch_refund(self, refund_id: str) -> RefundSnapshot:
        self._enter("fetch_refund")
        return self.refunds[refund_id]

    def set_refund_status(self, refund_id: str, status: str) -> RefundSnapshot:
        self.refunds[refund_id] = replace(self.refunds[refund_id], status=status)
        return self.refunds[refund_id]

    async def fetch_order_payments(self, gateway_order_id: str) -> list[PaymentSnapshot]:
        self._enter("fetch_order_payments")
        return [self._snap(p) for p in self.payments.values() if p.order_id == gateway_order_id]

    async def fetch_payment_refunds(self, payment_id: str) -> list[RefundSnapshot]:
        self._enter("fetch_payment_refunds")
        return [r for r in self.refunds.values() if r.payment_id == payment_id]

    async def close(self) -> None:
        return None


# ---- ledger ---------------------------------------------------------------------------------------


class InMemoryUnitOfWork:
    """One "transaction" on :class:`InMemoryLedger`.

    Orders are deep-copied on load, so changing a loaded order changes nothing stored; adds, saves and
    postings are buffered and reach the ledger only on :meth:`commit`. Journal keys are unique across
    the committed journal and this unit's own buffer, as a unique index would make them.
    """

    def __init__(self, ledger: InMemoryLedger) -> None:
        self._ledger = ledger
        self._orders: dict[str, Order] = {}
        self._postings: list[JournalTransaction] = []
        self.committed = False

    def _load(self, order: Order | None) -> Order | None:
        if order is None:
            return None
        pending = self._orders.get(order.id)
        return copy.deepcopy(pending if pending is not None else order)

    async def get_order(self, order_id: str, *, for_update: bool = False) -> Order | None:
        found = self._orders.get(order_id) or self._ledger.orders.get(order_id)
        return self._load(found)

    async def get_order_by_gateway_id(
        self, gateway_order_id: str, *, for_update: bool = False
    ) -> Order | None:
        candidates = [*self._orders.values(), *self._ledger.orders.values()]
        found = next((o for o in candidates if o.gateway_order_id == gateway_order_id), None)
        return self._load(found)

    async def get_order_by_payment_id(self, payment_id: str, *, for_update: bool = False) -> Order | None:
        candidates = [*self._orders.values(), *self._ledger.orders.values()]
        found = next((o for o in candidates if o.payment(payment_id) is not None), None)
        return self._load(found)

    async def add_order(self, order: Order) -> None:
        known = [*self._orders.values(), *self._ledger.orders.values()]
        if any(o.id == order.id or o.gateway_order_id == order.gateway_order_id for o in known):
            raise ValueError(f"duplicate order {order.id} / {order.gateway_order_id}")
        self._orders[order.id] = copy.deepcopy(order)

    async def save_order(self, order: Order) -> None:
        if order.id not in self._orders and order.id not in self._ledger.orders:
            raise KeyError(f"unknown order {order.id}")
        self._orders[order.id] = copy.deepcopy(order)

    async def post(self, transaction: JournalTransaction) -> bool:
        if transaction.key in self._ledger.journal_keys or any(
            t.key == transaction.key for t in self._postings
        ):
            return False
        self._postings.append(transaction)
        return True

    async def commit(self) -> None:
        if self._ledger.unavailable:
            raise LedgerUnavailable()
        for t in self._postings:
            if t.key in self._ledger.journal_keys:  # another unit won the race: a unique violation
                raise ValueError(f"duplicate journal key {t.key}")
        self._ledger.orders.update(self._orders)
        self._ledger.transactions.extend(self._postings)
        self._ledger.journal_keys.update(t.key for t in self._postings)
        self._ledger.commits += 1
        self._orders, self._postings = {}, []
        self.committed = True


class InMemoryLedger:
    """A ``Ledger`` in a dict: orders, a journal with unique keys, and nothing shared by reference.

    Set ``unavailable`` to make every unit of work (and ``ping``) raise ``LedgerUnavailable``.
    """

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.transactions: list[JournalTransaction] = []
        self.journal_keys: set[str] = set()
        self.commits = 0
        self.unavailable = False
        self.leases: dict[str, datetime] = {}  # order id -> end of the reconciler's lease

    @asynccontextmanager
    async def unit_of_work(self, *, read_only: bool = False) -> AsyncIterator[InMemoryUnitOfWork]:
        if self.unavailable:
            raise LedgerUnavailable()
        yield InMemoryUnitOfWork(self)  # leaving without commit drops the buffer: a rollback

    async def list_orders(self, user_id: str, limit: int, cursor: str | None) -> OrderPage:
        mine = [o for o in self.orders.values() if o.user_id == user_id]
        page, next_cursor = _keyset_page(mine, lambda o: (o.created_at, o.id), limit, cursor)
        return OrderPage(page, next_cursor)

    async def orders_to_reconcile(
        self,
        created_before: datetime,
        created_after: datetime,
        now: datetime,
        lease_seconds: float,
        limit: int,
    ) -> list[str]:
        def due(o: Order) -> bool:
            if self.leases.get(o.id, now) > now:
                return False
            unpaid = o.status in (OrderStatus.CREATED, OrderStatus.ATTEMPTED)
            if unpaid and created_after <= o.created_at < created_before:
                return True
            return any(r.is_reservation and r.created_at < created_before for r in o.refunds)

        ids = [o.id for o in sorted(self.orders.values(), key=lambda o: o.created_at) if due(o)][:limit]
        for order_id in ids:
            self.leases[order_id] = now + timedelta(seconds=lease_seconds)
        return ids

    async def balances(self) -> dict[str, dict[str, int]]:
        return journal_rules.balances(self.transactions)

    async def journal(self, order_id: str | None = None) -> list[JournalTransaction]:
        return [t for t in self.transactions if order_id is None or t.order_id == order_id]

    async def ping(self) -> None:
        if self.unavailable:
            raise LedgerUnavailable()

    async def close(self) -> None:
        return None


# ---- idempotency keys -----------------------------------------------------------------------------


@dataclass
class _IdempotencyRecord:
    fingerprint: str
    started_at: datetime
    token: str | None  # the fencing token of the in-progress claim; None once completed
    response: StoredResponse | None = None
    expires_at: datetime | None = None


@dataclass
class InMemoryIdempotencyStore:
    """An ``IdempotencyStore`` in a dict, with the same claim, replay and takeover rules as the SQL one.

    A claim older than ``lock_timeout_s`` is stale (its request died) and can be taken over, with a new
    fencing token; ``complete``/``release`` only write for the token of the current in-progress claim. A
    stored response is replayed until ``expires_at``.
    """

    records: dict[tuple[str, str], _IdempotencyRecord] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def begin(
        self, scope: str, key: str, fingerprint: str, now: datetime, lock_timeout_s: float
    ) -> IdempotencyOutcome:
        self.calls.append("begin")
        rec = self.records.get((scope, key))
        if rec is not None and rec.expires_at is not None and rec.expires_at <= now:
            rec = None  # expired: as if never used
        stale = (
            rec is not None
            and rec.response is None
            and now - rec.started_at > timedelta(seconds=lock_timeout_s)
        )
        if rec is None or stale:
            token = new_claim_token()
            self.records[(scope, key)] = _IdempotencyRecord(fingerprint, now, token)
            return IdempotencyOutcome(IdempotencyState.STARTED, token=token)
        if rec.fingerprint != fingerprint:
            return IdempotencyOutcome(IdempotencyState.MISMATCH)
        if rec.response is None:
            return IdempotencyOutcome(IdempotencyState.IN_PROGRESS)
        return IdempotencyOutcome(IdempotencyState.REPLAY, rec.response)

    def _claimed_with(self, scope: str, key: str, token: str) -> _IdempotencyRecord | None:
        rec = self.records.get((scope, key))
        if rec is None or rec.response is not None or rec.token != token:
            return None
        return rec

    async def complete(
        self, scope: str, key: str, token: str, response: StoredResponse, expires_at: datetime
    ) -> bool:
        self.calls.append("complete")
        rec = self._claimed_with(scope, key, token)
        if rec is None:
            return False
        rec.response, rec.expires_at, rec.token = response, expires_at, None
        return True

    async def release(self, scope: str, key: str, token: str) -> bool:
        self.calls.append("release")
        if self._claimed_with(scope, key, token) is None:
            return False
        del self.records[(scope, key)]
        return True

    async def purge_expired(self, now: datetime) -> int:
        expired = [k for k, r in self.records.items() if r.expires_at is not None and r.expires_at <= now]
        for k in expired:
            del self.records[k]
        return len(expired)


# ---- webhook inbox --------------------------------------------------------------------------------


class InMemoryWebhookInbox:
    """A ``WebhookInbox`` in a dict, with the SQL one's rules: unique event ids, leases, keyset pages.

    Events are copied in and out, so a caller changing what it got changes nothing stored. A lease
    (``claim``/``claim_due``) keeps an event from every other claimer until ``finish`` releases it or
    ``lease_seconds`` pass (a worker that died). Set ``unavailable`` to make every call raise
    ``LedgerUnavailable`` (the inbox lives beside the ledger).
    """

    def __init__(self) -> None:
        self.events: dict[str, InboxEvent] = {}
        self.leases: dict[str, datetime] = {}  # event id -> end of its lease
        self.unavailable = False

    def _check(self) -> None:
        if self.unavailable:
            raise LedgerUnavailable()

    def _leased(self, event_id: str, now: datetime) -> bool:
        until = self.leases.get(event_id)
        return until is not None and until > now

    async def store(self, event: InboxEvent) -> bool:
        self._check()
        if event.id in self.events:
            return False
        self.events[event.id] = copy.deepcopy(event)
        return True

    async def get(self, event_id: str) -> InboxEvent | None:
        self._check()
        found = self.events.get(event_id)
        return copy.deepcopy(found) if found is not None else None

    async def claim(self, event_id: str, now: datetime, lease_seconds: float) -> InboxEvent | None:
        self._check()
        event = self.events.get(event_id)
        if event is None or event.status is not InboxStatus.PENDING or self._leased(event_id, now):
            return None
        self.leases[event_id] = now + timedelta(seconds=lease_seconds)
        event.lease_token = secrets.token_hex(16)
        return copy.deepcopy(event)

    async def claim_due(self, now: datetime, limit: int, lease_seconds: float) -> list[InboxEvent]:
        self._check()
        due = sorted(
            (
                e
                for e in self.events.values()
                if e.status is InboxStatus.PENDING
                and (e.next_attempt_at is None or e.next_attempt_at <= now)
                and not self._leased(e.id, now)
            ),
            key=lambda e: (e.next_attempt_at or e.received_at, e.received_at, e.id),
        )[: max(0, limit)]
        token = secrets.token_hex(16)
        for e in due:
            self.leases[e.id] = now + timedelta(seconds=lease_seconds)
            e.lease_token = token
        return [copy.deepcopy(e) for e in due]

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
        self._check()
        event = self.events.get(event_id)
        if event is None or event.lease_token != lease_token:
            return False
        event.lease_token = None
        event.status = status
        event.attempts = attempts
        event.next_attempt_at = next_attempt_at
        event.last_error = last_error
        if order_id is not None:
            event.order_id = order_id
        if status in (InboxStatus.PROCESSED, InboxStatus.IGNORED):
            event.processed_at = now
        self.leases.pop(event_id, None)
        return True

    async def list(
        self, status: InboxStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[InboxEvent], str | None]:
        self._check()
        chosen = [e for e in self.events.values() if status is None or e.status is status]
        return _keyset_page(chosen, lambda e: (e.received_at, e.id), limit, cursor)

    async def redrive(self, event_id: str, now: datetime) -> InboxEvent | None:
        self._check()
        event = self.events.get(event_id)
        if event is None:
            return None
        if event.status in (InboxStatus.DEAD, InboxStatus.IGNORED, InboxStatus.PENDING) and not self._leased(
            event_id, now
        ):
            event.lease_token = None
            event.status = InboxStatus.PENDING
            event.attempts = 0
            event.next_attempt_at = now
            event.last_error = None
            event.processed_at = None
        return copy.deepcopy(event)


def _keyset_page(
    items: list[T], key: Callable[[T], tuple[datetime, str]], limit: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """Newest first by ``key``; the cursor is the key of the last item handed out (copies returned)."""
    ordered = sorted(items, key=key, reverse=True)
    if cursor is not None:
        stamp, sep, last_id = cursor.partition("|")
        try:
            after = (datetime.fromisoformat(stamp), last_id)
        except ValueError:
            raise ValidationError("cursor is not valid.") from None
        if not sep:
            raise ValidationError("cursor is not valid.")
        ordered = [item for item in ordered if key(item) < after]
    page = ordered[:limit]
    more = len(ordered) > limit
    next_cursor = None
    if more and page:
        stamp_dt, last = key(page[-1])
        next_cursor = f"{stamp_dt.isoformat()}|{last}"
    return [copy.deepcopy(item) for item in page], next_cursor
