"""The ledger on SQLAlchemy async Core: orders with their payments and refunds, and the journal.

One :class:`SqlUnitOfWork` is one database transaction. ``for_update`` takes the order's row lock
(``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the unit of work began with ``BEGIN IMMEDIATE`` and
already excludes every other writer). A journal transaction is inserted with ``ON CONFLICT DO NOTHING`` on
its unique key, so concurrent posts of one effect write it once. Driver failures surface as
``LedgerUnavailable``; integrity errors (a broken invariant) are not hidden.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.persistence.engine import SQLITE_BEGIN, create_engine, discard, transaction, translate_errors
from adapters.persistence.tables import (
    journal_postings,
    journal_transactions,
    orders,
    payments,
    refunds,
)
from domain.errors import ValidationError
from domain.journal import Account, JournalTransaction, Posting
from domain.money import Money, currency_of
from domain.payments import (
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from domain.ports import OrderPage


def dialect_insert(conn: AsyncConnection, table: Any) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` with the dialect's ``ON CONFLICT`` support (PostgreSQL and SQLite have the same)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported dialect {conn.dialect.name}")  # pragma: no cover


def reconcile_lease_end(created_at: datetime, now: datetime, lease_seconds: float) -> datetime:
    """When the reconciler may look at an order again: after the lease, and after half the order's age.

    An order nobody pays for is asked about at 15 min, ~30 min, ~1 h, ~2 h, ... rather than every few
    minutes for days, so thousands of abandoned checkouts do not turn into a stream of gateway calls.
    """
    return now + max(timedelta(seconds=lease_seconds), (now - created_at) / 2)


# ---- rows <-> domain -------------------------------------------------------------------------------
def _order_row(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "user_id": order.user_id,
        "gateway_order_id": order.gateway_order_id,
        "amount": order.amount.amount,
        "currency": order.currency,
        "receipt": order.receipt,
        "notes": dict(order.notes),
        "key_id": order.key_id,
        "amount_paid": order.amount_paid,
        "amount_refunded": order.amount_refunded,
        "amount_reserved": order.amount_reserved,
        "status": order.status.value,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def _payment_row(order_id: str, position: int, p: Payment) -> dict[str, Any]:
    return {
        "id": p.id,
        "order_id": order_id,
        "position": position,
        "amount": p.amount,
        "currency": p.currency,
        "status": p.status.value,
        "method": p.method,
        "fee": p.fee,
        "tax": p.tax,
        "captured_at": p.captured_at,
        "capture_requested_at": p.capture_requested_at,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


def _refund_row(order_id: str, position: int, r: Refund) -> dict[str, Any]:
    return {
        "ref": r.ref,
        "id": r.id,
        "order_id": order_id,
        "payment_id": r.payment_id,
        "position": position,
        "amount": r.amount,
        "currency": r.currency,
        "status": r.status.value,
        "booked": r.booked,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    }


def _payment(row: Row[Any]) -> Payment:
    return Payment(
        id=row.id,
        amount=int(row.amount),
        currency=row.currency,
        status=PaymentStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        method=row.method,
        fee=int(row.fee),
        tax=int(row.tax),
        captured_at=row.captured_at,
        capture_requested_at=row.capture_requested_at,
    )


def _refund(row: Row[Any]) -> Refund:
    return Refund(
        ref=row.ref,
        payment_id=row.payment_id,
        amount=int(row.amount),
        currency=row.currency,
        status=RefundStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        id=row.id,
        booked=bool(row.booked),
    )


def _order(row: Row[Any], pays: list[Payment], refs: list[Refund]) -> Order:
    notes = row.notes
    if isinstance(notes, str):  # a driver that hands JSON back as text
        notes = json.loads(notes)
    return Order(
        id=row.id,
        user_id=row.user_id,
        gateway_order_id=row.gateway_order_id,
        amount=Money(int(row.amount), currency_of(row.currency)),
        key_id=row.key_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        receipt=row.receipt,
        notes={str(k): str(v) for k, v in (notes or {}).items()},
        payments=pays,
        refunds=refs,
    )


async def _load_orders(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[Order]:
    """Orders of ``rows`` with their payments and refunds (two queries for any number of orders)."""
    if not rows:
        return []
    ids = [r.id for r in rows]
    pays: dict[str, list[Payment]] = defaultdict(list)
    for prow in await conn.execute(
        select(payments)
        .where(payments.c.order_id.in_(ids))
        .order_by(payments.c.order_id, payments.c.position)
    ):
        pays[prow.order_id].append(_payment(prow))
    refs: dict[str, list[Refund]] = defaultdict(list)
    for rrow in await conn.execute(
        select(refunds).where(refunds.c.order_id.in_(ids)).order_by(refunds.c.order_id, refunds.c.position)
    ):
        refs[rrow.order_id].append(_refund(rrow))
    return [_order(r, pays[r.id], refs[r.id]) for r in rows]


# ---- cursors -----------------------------------------------------------------------------------------
def encode_cursor(created_at: datetime, order_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), order_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) position a cursor stands for; ``ValidationError`` when it is not ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, order_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        at = datetime.fromisoformat(created)
        if at.tzinfo is None or not isinstance(order_id, str):
            raise ValueError("bad cursor")
        return at, order_id
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise ValidationError("cursor is not valid.") from None


# ---- the unit of work --------------------------------------------------------------------------------
class SqlUnitOfWork:
    """One transaction on the ledger (see :class:`domain.ports.LedgerUnitOfWork`)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.committed = False

    async def _get_by(self, column: Any, value: str, for_update: bool) -> Order | None:
        stmt = select(orders).where(column == value)
        if for_update:
            stmt = stmt.with_for_update()  # renders nothing on SQLite, where BEGIN IMMEDIATE holds
        with translate_errors():
            row = (await self._conn.execute(stmt)).first()
            if row is None:
                return None
            return (await _load_orders(self._conn, [row]))[0]

    async def get_order(self, order_id: str, *, for_update: bool = False) -> Order | None:
        return await self._get_by(orders.c.id, order_id, for_update)

    async def get_order_by_gateway_id(
        self, gateway_order_id: str, *, for_update: bool = False
    ) -> Order | None:
        return await self._get_by(orders.c.gateway_order_id, gateway_order_id, for_update)

    async def get_order_by_payment_id(self, payment_id: str, *, for_update: bool = False) -> Order | None:
        stmt = (
            select(orders)
            .join(payments, payments.c.order_id == orders.c.id)
            .where(payments.c.id == payment_id)
        )
        if for_update:
            stmt = stmt.with_for_update(of=orders)
        with translate_errors():
            row = (await self._conn.execute(stmt)).first()
            if row is None:
                return None
            return (await _load_orders(self._conn, [row]))[0]

    async def add_order(self, order: Order) -> None:
        with translate_errors():
            await self._conn.execute(orders.insert().values(**_order_row(order)))
            await self._write_children(order)

    async def save_order(self, order: Order) -> None:
        row = _order_row(order)
        del row["id"], row["created_at"]
        with translate_errors():
            # Children first: the order's CHECK on refunded + reserved <= paid sees the final amounts,
            # and a refund row needs its payment row.
            await self._write_children(order)
            result = await self._conn.execute(orders.update().where(orders.c.id == order.id).values(**row))
        if result.rowcount != 1:
            raise LookupError(f"order {order.id} is not stored; add_order it first.")

    async def _write_children(self, order: Order) -> None:
        for i, p in enumerate(order.payments):
            prow = _payment_row(order.id, i, p)
            ins = dialect_insert(self._conn, payments).values(**prow)
            await self._conn.execute(
                ins.on_conflict_do_update(
                    index_elements=[payments.c.id],
                    set_={k: ins.excluded[k] for k in prow if k not in ("id", "order_id", "created_at")},
                    where=payments.c.order_id == order.id,
                )
            )
        for i, r in enumerate(order.refunds):
            rrow = _refund_row(order.id, i, r)
            ins = dialect_insert(self._conn, refunds).values(**rrow)
            await self._conn.execute(
                ins.on_conflict_do_update(
                    index_elements=[refunds.c.ref],
                    set_={k: ins.excluded[k] for k in rrow if k not in ("ref", "order_id", "created_at")},
                    where=refunds.c.order_id == order.id,
                )
            )

    async def post(self, transaction: JournalTransaction) -> bool:
        ins = (
            dialect_insert(self._conn, journal_transactions)
            .values(
                key=transaction.key,
                kind=transaction.kind,
                order_id=transaction.order_id,
                currency=transaction.currency,
                reference=transaction.reference,
                meta=dict(transaction.metadata),
                occurred_at=transaction.occurred_at,
            )
            .on_conflict_do_nothing(index_elements=[journal_transactions.c.key])
            .returning(journal_transactions.c.id)
        )
        with translate_errors():
            txn_id = (await self._conn.execute(ins)).scalar_one_or_none()
            if txn_id is None:
                return False
            await self._conn.execute(
                journal_postings.insert(),
                [
                    {
                        "transaction_id": txn_id,
                        "position": i,
                        "debit_account": p.debit.value,
                        "credit_account": p.credit.value,
                        "amount": p.amount,
                        "currency": transaction.currency,
                    }
                    for i, p in enumerate(transaction.postings)
                ],
            )
        return True

    async def commit(self) -> None:
        with translate_errors():
            await self._conn.commit()
        self.committed = True


