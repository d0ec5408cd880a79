"""In-memory fakes of the ports, for unit tests and for integration tests that need a gateway but are
about something else (the ledger database). The real gateway adapter is tested against the simulator."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from domain.errors import GatewayRejected, GatewayUnavailable
from domain.gateway import GatewayOrder, PaymentSnapshot, RefundSnapshot
from domain.money import Money


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

    async def close(self) -> None:
        return None
