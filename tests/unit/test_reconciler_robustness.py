"""The reconciler and the webhook retrier under the failures a reviewer found."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from adapters.razorpay.webhooks import RazorpayEventParser
from application.payments import PaymentService
from application.reconciler import Reconciler, ReconcilerSettings
from application.webhooks import WebhookService
from domain.gateway import PaymentSnapshot
from domain.payments import OrderStatus
from domain.signatures import webhook_signature
from domain.webhooks import InboxStatus
from tests.fakes import FakeClock, FakeGateway, InMemoryLedger, InMemoryWebhookInbox

SECRET = "reconciler-key-secret"
USER = "user-rec"


class NewestFirstGateway(FakeGateway):
    """Razorpay lists an order's payments newest first."""

    async def fetch_order_payments(self, gateway_order_id: str) -> list[PaymentSnapshot]:
        return list(reversed(await super().fetch_order_payments(gateway_order_id)))


def reconciler_for(
    ledger: InMemoryLedger, gateway: FakeGateway, clock: FakeClock
) -> tuple[PaymentService, Reconciler]:
    payments = PaymentService(ledger, gateway, clock, SECRET)
    return payments, Reconciler(
        ledger, gateway, payments, clock, ReconcilerSettings(min_age=timedelta(minutes=1))
    )


async def test_a_capture_we_never_recorded_wins_over_a_newer_authorized_payment() -> None:
    """pay1 was captured at the gateway (our answer was lost), pay2 authorized from a second tab and listed
    first: the reconciler must record pay1 and not capture pay2 (the customer would pay twice)."""
    ledger, gateway, clock = InMemoryLedger(), NewestFirstGateway(), FakeClock()
    payments, reconciler = reconciler_for(ledger, gateway, clock)
    order = await payments.create_order(USER, 10_000, "INR")
    pay1 = gateway.pay(order.gateway_order_id, status="captured")
    pay2 = gateway.pay(order.gateway_order_id, status="authorized")
    clock.advance(600)
    await reconciler.reconcile_order(order.id)
    assert gateway.payments[pay1].status == "captured" and gateway.payments[pay2].status == "authorized"
    stored = await payments.get_order(order.id, USER)
    assert stored.amount_paid == 10_000 and stored.status is OrderStatus.PAID
    assert [t.key for t in ledger.transactions if t.kind == "capture"] == [f"capture:{pay1}"]