# ---- the ledger --------------------------------------------------------------------------------------
class SqlLedger:
    """The :class:`domain.ports.Ledger` on PostgreSQL (asyncpg) or SQLite (aiosqlite)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @classmethod
    def from_url(cls, url: str, **engine_options: Any) -> SqlLedger:
        """A ledger on a new engine for ``url`` (see :func:`adapters.persistence.engine.create_engine`)."""
        return cls(create_engine(url, **engine_options))

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def dialect(self) -> str:
        """``"postgresql"`` or ``"sqlite"`` (for the breaker's ``adapter`` field and readiness)."""
        return self._engine.dialect.name

    def unit_of_work(self, *, read_only: bool = False) -> AbstractAsyncContextManager[SqlUnitOfWork]:
        return self._unit_of_work(read_only)

    @asynccontextmanager
    async def _unit_of_work(self, read_only: bool) -> AsyncIterator[SqlUnitOfWork]:
        with translate_errors(connecting=True):
            conn = await self._engine.connect()
        try:
            with translate_errors(connecting=True):
                if read_only:  # SQLite: BEGIN DEFERRED, so a read does not queue behind writers
                    conn = await conn.execution_options(**{SQLITE_BEGIN: "DEFERRED"})
                await conn.begin()
            yield SqlUnitOfWork(conn)
        finally:
            await discard(conn)

    async def list_orders(self, user_id: str, limit: int, cursor: str | None) -> OrderPage:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError("limit must be a positive integer.")
        stmt = select(orders).where(orders.c.user_id == user_id)
        if cursor is not None:
            at, last_id = decode_cursor(cursor)
            stmt = stmt.where(
                or_(orders.c.created_at < at, and_(orders.c.created_at == at, orders.c.id < last_id))
            )
        stmt = stmt.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit + 1)
        async with transaction(self._engine, read_only=True) as conn:
            rows = (await conn.execute(stmt)).all()
            page = await _load_orders(conn, rows[:limit])
        next_cursor = None
        if len(rows) > limit:
            last = page[-1]
            next_cursor = encode_cursor(last.created_at, last.id)
        return OrderPage(page, next_cursor)

    async def balances(self) -> dict[str, dict[str, int]]:
        debits = select(
            journal_postings.c.currency.label("currency"),
            journal_postings.c.debit_account.label("account"),
            journal_postings.c.amount.label("amount"),
        )
        credits = select(
            journal_postings.c.currency.label("currency"),
            journal_postings.c.credit_account.label("account"),
            (-journal_postings.c.amount).label("amount"),
        )
        lines = union_all(debits, credits).subquery()
        stmt = (
            select(lines.c.currency, lines.c.account, func.sum(lines.c.amount))
            .group_by(lines.c.currency, lines.c.account)
            .order_by(lines.c.currency, lines.c.account)
        )
        out: dict[str, dict[str, int]] = {}
        async with transaction(self._engine, read_only=True) as conn:
            for currency, account, total in await conn.execute(stmt):
                out.setdefault(currency, {})[account] = int(total)
        return out

    async def journal(self, order_id: str | None = None) -> list[JournalTransaction]:
        txn_stmt = select(journal_transactions).order_by(journal_transactions.c.id)
        post_stmt = (
            select(journal_postings)
            .join(journal_transactions, journal_transactions.c.id == journal_postings.c.transaction_id)
            .order_by(journal_postings.c.transaction_id, journal_postings.c.position)
        )
        if order_id is not None:
            txn_stmt = txn_stmt.where(journal_transactions.c.order_id == order_id)
            post_stmt = post_stmt.where(journal_transactions.c.order_id == order_id)
        async with transaction(self._engine, read_only=True) as conn:
            txn_rows = (await conn.execute(txn_stmt)).all()
            post_rows = (await conn.execute(post_stmt)).all()
        by_txn: dict[int, list[Posting]] = defaultdict(list)
        for p in post_rows:
            by_txn[p.transaction_id].append(
                Posting(Account(p.debit_account), Account(p.credit_account), int(p.amount))
            )
        return [_journal_transaction(t, by_txn[t.id]) for t in txn_rows]

    async def orders_to_reconcile(
        self,
        created_before: datetime,
        created_after: datetime,
        now: datetime,
        lease_seconds: float,
        limit: int,
    ) -> list[str]:
        """Lease up to ``limit`` orders for the reconciler (see :class:`domain.ports.Ledger`).

        Rows leased by a concurrent reconciler are skipped (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
        on SQLite ``BEGIN IMMEDIATE`` serialises the lease transactions).
        """
        stale_reservation = (
            select(refunds.c.ref)
            .where(
                refunds.c.order_id == orders.c.id,
                refunds.c.id.is_(None),
                refunds.c.status == RefundStatus.PENDING.value,
                refunds.c.created_at < created_before,
            )
            .exists()
        )
        unsettled = and_(
            orders.c.status.in_([OrderStatus.CREATED.value, OrderStatus.ATTEMPTED.value]),
            orders.c.created_at < created_before,
            orders.c.created_at >= created_after,
        )
        stmt = (
            select(orders.c.id, orders.c.created_at)
            .where(
                or_(unsettled, stale_reservation),
                or_(orders.c.reconcile_lease_until.is_(None), orders.c.reconcile_lease_until <= now),
            )
            .order_by(orders.c.created_at, orders.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with transaction(self._engine) as conn:
            rows = (await conn.execute(stmt)).all()
            for row in rows:
                await conn.execute(
                    orders.update()
                    .where(orders.c.id == row.id)
                    .values(reconcile_lease_until=reconcile_lease_end(row.created_at, now, lease_seconds))
                )
        return [row.id for row in rows]

    async def ping(self) -> None:
        async with transaction(self._engine, read_only=True) as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self._engine.dispose()


def _journal_transaction(row: Row[Any], postings: Iterable[Posting]) -> JournalTransaction:
    meta = row.meta
    if isinstance(meta, str):
        meta = json.loads(meta)
    return JournalTransaction(
        key=row.key,
        kind=row.kind,
        order_id=row.order_id,
        currency=row.currency,
        postings=tuple(postings),
        occurred_at=row.occurred_at,
        reference=row.reference,
        metadata={str(k): str(v) for k, v in dict[str, Any](meta or {}).items()},
    )
