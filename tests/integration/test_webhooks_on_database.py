"""Webhooks, /verify and the reconciler on a real database: every payment and refund booked once.

The webhook service runs on the SQL ledger and the SQL inbox, parsing Razorpay-shaped bodies signed like
Razorpay signs them. Gateways are the in-memory fake, except where the real adapter talks to the
simulator over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.persistence.engine import create_engine
from adapters.persistence.ledger import SqlLedger, SqlUnitOfWork
from adapters.persistence.tables import webhook_events
from adapters.persistence.webhook_inbox import SqlWebhookInbox
from adapters.razorpay.gateway import RazorpayGateway
from adapters.razorpay.webhooks import RazorpayEventParser
from application.payments import PaymentService, refund_ref_for
from application.reconciler import Reconciler, ReconcilerSettings
from application.webhooks import Receipt, WebhookService
from domain.errors import GatewayUnavailable, LedgerUnavailable
from domain.gateway import PaymentSnapshot
from domain.payments import Order, OrderStatus, RefundStatus
from domain.signatures import payment_signature, webhook_signature
from domain.webhooks import InboxStatus
from tests.fakes import FakeClock, FakeGateway
from tests.support.simulator import RunningSimulator

KEY_SECRET = "test_key_secret"
WEBHOOK_SECRET = "test_webhook_secret"
USER = "user_1"
AMOUNT = 50_000
FEE, TAX = 1_180, 180
DEAD_PG = "postgresql://postgres@127.0.0.1:1/postgres"
PAST_MIN_AGE = 16 * 60.0  # seconds: older than the reconciler's default 15-minute min age


# ---- Razorpay-shaped webhook bodies -------------------------------------------------------------------


def payment_entity(payment_id: str, gateway_order_id: str, status: str = "captured") -> dict[str, Any]:
    captured = status in ("captured", "refunded")
    return {
        "id": payment_id,
        "entity": "payment",
        "amount": AMOUNT,
        "currency": "INR",
        "status": status,
        "order_id": gateway_order_id,
        "invoice_id": None,
        "international": False,
        "method": "card",
        "amount_refunded": 0,
        "refund_status": None,
        "captured": captured,
        "description": None,
        "card_id": "card_test0000001",
        "bank": None,
        "wallet": None,
        "vpa": None,
        "email": "void@example.com",
        "contact": "+919000090000",
        "notes": [],
        "fee": FEE if captured else None,
        "tax": TAX if captured else None,
        "error_code": None,
        "error_description": None,
        "created_at": 1767225600,
    }


def order_entity(gateway_order_id: str) -> dict[str, Any]:
    return {
        "id": gateway_order_id,
        "entity": "order",
        "amount": AMOUNT,
        "amount_paid": AMOUNT,
        "amount_due": 0,
        "currency": "INR",
        "receipt": None,
        "offer_id": None,
        "status": "paid",
        "attempts": 1,
        "notes": [],
        "created_at": 1767225590,
    }


def event_body(event: str, **entities: dict[str, Any]) -> bytes:
    doc = {
        "entity": "event",
        "account_id": "acc_test0000001",
        "event": event,
        "contains": list(entities),
        "payload": {name: {"entity": entity} for name, entity in entities.items()},
        "created_at": 1767225660,
    }
    return json.dumps(doc).encode()


def payment_captured(payment_id: str, gateway_order_id: str) -> bytes:
    return event_body("payment.captured", payment=payment_entity(payment_id, gateway_order_id))


def order_paid(payment_id: str, gateway_order_id: str) -> bytes:
    return event_body(
        "order.paid",
        payment=payment_entity(payment_id, gateway_order_id),
        order=order_entity(gateway_order_id),
    )


def sign(body: bytes) -> str:
    return webhook_signature(body, WEBHOOK_SECRET)


# ---- the service on the database -----------------------------------------------------------------------


class FlakyLedger:
    """The SQL ledger whose next ``failures`` units of work raise ``error`` (an outage by default)."""

    def __init__(self, inner: SqlLedger, failures: int, error: type[Exception] = LedgerUnavailable) -> None:
        self.inner = inner
        self.failures = failures
        self.error = error

    def unit_of_work(self, *, read_only: bool = False) -> AbstractAsyncContextManager[SqlUnitOfWork]:
        if self.failures > 0:
            self.failures -= 1
            raise self.error()
        return self.inner.unit_of_work(read_only=read_only)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class World:
    ledger: SqlLedger
    inbox: SqlWebhookInbox
    clock: FakeClock
    gateway: FakeGateway
    payments: PaymentService
    webhooks: WebhookService

    async def paid_order(self, gateway_status: str = "captured") -> tuple[Order, str]:
        """An order of ours with a payment at the gateway that no one has told us about yet."""
        order = await self.payments.create_order(USER, AMOUNT, "INR")
        payment_id = self.gateway.pay(order.gateway_order_id, status=gateway_status, fee=FEE, tax=TAX)
        return order, payment_id

    async def deliver(self, body: bytes, event_id: str) -> Receipt:
        return await self.webhooks.receive(body, sign(body), event_id)

    async def captures(self, order_id: str) -> list[str]:
        return [t.key for t in await self.ledger.journal(order_id) if t.kind == "capture"]

    async def order(self, order_id: str) -> Order:
        async with self.ledger.unit_of_work() as uow:
            order = await uow.get_order(order_id)
        assert order is not None
        return order


def build_world(ledger: SqlLedger, gateway: FakeGateway | None = None, max_attempts: int = 8) -> World:
    clock = FakeClock()
    gw = gateway or FakeGateway()
    inbox = SqlWebhookInbox(ledger.engine)
    payments = PaymentService(ledger, gw, clock, KEY_SECRET)
    webhooks = WebhookService(
        ledger, inbox, RazorpayEventParser(), clock, [WEBHOOK_SECRET], max_attempts=max_attempts
    )
    return World(ledger, inbox, clock, gw, payments, webhooks)


@pytest.fixture
def world(ledger: SqlLedger) -> World:
    return build_world(ledger)


async def inbox_rows(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(webhook_events.c.id))).scalars())


async def assert_trial_balance_is_zero(ledger: SqlLedger) -> None:
    for currency, accounts in (await ledger.balances()).items():
        assert sum(accounts.values()) == 0, f"{currency}: {accounts}"


# ---- (a) one event delivered many times ------------------------------------------------------------


async def test_an_event_delivered_five_times_in_a_row_or_at_once_is_stored_and_captured_once(
    world: World,
) -> None:
    one_by_one, pay_1 = await world.paid_order()
    at_once, pay_2 = await world.paid_order()
    body_1 = payment_captured(pay_1, one_by_one.gateway_order_id)
    body_2 = payment_captured(pay_2, at_once.gateway_order_id)

    sequential = [await world.deliver(body_1, "evt_seq") for _ in range(5)]
    concurrent = await asyncio.gather(*(world.deliver(body_2, "evt_par") for _ in range(5)))

    for receipts, event_id in ((sequential, "evt_seq"), (list(concurrent), "evt_par")):
        assert [r.duplicate for r in receipts].count(False) == 1
        assert {r.event_id for r in receipts} == {event_id}
    assert [r.duplicate for r in sequential] == [False, True, True, True, True]
    assert sorted(await inbox_rows(world.ledger.engine)) == ["evt_par", "evt_seq"]
    assert await world.captures(one_by_one.id) == [f"capture:{pay_1}"]
    assert await world.captures(at_once.id) == [f"capture:{pay_2}"]
    for event_id, order in (("evt_seq", one_by_one), ("evt_par", at_once)):
        stored = await world.inbox.get(event_id)
        assert stored is not None
        assert (stored.status, stored.attempts, stored.order_id) == (InboxStatus.PROCESSED, 1, order.id)
    assert (await world.order(at_once.id)).status is OrderStatus.PAID
    await assert_trial_balance_is_zero(world.ledger)


async def test_an_event_for_an_unknown_order_is_stored_and_ignored(world: World) -> None:
    body = payment_captured("pay_unknown000001", "order_unknown00001")

    receipt = await world.deliver(body, "evt_unknown_order")

    assert receipt.duplicate is False
    stored = await world.inbox.get("evt_unknown_order")
    assert stored is not None
    assert (stored.status, stored.body, stored.order_id) == (InboxStatus.IGNORED, body, None)
    assert await world.ledger.journal() == []


# ---- (b) webhooks racing /verify ---------------------------------------------------------------------


async def test_captured_and_order_paid_webhooks_racing_verify_capture_each_payment_once(world: World) -> None:
    rounds = 20
    for n in range(rounds):
        # Half the rounds the gateway still says authorized, so /verify captures while webhooks land.
        order, payment_id = await world.paid_order("authorized" if n % 2 else "captured")
        signature = payment_signature(order.gateway_order_id, payment_id, KEY_SECRET)

        results = await asyncio.gather(
            world.deliver(payment_captured(payment_id, order.gateway_order_id), f"evt_cap_{n}"),
            world.deliver(order_paid(payment_id, order.gateway_order_id), f"evt_paid_{n}"),
            world.payments.verify_payment(USER, order.gateway_order_id, payment_id, signature),
            return_exceptions=True,
        )

        assert [r for r in results if isinstance(r, BaseException)] == [], f"round {n}"
        assert await world.captures(order.id) == [f"capture:{payment_id}"], f"round {n}"
        stored = await world.order(order.id)
        assert (stored.status, stored.amount_paid, len(stored.payments)) == (OrderStatus.PAID, AMOUNT, 1)

    journal = await world.ledger.journal()
    assert Counter(t.kind for t in journal) == {"capture": rounds, "gateway_fee": rounds}
    balances = await world.ledger.balances()
    assert sum(balances["INR"].values()) == 0
    assert balances["INR"]["sales"] == -rounds * AMOUNT
    events, _ = await world.inbox.list(None, 100, None)
    assert len(events) == 2 * rounds
    assert {e.status for e in events} == {InboxStatus.PROCESSED}


# ---- (c) the database is down ----------------------------------------------------------------------


async def test_a_webhook_while_the_database_is_down_raises_ledger_unavailable_never_a_receipt() -> None:
    dead = create_engine(DEAD_PG, connect_timeout_s=2.0)
    service = WebhookService(
        SqlLedger(dead), SqlWebhookInbox(dead), RazorpayEventParser(), FakeClock(), [WEBHOOK_SECRET]
    )
    body = payment_captured("pay_down000000001", "order_down00000001")
    started = time.monotonic()
    try:
        with pytest.raises(LedgerUnavailable):
            await service.receive(body, sign(body), "evt_down")
    finally:
        await dead.dispose()
    assert time.monotonic() - started < 5.0


async def test_when_the_inbox_cannot_store_an_event_nothing_is_applied(world: World) -> None:
    order, payment_id = await world.paid_order()
    dead = create_engine(DEAD_PG, connect_timeout_s=2.0)
    service = WebhookService(
        world.ledger, SqlWebhookInbox(dead), RazorpayEventParser(), world.clock, [WEBHOOK_SECRET]
    )
    body = payment_captured(payment_id, order.gateway_order_id)
    try:
        with pytest.raises(LedgerUnavailable):
            await service.receive(body, sign(body), "evt_not_stored")
    finally:
        await dead.dispose()

    assert await world.captures(order.id) == []  # never applied without being stored first
    assert await inbox_rows(world.ledger.engine) == []

    # Razorpay retries the delivery once the database is back: it is applied then.
    receipt = await world.deliver(body, "evt_not_stored")
    assert receipt.duplicate is False
    assert await world.captures(order.id) == [f"capture:{payment_id}"]


# ---- (d) transient failures, backoff, dead letters, re-drive ---------------------------------------


async def test_an_event_whose_application_fails_once_is_retried_after_the_backoff(ledger: SqlLedger) -> None:
    flaky = FlakyLedger(ledger, failures=1)
    world = build_world(ledger)
    world.webhooks = WebhookService(
        flaky,  # type: ignore[arg-type]
        world.inbox,
        RazorpayEventParser(),
        world.clock,
        [WEBHOOK_SECRET],
    )
    order, payment_id = await world.paid_order()

    receipt = await world.deliver(payment_captured(payment_id, order.gateway_order_id), "evt_flaky")

    assert receipt.duplicate is False  # stored, so acknowledged, though not applied yet
    pending = await world.inbox.get("evt_flaky")
    assert pending is not None
    assert (pending.status, pending.attempts) == (InboxStatus.PENDING, 1)
    assert pending.last_error
    assert await world.captures(order.id) == []

    world.clock.advance(4)  # the first backoff is 5 s
    assert await world.webhooks.process_due() == 0
    world.clock.advance(1)
    assert await world.webhooks.process_due() == 1

    done = await world.inbox.get("evt_flaky")
    assert done is not None
    assert (done.status, done.attempts, done.order_id) == (InboxStatus.PROCESSED, 2, order.id)
    assert await world.captures(order.id) == [f"capture:{payment_id}"]
    assert await world.webhooks.process_due() == 0


async def test_an_event_that_keeps_failing_ends_dead_and_a_redrive_applies_it(ledger: SqlLedger) -> None:
    # Not an outage (those are retried until the dependency is back) but a failure that repeats: a bug.
    flaky = FlakyLedger(ledger, failures=10**6, error=RuntimeError)
    world = build_world(ledger)
    world.webhooks = WebhookService(
        flaky,  # type: ignore[arg-type]
        world.inbox,
        RazorpayEventParser(),
        world.clock,
        [WEBHOOK_SECRET],
        max_attempts=3,
    )
    order, payment_id = await world.paid_order()
    await world.deliver(payment_captured(payment_id, order.gateway_order_id), "evt_dies")

    world.clock.advance(5)  # backoff after attempt 1
    assert await world.webhooks.process_due() == 1
    world.clock.advance(10)  # backoff after attempt 2
    assert await world.webhooks.process_due() == 1

    dead = await world.inbox.get("evt_dies")
    assert dead is not None
    assert (dead.status, dead.attempts, dead.next_attempt_at) == (InboxStatus.DEAD, 3, None)
    world.clock.advance(24 * 3600)
    assert await world.webhooks.process_due() == 0  # dead events wait for an admin
    listed, _ = await world.webhooks.list_events("dead")
    assert [e.id for e in listed] == ["evt_dies"]
    assert await world.captures(order.id) == []

    flaky.failures = 0  # the bug is fixed
    redriven = await world.webhooks.redrive("evt_dies")

    assert (redriven.status, redriven.attempts, redriven.order_id) == (InboxStatus.PROCESSED, 1, order.id)
    assert await world.captures(order.id) == [f"capture:{payment_id}"]
    await assert_trial_balance_is_zero(ledger)


# ---- (e) the reconciler with the real gateway adapter and the simulator ------------------------------


@pytest.fixture
async def razorpay(sim: RunningSimulator) -> AsyncIterator[RazorpayGateway]:
    gateway = RazorpayGateway(sim.key_id, sim.key_secret, base_url=sim.base_url, timeout_s=5.0)
    try:
        yield gateway
    finally:
        await gateway.close()


async def test_the_reconciler_books_payments_nobody_told_us_about_once(
    ledger: SqlLedger, sim: RunningSimulator, razorpay: RazorpayGateway
) -> None:
    clock = FakeClock()
    payments = PaymentService(ledger, razorpay, clock, sim.key_secret)
    reconciler = Reconciler(ledger, razorpay, payments, clock)
    captured = await payments.create_order(USER, AMOUNT, "INR")
    authorized = await payments.create_order(USER, AMOUNT, "INR")
    unpaid = await payments.create_order(USER, AMOUNT, "INR")
    # The customer pays at Checkout and closes the browser: no /verify, no webhook.
    pay_captured = sim.pay(captured.gateway_order_id, outcome="captured")["razorpay_payment_id"]
    pay_authorized = sim.pay(authorized.gateway_order_id, outcome="authorized")["razorpay_payment_id"]

    assert await reconciler.run_once() == 0  # too fresh: left to /verify and webhooks
    clock.advance(PAST_MIN_AGE)
    assert await reconciler.run_once() == 3

    for order, payment_id in ((captured, pay_captured), (authorized, pay_authorized)):
        keys = [t.key for t in await ledger.journal(order.id) if t.kind == "capture"]
        assert keys == [f"capture:{payment_id}"]
        async with ledger.unit_of_work() as uow:
            stored = await uow.get_order(order.id)
        assert stored is not None and stored.status is OrderStatus.PAID
    assert sim.api("GET", f"/v1/payments/{pay_authorized}").json()["status"] == "captured"
    assert await ledger.journal(unpaid.id) == []

    clock.advance(600.0)  # past the lease: only the unpaid order is still the reconciler's business
    assert await reconciler.run_once() == 1
    assert Counter(t.kind for t in await ledger.journal())["capture"] == 2
    await assert_trial_balance_is_zero(ledger)


# ---- (f) two reconcilers at once -------------------------------------------------------------------


class CountingGateway(FakeGateway):
    """Records which orders' payments were fetched, slowly enough for two reconcilers to overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: Counter[str] = Counter()

    async def fetch_order_payments(self, gateway_order_id: str) -> list[PaymentSnapshot]:
        self.fetched[gateway_order_id] += 1
        await asyncio.sleep(0.005)
        return await super().fetch_order_payments(gateway_order_id)


