"""Idempotency keys in the ledger database (see :class:`domain.ports.IdempotencyStore`).

A key is claimed by inserting an ``in_progress`` row with ``ON CONFLICT DO NOTHING`` on its primary key
``(scope, key)``; when the row exists, it is read under a lock (``FOR UPDATE`` on PostgreSQL, the
``BEGIN IMMEDIATE`` write lock on SQLite), so of any number of concurrent first requests exactly one is
``STARTED``. An expired row counts as absent; an ``in_progress`` row whose claim is older than the lock
timeout (its request died) may be taken over.

Every claim (insert or takeover) writes a fresh ``claim_token`` (a fencing token) and returns it with
``STARTED``. ``complete`` and ``release`` are conditional writes on ``(scope, key, claim_token,
status = 'in_progress')``: a request whose claim was taken over while it still ran (it was only slow)
writes nothing, so it can neither overwrite the retry's stored response nor delete the retry's claim.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.persistence.engine import discard, transaction, translate_errors
from adapters.persistence.ledger import dialect_insert
from adapters.persistence.tables import idempotency_keys as keys
from domain.idempotency import (
    TTL_SECONDS,
    IdempotencyOutcome,
    IdempotencyState,
    StoredResponse,
    new_claim_token,
)

IN_PROGRESS = "in_progress"
COMPLETED = "completed"


class SqlIdempotencyStore:
    """Stripe-style idempotency keys beside the ledger, race-safe on PostgreSQL and SQLite."""

    def __init__(self, engine: AsyncEngine, claim_ttl_s: float = TTL_SECONDS) -> None:
        self._engine = engine
        self._claim_ttl = timedelta(seconds=claim_ttl_s)

    async def begin(
        self, scope: str, key: str, fingerprint: str, now: datetime, lock_timeout_s: float
    ) -> IdempotencyOutcome:
        token = new_claim_token()
        claim = {
            "fingerprint": fingerprint,
            "status": IN_PROGRESS,
            "claim_token": token,
            "response_status": None,
            "response_body": None,
            "content_type": None,
            "locked_at": now,
            "created_at": now,
            "expires_at": now + self._claim_ttl,
        }
        where = and_(keys.c.scope == scope, keys.c.key == key)
        with translate_errors(connecting=True):
            conn = await self._engine.connect()
        try:
            with translate_errors(connecting=True):
                await conn.begin()
            with translate_errors():
                inserted = await self._insert_claim(conn, scope, key, claim)
                if inserted:
                    await conn.commit()
                    return IdempotencyOutcome(IdempotencyState.STARTED, token=token)
                row = (await conn.execute(select(keys).where(where).with_for_update())).first()
                if row is None:  # released or purged between the insert and the read: claim again
                    inserted = await self._insert_claim(conn, scope, key, claim)
                    await conn.commit()
                    if inserted:
                        return IdempotencyOutcome(IdempotencyState.STARTED, token=token)
                    return IdempotencyOutcome(IdempotencyState.IN_PROGRESS)
                stale = row.status == IN_PROGRESS and row.locked_at < now - timedelta(seconds=lock_timeout_s)
                if row.expires_at < now or stale:  # take over, with a new token that fences the old claim
                    await conn.execute(update(keys).where(where).values(**claim))
                    await conn.commit()
                    return IdempotencyOutcome(IdempotencyState.STARTED, token=token)
        finally:
            await discard(conn)
        if row.fingerprint != fingerprint:
            return IdempotencyOutcome(IdempotencyState.MISMATCH)
        if row.status == IN_PROGRESS:
            return IdempotencyOutcome(IdempotencyState.IN_PROGRESS)
        response = StoredResponse(
            status=int(row.response_status),
            body=bytes(row.response_body or b""),
            content_type=row.content_type or "application/json",
        )
        return IdempotencyOutcome(IdempotencyState.REPLAY, response)

    @staticmethod
    async def _insert_claim(conn: AsyncConnection, scope: str, key: str, claim: dict[str, Any]) -> bool:
        stmt = (
            dialect_insert(conn, keys)
            .values(scope=scope, key=key, **claim)
            .on_conflict_do_nothing(index_elements=[keys.c.scope, keys.c.key])
            .returning(keys.c.key)
        )
        return (await conn.execute(stmt)).first() is not None

    @staticmethod
    def _claimed_with(scope: str, key: str, token: str) -> ColumnElement[bool]:
        """The row of the key, only while it is still the in-progress claim holding ``token``."""
        return and_(
            keys.c.scope == scope,
            keys.c.key == key,
            keys.c.claim_token == token,
            keys.c.status == IN_PROGRESS,
        )

    async def complete(
        self, scope: str, key: str, token: str, response: StoredResponse, expires_at: datetime
    ) -> bool:
        stmt = (
            update(keys)
            .where(self._claimed_with(scope, key, token))
            .values(
                status=COMPLETED,
                claim_token=None,  # completed: nobody holds the key any more
                response_status=response.status,
                response_body=response.body,
                content_type=response.content_type,
                expires_at=expires_at,
            )
        )
        async with transaction(self._engine) as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount) == 1

    async def release(self, scope: str, key: str, token: str) -> bool:
        stmt = delete(keys).where(self._claimed_with(scope, key, token))
        async with transaction(self._engine) as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount) == 1

    async def purge_expired(self, now: datetime) -> int:
        async with transaction(self._engine) as conn:
            result = await conn.execute(delete(keys).where(keys.c.expires_at < now))
        return int(result.rowcount)

    async def close(self) -> None:
        await self._engine.dispose()
