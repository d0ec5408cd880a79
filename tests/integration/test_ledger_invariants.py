"""Invariants the database itself enforces, whatever code writes to it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, exc, text, update

from adapters.persistence.ledger import SqlLedger
from adapters.persistence.tables import journal_postings, journal_transactions, orders, refunds
from domain.journal import Account, JournalTransaction, Posting, balances
from domain.payments import Order, RefundStatus

NOW = datetime(2026, 1, 2, tzinfo=UTC)


def _capture(order: Order, key: str | None = None, amount: int | None = None) -> JournalTransaction:
    return JournalTransaction(
        key=key or f"capture:pay_{order.id}",
        kind="capture",
        order_id=order.id,
        currency=order.currency,
        postings=(
            Posting(Account.GATEWAY_RECEIVABLE, Account.SALES, amount or order.amount.amount),
            Posting(Account.GATEWAY_FEES, Account.GATEWAY_RECEIVABLE, 200),
            Posting(Account.GATEWAY_TAX, Account.GATEWAY_RECEIVABLE, 36),
        ),
        occurred_at=NOW,
        reference=f"pay_{order.id}",
        metadata={"source": "test"},
    )


async def _store_with_capture(ledger: SqlLedger, order: Order) -> JournalTransaction:
    txn = _capture(order)
    async with ledger.unit_of_work() as uow:
        await uow.add_order(order)
        assert await uow.post(txn) is True
        await uow.commit()
    return txn


async def test_posting_the_same_key_twice_stores_one_transaction(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    order = make_order(paid=True)
    txn = await _store_with_capture(ledger, order)

    async with ledger.unit_of_work() as uow:
        again = await uow.post(_capture(order, amount=999))  # same key, different content
        await uow.commit()

    assert again is False
    journal = await ledger.journal(order.id)
    assert journal == [txn]  # the first one, unchanged, with its postings and metadata


async def test_journal_round_trips_and_balances_per_account_sum_to_zero(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    a, b = make_order(paid=True), make_order(paid=True, amount=7_000, currency="USD")
    ta = await _store_with_capture(ledger, a)
    tb = await _store_with_capture(ledger, b)
    refund = JournalTransaction(
        key="refund:rfnd_1",
        kind="refund",
        order_id=a.id,
        currency="INR",
        postings=(Posting(Account.REFUNDS, Account.GATEWAY_RECEIVABLE, 1_500),),
        occurred_at=NOW,
        reference="rfnd_1",
    )
    async with ledger.unit_of_work() as uow:
        assert await uow.post(refund)
        await uow.commit()

    assert await ledger.journal() == [ta, tb, refund]
    assert await ledger.journal(a.id) == [ta, refund]
    got = await ledger.balances()
    assert got == balances([ta, tb, refund])
    assert got["INR"]["sales"] == -50_000
    assert got["INR"]["gateway_receivable"] == 50_000 - 236 - 1_500
    assert got["USD"]["sales"] == -7_000
    assert all(sum(accounts.values()) == 0 for accounts in got.values())


@pytest.mark.parametrize("table", ["journal_transactions", "journal_postings"])
async def test_journal_rows_cannot_be_updated_or_deleted(
    ledger: SqlLedger, make_order: Callable[..., Order], table: str
) -> None:
    await _store_with_capture(ledger, make_order(paid=True))
    tbl = journal_transactions if table == "journal_transactions" else journal_postings
    column = tbl.c.kind if tbl is journal_transactions else tbl.c.debit_account
    before = await ledger.balances()

    for stmt in (update(tbl).values({column: "sales"}), delete(tbl)):
        with pytest.raises(exc.IntegrityError, match="append-only"):
            async with ledger.engine.begin() as conn:
                await conn.execute(stmt)

    assert await ledger.balances() == before


async def test_refunds_beyond_the_captured_amount_are_refused_by_the_database(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    order = make_order(paid=True, refunds=[(40_000, RefundStatus.PROCESSED, True)])
    async with ledger.unit_of_work() as uow:
        await uow.add_order(order)
        await uow.commit()

    with pytest.raises(exc.IntegrityError):
        async with ledger.engine.begin() as conn:
            await conn.execute(
                update(orders)
                .where(orders.c.id == order.id)
                .values(amount_refunded=45_000, amount_reserved=10_000)
            )
    with pytest.raises(exc.IntegrityError):
        async with ledger.engine.begin() as conn:
            await conn.execute(update(orders).where(orders.c.id == order.id).values(amount_paid=0))

    async with ledger.unit_of_work() as uow:
        stored = await uow.get_order(order.id)
    assert stored == order


async def test_save_order_cannot_store_an_aggregate_that_refunds_more_than_it_captured(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    """Even if a bug let the aggregate over-refund, the CHECK stops it at the database."""
    order = make_order(paid=True, refunds=[(30_000, RefundStatus.PROCESSED, True)])
    async with ledger.unit_of_work() as uow:
        await uow.add_order(order)
        await uow.commit()
    over = make_order(
        paid=True, refunds=[(30_000, RefundStatus.PROCESSED, True), (30_000, RefundStatus.PENDING, False)]
    )
    over.id, over.gateway_order_id, over.payments, over.refunds[0] = (
        order.id,
        order.gateway_order_id,
        order.payments,
        order.refunds[0],
    )
    over.refunds[1].payment_id = order.payments[0].id

    async with ledger.unit_of_work() as uow:
        with pytest.raises(exc.IntegrityError):
            await uow.save_order(over)
    async with ledger.unit_of_work() as uow:
        stored = await uow.get_order(order.id)
    assert stored == order


@pytest.mark.parametrize(
    ("column", "value"),
    [("amount", 0), ("status", "refunded_twice"), ("payment_id", "pay_of_another_order")],
)
async def test_refund_rows_violating_their_constraints_are_refused(
    ledger: SqlLedger, make_order: Callable[..., Order], column: str, value: object
) -> None:
    order = make_order(paid=True, refunds=[(1_000, RefundStatus.PENDING, False)])
    other = make_order(paid=True)
    async with ledger.unit_of_work() as uow:
        await uow.add_order(order)
        await uow.add_order(other)
        await uow.commit()
    if value == "pay_of_another_order":
        value = other.payments[0].id

    with pytest.raises(exc.IntegrityError):
        async with ledger.engine.begin() as conn:
            await conn.execute(update(refunds).where(refunds.c.order_id == order.id).values({column: value}))


async def test_a_posting_must_move_a_positive_amount_between_two_accounts(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    await _store_with_capture(ledger, make_order(paid=True))
    async with ledger.engine.connect() as conn:
        txn_id = (await conn.execute(text("SELECT min(id) FROM journal_transactions"))).scalar_one()
    for debit, credit, amount in (("sales", "sales", 10), ("sales", "refunds", 0), ("sales", "refunds", -5)):
        with pytest.raises(exc.IntegrityError):
            async with ledger.engine.begin() as conn:
                await conn.execute(
                    journal_postings.insert().values(
                        transaction_id=txn_id,
                        position=99,
                        debit_account=debit,
                        credit_account=credit,
                        amount=amount,
                        currency="INR",
                    )
                )