async def test_two_reconcilers_at_once_ask_the_gateway_once_per_order_and_capture_once(
    ledger: SqlLedger,
) -> None:
    gateway = CountingGateway()
    world = build_world(ledger, gateway)
    orders = [await world.paid_order() for _ in range(12)]
    settings = ReconcilerSettings(batch=3)
    reconcilers = [Reconciler(ledger, gateway, world.payments, world.clock, settings) for _ in range(2)]
    world.clock.advance(PAST_MIN_AGE)

    async def drain(reconciler: Reconciler) -> int:
        total = 0
        while looked_at := await reconciler.run_once():
            total += looked_at
        return total

    looked_at = await asyncio.gather(*(drain(r) for r in reconcilers))

    assert sum(looked_at) == len(orders)
    assert all(n > 0 for n in looked_at)  # both really worked
    assert gateway.fetched == Counter({order.gateway_order_id: 1 for order, _ in orders})
    for order, payment_id in orders:
        assert await world.captures(order.id) == [f"capture:{payment_id}"]
    await assert_trial_balance_is_zero(ledger)


# ---- (g) refund reservations the gateway never confirmed to us ---------------------------------------


async def _reservation(world: World, key: str, amount: int) -> tuple[Order, str, str]:
    """A paid order with a refund reserved while the gateway timed out; (order, payment id, ref)."""
    order, payment_id = await world.paid_order()
    signature = payment_signature(order.gateway_order_id, payment_id, KEY_SECRET)
    await world.payments.verify_payment(USER, order.gateway_order_id, payment_id, signature)
    world.gateway.unavailable.add("refund_payment")
    with pytest.raises(GatewayUnavailable):
        await world.payments.refund(order.id, "admin_1", amount=amount, idempotency_key=key)
    world.gateway.unavailable.discard("refund_payment")
    ref = refund_ref_for("admin_1", order.id, key)
    held = await world.order(order.id)
    assert held.amount_reserved == amount and held.refund_by_ref(ref) is not None
    return order, payment_id, ref


