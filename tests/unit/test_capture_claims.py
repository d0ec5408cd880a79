"""A second payment of an order is never captured by us, and refunds the gateway made are never lost."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from application.payments import PaymentService
from application.reconciler import Reconciler, ReconcilerSettings
from domain.errors import InvalidState
from domain.gateway import RefundSnapshot
from domain.payments import CAPTURE_CLAIM_SECONDS, PaymentStatus, RefundStatus
from domain.signatures import payment_signature
from tests.fakes import FakeClock, FakeGateway, InMemoryLedger

SECRET = "claims-key-secret"
USER = "user-claims"

World = tuple[PaymentService, FakeGateway, InMemoryLedger, FakeClock]


@pytest.fixture
def world() -> World:
    gateway, ledger, clock = FakeGateway(), InMemoryLedger(), FakeClock()
    return PaymentService(ledger, gateway, clock, SECRET), gateway, ledger, clock


async def verify(service: PaymentService, gw_order: str, pid: str) -> None:
    await service.verify_payment(USER, gw_order, pid, payment_signature(gw_order, pid, SECRET))


async def test_a_second_payment_of_a_paid_order_is_not_captured(world: World) -> None:
    service, gateway, ledger, _ = world
    order = await service.create_order(USER, 10_000, "INR")
    first = gateway.pay(order.gateway_order_id)
    second = gateway.pay(order.gateway_order_id)  # the customer paid again in another tab
    await verify(service, order.gateway_order_id, first)
    with pytest.raises(InvalidState, match="already paid"):
        await verify(service, order.gateway_order_id, second)
    assert gateway.payments[second].status == "authorized"  # left for the gateway to release
    stored = await service.get_order(order.id, USER)
    assert stored.amount_paid == 10_000
    second_payment = stored.payment(second)
    assert second_payment is not None and second_payment.status is PaymentStatus.AUTHORIZED  # recorded
    assert [t.key for t in ledger.transactions if t.kind == "capture"] == [f"capture:{first}"]


async def test_two_payments_verified_concurrently_capture_only_one(world: World) -> None:
    service, gateway, ledger, _ = world
    order = await service.create_order(USER, 10_000, "INR")
    pids = [gateway.pay(order.gateway_order_id) for _ in range(2)]
    results = await asyncio.gather(
        *(verify(service, order.gateway_order_id, pid) for pid in pids), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, InvalidState) for r in results if r is not None)
    assert sum(gateway.payments[p].status == "captured" for p in pids) == 1
    assert len([t for t in ledger.transactions if t.kind == "capture"]) == 1


async def test_a_live_claim_blocks_another_payment_and_a_stale_one_lapses(world: World) -> None:
    service, gateway, _, clock = world
    order = await service.create_order(USER, 10_000, "INR")
    a, b = gateway.pay(order.gateway_order_id), gateway.pay(order.gateway_order_id)
    async with service._ledger.unit_of_work() as uow:  # a claimant that crashed after claiming
        o = await uow.get_order(order.id, for_update=True)
        assert o is not None
        o.apply_payment(await gateway.fetch_payment(a), clock.now())
        assert o.claim_capture(a, clock.now()) is True
        await uow.save_order(o)
        await uow.commit()
    with pytest.raises(InvalidState, match="being captured"):
        await verify(service, order.gateway_order_id, b)
    clock.advance(CAPTURE_CLAIM_SECONDS + 1)
    await verify(service, order.gateway_order_id, b)
    assert gateway.payments[b].status == "captured"


async def test_reconciler_does_not_capture_a_second_payment_of_a_paid_order(world: World) -> None:
    service, gateway, ledger, clock = world
    order = await service.create_order(USER, 10_000, "INR")
    first, second = gateway.pay(order.gateway_order_id), gateway.pay(order.gateway_order_id)
    clock.advance(3600)
    reconciler = Reconciler(ledger, gateway, service, clock, ReconcilerSettings(min_age=timedelta(minutes=1)))
    await reconciler.reconcile_order(order.id)
    captured = [p for p in (first, second) if gateway.payments[p].status == "captured"]
    assert len(captured) == 1
    assert (await service.get_order(order.id, USER)).amount_paid == 10_000


async def test_a_released_reservation_is_revived_when_the_gateway_did_refund(world: World) -> None:
    service, gateway, ledger, _ = world
    order = await service.create_order(USER, 10_000, "INR")
    pid = gateway.pay(order.gateway_order_id)
    await verify(service, order.gateway_order_id, pid)
    gateway.unavailable.add("refund_payment")
    with pytest.raises(Exception, match="unavailable"):
        await service.refund(order.id, "admin", amount=4_000, idempotency_key="slow-refund")
    gateway.unavailable.clear()
    held = await service.get_order(order.id, USER)
    [reservation] = held.refunds
    await service.release_refund(order.id, reservation.ref)  # the reconciler gave up on it
    # ... but the gateway did make it (its answer was lost): a later snapshot must book it.
    late = RefundSnapshot(
        "rfnd_late00000001", pid, 4_000, "INR", "processed", {"refund_ref": reservation.ref}
    )
    revived = await service.apply_refund_snapshot(order.id, late)
    [refund] = revived.refunds
    assert (refund.id, refund.status, refund.booked) == ("rfnd_late00000001", RefundStatus.PROCESSED, True)
    assert revived.amount_refunded == 4_000
    assert [t.key for t in ledger.transactions if t.kind == "refund"] == ["refund:rfnd_late00000001"]


async def test_a_refund_reusing_a_taken_ref_gets_its_own_ref_and_both_are_kept(world: World) -> None:
    service, gateway, _, _ = world
    order = await service.create_order(USER, 10_000, "INR")
    pid = gateway.pay(order.gateway_order_id)
    await verify(service, order.gateway_order_id, pid)
    ref = "rf_shared_reference"
    one = RefundSnapshot("rfnd_one000000001", pid, 1_000, "INR", "processed", {"refund_ref": ref})
    two = RefundSnapshot("rfnd_two000000002", pid, 2_000, "INR", "processed", {"refund_ref": ref})
    await service.apply_refund_snapshot(order.id, one)
    final = await service.apply_refund_snapshot(order.id, two)
    assert sorted((r.id, r.ref) for r in final.refunds) == [
        ("rfnd_one000000001", ref),
        ("rfnd_two000000002", "ext_rfnd_two000000002"),
    ]
    assert final.amount_refunded == 3_000


def test_the_longest_gateway_call_ends_inside_the_capture_claim() -> None:
    from entrypoints.settings import MAX_GATEWAY_TIMEOUT_MS

    timeout_s = MAX_GATEWAY_TIMEOUT_MS / 1000
    capture_then_fetch = (2 * timeout_s + 1) + (2 * timeout_s + 1) / 2  # the adapter's deadline + fallback
    assert capture_then_fetch < CAPTURE_CLAIM_SECONDS
