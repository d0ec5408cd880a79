"""Concurrent use cases on a real database: each effect once, refunds never beyond the capture."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from adapters.persistence.ledger import SqlLedger
from adapters.persistence.tables import journal_transactions, orders
from application.payments import PaymentService
from domain.errors import InvalidState, RefundExceedsCaptured
from domain.payments import Order, OrderStatus
from domain.signatures import payment_signature
from tests.fakes import FakeClock, FakeGateway

SECRET = "test_key_secret"
AMOUNT = 50_000


async def _paid_order(ledger: SqlLedger) -> tuple[PaymentService, FakeGateway, Order, str]:
    gateway, clock = FakeGateway(), FakeClock()
    service = PaymentService(ledger, gateway, clock, SECRET)  # type: ignore[arg-type]
    order = await service.create_order("user_1", AMOUNT, "INR")
    payment_id = gateway.pay(order.gateway_order_id, status="authorized", fee=1_180, tax=180)
    return service, gateway, order, payment_id


async def _assert_balanced(ledger: SqlLedger) -> None:
    for currency, accounts in (await ledger.balances()).items():
        assert sum(accounts.values()) == 0, f"{currency}: {accounts}"


async def test_twenty_concurrent_verifications_capture_the_payment_once(ledger: SqlLedger) -> None:
    service, _gateway, order, payment_id = await _paid_order(ledger)
    signature = payment_signature(order.gateway_order_id, payment_id, SECRET)

    results = await asyncio.gather(
        *(service.verify_payment("user_1", order.gateway_order_id, payment_id, signature) for _ in range(20)),
        return_exceptions=True,
    )

    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    journal = await ledger.journal(order.id)
    assert [t.key for t in journal if t.kind == "capture"] == [f"capture:{payment_id}"]
    assert [t.key for t in journal if t.kind == "gateway_fee"] == [f"fee:{payment_id}"]
    async with ledger.unit_of_work() as uow:
        stored = await uow.get_order(order.id)
    assert stored is not None
    assert stored.amount_paid == AMOUNT
    assert stored.status is OrderStatus.PAID
    assert len(stored.payments) == 1
    async with ledger.engine.connect() as conn:
        row = (await conn.execute(select(orders).where(orders.c.id == order.id))).one()
        n_captures = (
            await conn.execute(select(func.count()).where(journal_transactions.c.kind == "capture"))
        ).scalar_one()
    assert (row.amount_paid, row.status) == (AMOUNT, "paid")
    assert n_captures == 1
    balances = await ledger.balances()
    assert balances["INR"]["sales"] == -AMOUNT
    assert balances["INR"]["gateway_receivable"] == AMOUNT - 1_180
    await _assert_balanced(ledger)


async def test_concurrent_partial_refunds_never_exceed_the_captured_amount(ledger: SqlLedger) -> None:
    service, gateway, order, payment_id = await _paid_order(ledger)
    signature = payment_signature(order.gateway_order_id, payment_id, SECRET)
    await service.verify_payment("user_1", order.gateway_order_id, payment_id, signature)
    part = AMOUNT * 30 // 100

    results = await asyncio.gather(
        *(service.refund(order.id, "admin", amount=part) for _ in range(10)), return_exceptions=True
    )

    successes = [r for r in results if not isinstance(r, BaseException)]
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(successes) * part <= AMOUNT
    assert len(successes) == 3  # the row lock serialises reservations: 30% + 30% + 30%, then 10% left
    assert all(isinstance(f, RefundExceedsCaptured | InvalidState) for f in failures), failures
    async with ledger.unit_of_work() as uow:
        stored = await uow.get_order(order.id)
    assert stored is not None
    assert stored.amount_refunded == 3 * part
    assert stored.amount_reserved == 0
    assert stored.status is OrderStatus.PARTIALLY_REFUNDED
    assert gateway.payments[payment_id].refunded == 3 * part
    journal = await ledger.journal(order.id)
    assert len([t for t in journal if t.kind == "refund"]) == 3
    async with ledger.engine.connect() as conn:
        row = (await conn.execute(select(orders).where(orders.c.id == order.id))).one()
    assert (row.amount_refunded, row.amount_reserved, row.status) == (3 * part, 0, "partially_refunded")
    balances = await ledger.balances()
    assert balances["INR"]["refunds"] == 3 * part
    await _assert_balanced(ledger)


async def test_concurrent_full_refunds_refund_once(ledger: SqlLedger) -> None:
    service, _gateway, order, payment_id = await _paid_order(ledger)
    signature = payment_signature(order.gateway_order_id, payment_id, SECRET)
    await service.verify_payment("user_1", order.gateway_order_id, payment_id, signature)

    results = await asyncio.gather(
        *(service.refund(order.id, "admin") for _ in range(8)), return_exceptions=True
    )

    successes = [r for r in results if not isinstance(r, BaseException)]
    assert len(successes) == 1
    assert all(isinstance(r, InvalidState) for r in results if isinstance(r, BaseException))
    async with ledger.unit_of_work() as uow:
        stored = await uow.get_order(order.id)
    assert stored is not None
    assert stored.status is OrderStatus.REFUNDED
    assert stored.amount_refunded == AMOUNT
    await _assert_balanced(ledger)


async def test_two_payments_of_one_order_verified_concurrently_are_not_both_captured(
    ledger: SqlLedger,
) -> None:
    """A customer who paid twice (two tabs) is charged once: the capture claim is taken under the row lock."""
    service, gateway, order, first = await _paid_order(ledger)
    others = [gateway.pay(order.gateway_order_id, status="authorized") for _ in range(4)]
    pids = [first, *others]

    results = await asyncio.gather(
        *(
            service.verify_payment(
                "user_1", order.gateway_order_id, pid, payment_signature(order.gateway_order_id, pid, SECRET)
            )
            for pid in pids
        ),
        return_exceptions=True,
    )

    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, InvalidState) for r in results if isinstance(r, BaseException))
    assert sum(gateway.payments[p].status == "captured" for p in pids) == 1
    journal = await ledger.journal(order.id)
    assert len([t for t in journal if t.kind == "capture"]) == 1
    async with ledger.unit_of_work() as uow:
        stored = await uow.get_order(order.id)
    assert stored is not None and stored.amount_paid == AMOUNT
    claimed = [p for p in stored.payments if p.capture_requested_at is not None]
    assert len(claimed) == 1 and claimed[0].is_captured
    await _assert_balanced(ledger)