async def test_the_reconciler_confirms_a_refund_the_gateway_made_after_we_timed_out_exactly_once(
    world: World,
) -> None:
    order, payment_id, ref = await _reservation(world, "refund-key-0001", 20_000)
    # The gateway did refund it: our call only timed out.
    made = await world.gateway.refund_payment(
        payment_id, 20_000, ref, {"refund_ref": ref, "order_id": order.id}
    )
    reconciler = Reconciler(world.ledger, world.gateway, world.payments, world.clock)

    world.clock.advance(PAST_MIN_AGE)
    assert await reconciler.run_once() == 1

    after = await world.order(order.id)
    refund = after.refund_by_ref(ref)
    assert refund is not None
    assert (refund.id, refund.status, refund.booked) == (made.id, RefundStatus.PROCESSED, True)
    assert (after.amount_refunded, after.amount_reserved) == (20_000, 0)
    assert after.status is OrderStatus.PARTIALLY_REFUNDED

    world.clock.advance(3600.0)  # well past the lease and the reservation timeout
    assert await reconciler.run_once() == 0  # nothing left to reconcile
    refunds = [t.key for t in await world.ledger.journal(order.id) if t.kind == "refund"]
    assert refunds == [f"refund:{made.id}"]
    assert len(world.gateway.refunds) == 1
    await assert_trial_balance_is_zero(world.ledger)


