"""Orders round-trip through the ledger database field for field, and page newest first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from adapters.persistence.ledger import SqlLedger
from adapters.persistence.tables import orders
from domain.errors import ValidationError
from domain.payments import Order, OrderStatus, RefundStatus


async def _store(ledger: SqlLedger, order: Order) -> None:
    async with ledger.unit_of_work() as uow:
        await uow.add_order(order)
        await uow.commit()


async def _load(ledger: SqlLedger, order_id: str) -> Order:
    async with ledger.unit_of_work() as uow:
        order = await uow.get_order(order_id)
    assert order is not None
    return order


async def test_order_with_payments_and_refunds_round_trips_every_field(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    order = make_order(
        paid=True,
        refunds=[
            (10_000, RefundStatus.PROCESSED, True),  # confirmed and booked
            (5_000, RefundStatus.PENDING, False),  # a reservation: no gateway id yet
            (2_000, RefundStatus.FAILED, True),  # failed: not booked
        ],
    )
    await _store(ledger, order)

    loaded = await _load(ledger, order.id)

    assert loaded == order  # dataclass equality: every field of order, payments and refunds
    assert loaded.refunds[1].id is None
    assert [r.booked for r in loaded.refunds] == [True, False, False]
    assert loaded.amount.currency.code == "INR"
    assert loaded.payments[0].captured_at is not None
    assert loaded.payments[0].captured_at.tzinfo is not None


async def test_timestamps_come_back_as_the_same_instant_in_utc(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    created = datetime(2026, 3, 1, 17, 30, 0, 654321, tzinfo=ist)
    order = make_order(created_at=created)
    await _store(ledger, order)

    loaded = await _load(ledger, order.id)

    assert loaded.created_at == created
    assert loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.created_at.replace(tzinfo=None) == datetime(2026, 3, 1, 12, 0, 0, 654321)


async def test_save_order_writes_the_derived_amounts_and_status_columns(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    order = make_order()
    await _store(ledger, order)
    paid = make_order(
        paid=True, refunds=[(10_000, RefundStatus.PROCESSED, True), (3_000, RefundStatus.PENDING, False)]
    )
    # The same order, now paid and partly refunded: payments and refunds are added by save_order.
    paid.id, paid.gateway_order_id = order.id, order.gateway_order_id
    for p in paid.payments:
        p.id = f"pay_{order.id}"
    for r in paid.refunds:
        r.payment_id = f"pay_{order.id}"
        r.ref = r.ref + "_saved"
    async with ledger.unit_of_work() as uow:
        await uow.save_order(paid)
        await uow.commit()

    async with ledger.engine.connect() as conn:
        row = (await conn.execute(select(orders).where(orders.c.id == order.id))).one()
    assert (row.amount_paid, row.amount_refunded, row.amount_reserved) == (50_000, 10_000, 3_000)
    assert row.status == OrderStatus.PARTIALLY_REFUNDED.value
    assert await _load(ledger, order.id) == paid


async def test_leaving_a_unit_of_work_without_commit_stores_nothing(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    order = make_order()
    async with ledger.unit_of_work() as uow:
        await uow.add_order(order)
    async with ledger.unit_of_work() as uow:
        assert await uow.get_order(order.id) is None
        assert await uow.get_order_by_gateway_id(order.gateway_order_id) is None


async def test_order_is_found_by_its_gateway_order_id(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    order = make_order(paid=True)
    await _store(ledger, order)
    async with ledger.unit_of_work() as uow:
        found = await uow.get_order_by_gateway_id(order.gateway_order_id, for_update=True)
    assert found == order


async def test_list_orders_pages_a_users_orders_newest_first_without_gaps_or_repeats(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    base = datetime(2026, 2, 1, tzinfo=UTC)
    mine = [make_order(user_id="alice", created_at=base + timedelta(minutes=i // 2)) for i in range(7)]
    # Two orders per timestamp: the cursor must break ties by id.
    others = [make_order(user_id="bob", created_at=base + timedelta(minutes=i)) for i in range(3)]
    for o in mine + others:
        await _store(ledger, o)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await ledger.list_orders("alice", 3, cursor)
        pages += 1
        seen.extend(o.id for o in page.orders)
        assert all(o.user_id == "alice" for o in page.orders)
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = [o.id for o in sorted(mine, key=lambda o: (o.created_at, o.id), reverse=True)]
    assert seen == expected
    assert pages == 3


async def test_list_orders_returns_full_orders_and_no_cursor_on_the_last_page(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    order = make_order(user_id="carol", paid=True, refunds=[(1_000, RefundStatus.PROCESSED, True)])
    await _store(ledger, order)
    page = await ledger.list_orders("carol", 10, None)
    assert page.orders == [order]
    assert page.next_cursor is None
    assert (await ledger.list_orders("nobody", 10, None)).orders == []


@pytest.mark.parametrize("cursor", ["not-a-cursor", "", "e30", "WyJ4IiwxXQ", "%%%"])
async def test_list_orders_refuses_a_cursor_it_did_not_issue(ledger: SqlLedger, cursor: str) -> None:
    with pytest.raises(ValidationError):
        await ledger.list_orders("alice", 10, cursor)


async def test_ping_answers_when_the_database_is_up(ledger: SqlLedger) -> None:
    await ledger.ping()
    assert ledger.dialect in ("sqlite", "postgresql")


async def test_order_is_found_by_one_of_its_payment_ids(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    order = make_order(paid=True)
    await _store(ledger, order)
    async with ledger.unit_of_work() as uow:
        found = await uow.get_order_by_payment_id(order.payments[0].id, for_update=True)
        missing = await uow.get_order_by_payment_id("pay_unknown")
    assert found == order
    assert missing is None


async def test_orders_to_reconcile_leases_unsettled_orders_once_until_the_lease_ends(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    stuck = make_order(created_at=t)  # status created
    paid = make_order(paid=True, created_at=t)  # settled: not for the reconciler
    reserved = make_order(paid=True, created_at=t, refunds=[(1_000, RefundStatus.PENDING, False)])
    too_new = make_order(created_at=t + timedelta(hours=2))
    too_old = make_order(created_at=t - timedelta(days=30))
    for o in (stuck, paid, reserved, too_new, too_old):
        await _store(ledger, o)
    now = t + timedelta(hours=2, minutes=1)
    window = {"created_before": t + timedelta(hours=1), "created_after": t - timedelta(days=7)}

    first = await ledger.orders_to_reconcile(**window, now=now, lease_seconds=300, limit=10)
    during_lease = await ledger.orders_to_reconcile(
        **window, now=now + timedelta(seconds=299), lease_seconds=300, limit=10
    )
    # The orders are 2 h 1 min old: leased for half that, longer than the 300 s lease.
    still_leased = await ledger.orders_to_reconcile(
        **window, now=now + timedelta(minutes=60), lease_seconds=300, limit=10
    )
    after_lease = await ledger.orders_to_reconcile(
        **window, now=now + timedelta(minutes=60, seconds=31), lease_seconds=300, limit=1
    )

    assert sorted(first) == sorted([stuck.id, reserved.id])
    assert during_lease == []
    assert still_leased == []
    assert len(after_lease) == 1
    assert after_lease[0] in first


async def test_concurrent_reconcilers_never_lease_the_same_order(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(12):
        await _store(ledger, make_order(created_at=t + timedelta(seconds=i)))
    window = {"created_before": t + timedelta(hours=1), "created_after": t - timedelta(days=1)}
    now = t + timedelta(hours=2)

    leases = await asyncio.gather(
        *(ledger.orders_to_reconcile(**window, now=now, lease_seconds=60, limit=3) for _ in range(6))
    )

    leased = [oid for batch in leases for oid in batch]
    assert len(leased) == len(set(leased)) == 12


async def test_a_read_only_unit_of_work_does_not_wait_for_a_writer(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    """GET /orders/{id} must not queue behind a write transaction (SQLite: BEGIN DEFERRED, not IMMEDIATE)."""
    order = make_order()
    async with ledger.unit_of_work() as uow:
        await uow.add_order(order)
        await uow.commit()
    async with ledger.unit_of_work() as writer:
        await writer.get_order(order.id, for_update=True)  # holds the write lock / row lock

        async def read() -> str | None:
            async with ledger.unit_of_work(read_only=True) as reader:
                found = await reader.get_order(order.id)
            return None if found is None else found.id

        assert await asyncio.wait_for(read(), timeout=3) == order.id


async def test_an_unpaid_order_is_leased_for_half_its_age_so_it_is_asked_about_less_often(
    ledger: SqlLedger, make_order: Callable[..., Order]
) -> None:
    order = make_order()
    async with ledger.unit_of_work() as uow:
        await uow.add_order(order)
        await uow.commit()
    created = order.created_at
    window = {"created_after": created - timedelta(days=3), "lease_seconds": 300.0, "limit": 10}

    first = created + timedelta(hours=4)
    assert await ledger.orders_to_reconcile(created_before=first, now=first, **window) == [order.id]
    # Leased for two hours (half its age), not for the five-minute lease.
    for later in (first + timedelta(minutes=10), first + timedelta(minutes=119)):
        assert await ledger.orders_to_reconcile(created_before=later, now=later, **window) == []
    again = first + timedelta(hours=2, seconds=1)
    assert await ledger.orders_to_reconcile(created_before=again, now=again, **window) == [order.id]
