"""The webhook inbox in the ledger database (see :class:`domain.ports.WebhookInbox`).

An event is inserted with ``ON CONFLICT DO NOTHING`` on its gateway event id and committed before
:meth:`SqlWebhookInbox.store` returns, so a delivery that was acknowledged is never lost and a repeated
delivery writes nothing. Processing is leased: ``locked_until`` says until when a worker holds an event.
:meth:`~SqlWebhookInbox.claim` takes the lease with one conditional ``UPDATE ... RETURNING``;
:meth:`~SqlWebhookInbox.claim_due` locks due events with ``SELECT ... FOR UPDATE SKIP LOCKED`` on
PostgreSQL (on SQLite the ``BEGIN IMMEDIATE`` write lock serialises the claims) and leases them in the
same transaction, so no two workers get the same event. Driver failures surface as ``LedgerUnavailable``.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from adapters.persistence.engine import transaction
from adapters.persistence.ledger import decode_cursor, dialect_insert, encode_cursor
from adapters.persistence.tables import webhook_events as events
from domain.errors import ValidationError
from domain.webhooks import InboxEvent, InboxStatus

_DONE = (InboxStatus.PROCESSED, InboxStatus.IGNORED)


def _event(row: Row[Any]) -> InboxEvent:
    return InboxEvent(
        id=row.id,
        event_type=row.event_type,
        body=bytes(row.body),
        received_at=row.received_at,
        status=InboxStatus(row.status),
        attempts=int(row.attempts),
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        order_id=row.order_id,
        processed_at=row.processed_at,
        lease_token=row.lease_token,
    )


def _unleased(now: datetime) -> ColumnElement[bool]:
    return or_(events.c.locked_until.is_(None), events.c.locked_until < now)


def _due(now: datetime) -> ColumnElement[bool]:
    """Pending, its next attempt due (no time means at once), and not leased by a live worker."""
    return and_(
        events.c.status == InboxStatus.PENDING.value,
        or_(events.c.next_attempt_at.is_(None), events.c.next_attempt_at <= now),
        _unleased(now),
    )


def _lease_end(now: datetime, lease_seconds: float) -> datetime:
    if not lease_seconds > 0:
        raise ValueError("lease_seconds must be positive.")
    return now + timedelta(seconds=lease_seconds)


class SqlWebhookInbox:
    """Durable webhook deliveries beside the ledger, on PostgreSQL or SQLite (shares the engine)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def store(self, event: InboxEvent) -> bool:
        # A pending event without a time of its next attempt is due at once.
        due = event.next_attempt_at
        if due is None and event.status is InboxStatus.PENDING:
            due = event.received_at
        async with transaction(self._engine) as conn:
            stmt = (
                dialect_insert(conn, events)
                .values(
                    id=event.id,
                    event_type=event.event_type,
                    body=bytes(event.body),
                    status=InboxStatus(event.status).value,
                    attempts=event.attempts,
                    next_attempt_at=due,
                    locked_until=None,
                    last_error=event.last_error,
                    order_id=event.order_id,
                    received_at=event.received_at,
                    processed_at=event.processed_at,
                )
                .on_conflict_do_nothing(index_elements=[events.c.id])
                .returning(events.c.id)
            )
            inserted = (await conn.execute(stmt)).first() is not None
        # transaction() committed on leaving the block: the row is durable now.
        return inserted

    async def get(self, event_id: str) -> InboxEvent | None:
        async with transaction(self._engine, read_only=True) as conn:
            row = (await conn.execute(select(events).where(events.c.id == event_id))).first()
        return _event(row) if row is not None else None

    async def claim(self, event_id: str, now: datetime, lease_seconds: float) -> InboxEvent | None:
        stmt = (
            update(events)
            .where(
                events.c.id == event_id,
                events.c.status == InboxStatus.PENDING.value,
                _unleased(now),
            )
            .values(locked_until=_lease_end(now, lease_seconds), lease_token=secrets.token_hex(16))
            .returning(*events.c)
        )
        async with transaction(self._engine) as conn:
            row = (await conn.execute(stmt)).first()
        return _event(row) if row is not None else None

    async def claim_due(self, now: datetime, limit: int, lease_seconds: float) -> list[InboxEvent]:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be a positive integer.")
        until = _lease_end(now, lease_seconds)
        # Two statements in one transaction: lock the picked rows (skipping rows another worker holds
        # locked right now, on PostgreSQL; ``FOR UPDATE`` renders nothing on SQLite, where BEGIN
        # IMMEDIATE already excludes every other writer), then lease exactly those. Not one
        # ``UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)``: PostgreSQL may
        # re-run such a sub-select once per row (a nested loop), skip the rows it just updated, and
        # so lease every due event whatever ``limit`` says.
        picked = (
            select(events.c.id)
            .where(_due(now))
            .order_by(events.c.next_attempt_at, events.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with transaction(self._engine) as conn:
            ids = list((await conn.execute(picked)).scalars())
            if not ids:
                return []
            stmt = (
                update(events)
                .where(events.c.id.in_(ids))
                .values(locked_until=until, lease_token=secrets.token_hex(16))
                .returning(*events.c)
            )
            rows = (await conn.execute(stmt)).all()
        claimed = [_event(r) for r in rows]
        claimed.sort(key=lambda e: (e.next_attempt_at or e.received_at, e.id))
        return claimed

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
        status = InboxStatus(status)
        holder = (
            events.c.lease_token.is_(None) if lease_token is None else events.c.lease_token == lease_token
        )
        stmt = (
            update(events)
            .where(events.c.id == event_id, holder)
            .values(
                status=status.value,
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                last_error=last_error,
                # An attempt that failed before it found the order does not forget a known link.
                order_id=order_id if order_id is not None else events.c.order_id,
                processed_at=now if status in _DONE else None,
                locked_until=None,
                lease_token=None,
            )
        )
        async with transaction(self._engine) as conn:
            written = (await conn.execute(stmt)).rowcount
        return bool(written)

    async def list(
        self, status: InboxStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[InboxEvent], str | None]:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError("limit must be a positive integer.")
        stmt = select(events)
        if status is not None:
            stmt = stmt.where(events.c.status == InboxStatus(status).value)
        if cursor is not None:
            at, last_id = decode_cursor(cursor)
            stmt = stmt.where(
                or_(
                    events.c.received_at < at,
                    and_(events.c.received_at == at, events.c.id < last_id),
                )
            )
        stmt = stmt.order_by(events.c.received_at.desc(), events.c.id.desc()).limit(limit + 1)
        async with transaction(self._engine, read_only=True) as conn:
            rows = (await conn.execute(stmt)).all()
        page = [_event(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1]
            next_cursor = encode_cursor(last.received_at, last.id)
        return page, next_cursor

    async def redrive(self, event_id: str, now: datetime) -> InboxEvent | None:
        """Back to pending, due ``now``, attempts reset; a processed event is returned unchanged."""
        stmt = (
            update(events)
            .where(events.c.id == event_id, events.c.status != InboxStatus.PROCESSED.value, _unleased(now))
            .values(
                status=InboxStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                locked_until=None,
                lease_token=None,
                last_error=None,
                processed_at=None,
            )
            .returning(*events.c)
        )
        async with transaction(self._engine) as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                row = (await conn.execute(select(events).where(events.c.id == event_id))).first()
        return _event(row) if row is not None else None

    async def close(self) -> None:
        """Nothing to release: the engine is shared with the ledger, which disposes of it."""
        return None