async def test_the_reconciler_releases_a_reservation_the_gateway_never_made_after_the_timeout(
    world: World,
) -> None:
    order, _payment_id, ref = await _reservation(world, "refund-key-0002", 20_000)
    reconciler = Reconciler(world.ledger, world.gateway, world.payments, world.clock)

    world.clock.advance(PAST_MIN_AGE)  # old enough to look at, too young to give up on
    assert await reconciler.run_once() == 1
    assert (await world.order(order.id)).amount_reserved == 20_000

    world.clock.advance(15 * 60.0)  # now 31 minutes old: past the 30-minute reservation timeout
    assert await reconciler.run_once() == 1

    after = await world.order(order.id)
    released = after.refund_by_ref(ref)
    assert released is not None and released.status is RefundStatus.FAILED
    assert (after.amount_reserved, after.amount_refunded, after.status) == (0, 0, OrderStatus.PAID)
    assert [t for t in await world.ledger.journal(order.id) if t.kind.startswith("refund")] == []
    # The released amount can be refunded again.
    result = await world.payments.refund(order.id, "admin_1", idempotency_key="refund-key-0003")
    assert result.refund.amount == AMOUNT and result.refund.status is RefundStatus.PROCESSED
    await assert_trial_balance_is_zero(world.ledger)