class OneBadOrderGateway(FakeGateway):
    def __init__(self, bad: set[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.bad = bad

    async def fetch_order_payments(self, gateway_order_id: str) -> list[PaymentSnapshot]:
        if gateway_order_id in self.bad:
            raise RuntimeError("an unexpected failure for this order only")
        return await super().fetch_order_payments(gateway_order_id)


async def test_one_failing_order_does_not_hold_up_the_others() -> None:
    ledger, clock = InMemoryLedger(), FakeClock()
    gateway = OneBadOrderGateway(set())
    payments, reconciler = reconciler_for(ledger, gateway, clock)
    bad = await payments.create_order(USER, 10_000, "INR")
    clock.advance(1)
    good = await payments.create_order(USER, 10_000, "INR")
    gateway.bad.add(bad.gateway_order_id)
    gateway.pay(good.gateway_order_id, status="captured")
    clock.advance(600)
    assert await reconciler.run_once() == 2
    assert (await payments.get_order(good.id, USER)).status is OrderStatus.PAID


async def test_the_batch_ends_after_the_gateway_failed_for_several_orders_in_a_row() -> None:
    ledger, gateway, clock = InMemoryLedger(), FakeGateway(), FakeClock()
    payments, reconciler = reconciler_for(ledger, gateway, clock)
    for _ in range(6):
        await payments.create_order(USER, 10_000, "INR")
        clock.advance(1)
    gateway.unavailable.add("fetch_order_payments")
    clock.advance(600)
    assert await reconciler.run_once() == 3  # gave up after three failures in a row, not six calls
    assert gateway.calls.count("fetch_order_payments") == 3


async def test_reconciler_stops_between_orders_when_asked() -> None:
    ledger, gateway, clock = InMemoryLedger(), FakeGateway(), FakeClock()
    payments, reconciler = reconciler_for(ledger, gateway, clock)
    for _ in range(4):
        await payments.create_order(USER, 10_000, "INR")
    clock.advance(600)
    seen: list[int] = []

    def stop_after_two() -> bool:
        seen.append(1)
        return len(seen) > 2

    assert await reconciler.run_once(stop_after_two) == 2


class SlowLedger(InMemoryLedger):
    """A ledger whose write transactions take a while (a busy database)."""

    delay = 0.0

    def unit_of_work(self, *, read_only: bool = False) -> Any:
        inner = super().unit_of_work(read_only=read_only)
        delay = self.delay

        class Slow:
            async def __aenter__(self) -> Any:
                await asyncio.sleep(delay)
                return await inner.__aenter__()

            async def __aexit__(self, *exc: Any) -> Any:
                return await inner.__aexit__(*exc)

        return Slow()


def _captured_event(gw_order: str, pid: str) -> bytes:
    entity = {
        "id": pid,
        "entity": "payment",
        "amount": 10_000,
        "currency": "INR",
        "status": "captured",
        "order_id": gw_order,
        "method": "upi",
        "captured": True,
        "notes": [],
        "fee": 0,
        "tax": 0,
    }
    return json.dumps(
        {
            "entity": "event",
            "event": "payment.captured",
            "payload": {"payment": {"entity": entity}},
            "created_at": 1,
        }
    ).encode()


async def test_a_slow_apply_does_not_hold_the_webhook_answer_and_still_completes() -> None:
    ledger, gateway, clock, inbox = SlowLedger(), FakeGateway(), FakeClock(), InMemoryWebhookInbox()
    payments = PaymentService(ledger, gateway, clock, SECRET)
    webhooks = WebhookService(ledger, inbox, RazorpayEventParser(), clock, ["whsec"], inline_budget_s=0.1)
    order = await payments.create_order(USER, 10_000, "INR")
    ledger.delay = 0.5
    body = _captured_event(order.gateway_order_id, "pay_slow000000001")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    receipt = await webhooks.receive(body, webhook_signature(body, "whsec"), "evt_slow")
    assert loop.time() - t0 < 0.4 and not receipt.duplicate
    stored = await inbox.get("evt_slow")
    assert stored is not None and stored.status is InboxStatus.PENDING  # durable, not applied yet
    await webhooks.drain(timeout_s=5)
    applied = await inbox.get("evt_slow")
    assert applied is not None and applied.status is InboxStatus.PROCESSED
    ledger.delay = 0.0
    assert (await payments.get_order(order.id, USER)).status is OrderStatus.PAID


async def test_the_retrier_stops_between_events_when_asked() -> None:
    ledger, gateway, clock, inbox = InMemoryLedger(), FakeGateway(), FakeClock(), InMemoryWebhookInbox()
    payments = PaymentService(ledger, gateway, clock, SECRET)
    webhooks = WebhookService(ledger, inbox, RazorpayEventParser(), clock, ["whsec"])
    order = await payments.create_order(USER, 10_000, "INR")
    ledger.unavailable = True  # every inline apply fails: the events stay pending
    for n in range(3):
        body = _captured_event(order.gateway_order_id, f"pay_stop00000000{n}")
        await webhooks.receive(body, webhook_signature(body, "whsec"), f"evt_stop_{n}")
    ledger.unavailable = False
    clock.advance(3600)
    calls: list[int] = []

    def stop_after_one() -> bool:
        calls.append(1)
        return len(calls) > 1

    assert await webhooks.process_due(limit=5, should_stop=stop_after_one) == 1
    statuses = sorted(e.status.value for e in inbox.events.values())
    assert statuses == ["pending", "pending", "processed"]
