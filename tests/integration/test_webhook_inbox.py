"""The SQL webhook inbox on both engines: stored once and byte-exact, leased to one worker at a time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import exc, insert, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.persistence.engine import create_engine, run_on_connection
from adapters.persistence.migrations import downgrade, upgrade
from adapters.persistence.tables import webhook_events
from adapters.persistence.webhook_inbox import SqlWebhookInbox
from domain.errors import LedgerUnavailable, ValidationError
from domain.webhooks import InboxEvent, InboxStatus

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
LEASE = 60.0
BODY = '{"event":"payment.captured","note":"₹500 café"}\n'.encode()


def _event(event_id: str, received_at: datetime = T0, body: bytes = BODY, **fields: Any) -> InboxEvent:
    fields.setdefault("next_attempt_at", received_at)
    return InboxEvent(
        id=event_id, event_type="payment.captured", body=body, received_at=received_at, **fields
    )


@pytest.fixture
def inbox(engine: AsyncEngine) -> SqlWebhookInbox:
    return SqlWebhookInbox(engine)


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return len((await conn.execute(webhook_events.select())).all())


# ---- store / get ---------------------------------------------------------------------------------


async def test_storing_an_event_id_twice_keeps_one_row_and_reports_the_duplicate(
    inbox: SqlWebhookInbox, engine: AsyncEngine
) -> None:
    assert await inbox.store(_event("evt_1")) is True
    assert await inbox.store(_event("evt_1", body=b'{"other": "bytes"}')) is False

    assert await _count(engine) == 1
    stored = await inbox.get("evt_1")
    assert stored is not None
    assert stored.body == BODY  # the duplicate wrote nothing


async def test_concurrent_stores_of_one_event_id_insert_it_once(
    inbox: SqlWebhookInbox, engine: AsyncEngine
) -> None:
    results = await asyncio.gather(*(inbox.store(_event("evt_race")) for _ in range(8)))

    assert sorted(results) == [False] * 7 + [True]
    assert await _count(engine) == 1


async def test_the_body_and_every_field_round_trip_exactly(inbox: SqlWebhookInbox) -> None:
    body = '{"a":"₹ é","b":[1,2]}\r\n\x00\n'.encode() + b"\xff\xfe"  # not even UTF-8 at the end
    await inbox.store(_event("evt_bytes", body=body))

    got = await inbox.get("evt_bytes")

    assert got == InboxEvent(
        id="evt_bytes",
        event_type="payment.captured",
        body=body,
        received_at=T0,
        status=InboxStatus.PENDING,
        attempts=0,
        next_attempt_at=T0,
        last_error=None,
        order_id=None,
        processed_at=None,
    )
    assert type(got.body) is bytes
    assert await inbox.get("evt_unknown") is None


async def test_a_stored_event_is_committed_and_seen_by_another_engine(
    inbox: SqlWebhookInbox, database_url: str
) -> None:
    await inbox.store(_event("evt_durable"))

    other = create_engine(database_url)
    try:
        seen = await SqlWebhookInbox(other).get("evt_durable")
    finally:
        await other.dispose()
    assert seen is not None and seen.body == BODY


async def test_every_inbox_status_is_accepted_and_anything_else_is_refused_by_the_database(
    inbox: SqlWebhookInbox, engine: AsyncEngine
) -> None:
    for status in InboxStatus:
        assert await inbox.store(_event(f"evt_{status.value}", status=status))
        got = await inbox.get(f"evt_{status.value}")
        assert got is not None and got.status is status

    row = {"id": "evt_bad", "event_type": "x", "body": b"{}", "received_at": T0}
    for bad in ({"status": "done", "attempts": 0}, {"status": "pending", "attempts": -1}):
        with pytest.raises(exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert(webhook_events).values(**row, **bad))


# ---- claim / claim_due ---------------------------------------------------------------------------


async def test_two_concurrent_claims_of_one_event_lease_it_to_exactly_one(inbox: SqlWebhookInbox) -> None:
    await inbox.store(_event("evt_claim"))

    results = await asyncio.gather(*(inbox.claim("evt_claim", T0, LEASE) for _ in range(2)))

    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert winners[0].id == "evt_claim" and winners[0].body == BODY


async def test_claim_refuses_leased_unknown_and_finished_events(inbox: SqlWebhookInbox) -> None:
    await inbox.store(_event("evt_a"))
    await inbox.store(_event("evt_done"))
    await inbox.finish("evt_done", InboxStatus.PROCESSED, T0, lease_token=None, attempts=1)

    assert await inbox.claim("evt_a", T0, LEASE) is not None
    assert await inbox.claim("evt_a", T0 + timedelta(seconds=30), LEASE) is None  # still leased
    assert await inbox.claim("evt_unknown", T0, LEASE) is None
    assert await inbox.claim("evt_done", T0, LEASE) is None


async def test_an_expired_lease_lets_the_event_be_claimed_again(inbox: SqlWebhookInbox) -> None:
    await inbox.store(_event("evt_lease"))
    assert await inbox.claim("evt_lease", T0, LEASE) is not None

    assert await inbox.claim_due(T0 + timedelta(seconds=LEASE - 1), 10, LEASE) == []
    again = await inbox.claim_due(T0 + timedelta(seconds=LEASE + 1), 10, LEASE)
    assert [e.id for e in again] == ["evt_lease"]
    # ... and that new lease holds in turn
    assert await inbox.claim("evt_lease", T0 + timedelta(seconds=LEASE + 2), LEASE) is None
    assert await inbox.claim("evt_lease", T0 + timedelta(seconds=2 * LEASE + 2), LEASE) is not None


async def test_concurrent_claim_due_workers_hand_out_each_event_exactly_once(
    inbox: SqlWebhookInbox,
) -> None:
    ids = [f"evt_{i:03d}" for i in range(40)]
    for i, eid in enumerate(ids):
        await inbox.store(_event(eid, received_at=T0 + timedelta(milliseconds=i)))
    now = T0 + timedelta(seconds=1)

    async def worker() -> list[str]:
        mine: list[str] = []
        while batch := await inbox.claim_due(now, 3, LEASE):
            mine.extend(e.id for e in batch)
        return mine

    handed_out = await asyncio.gather(*(worker() for _ in range(6)))

    everything = [eid for batch in handed_out for eid in batch]
    assert sorted(everything) == ids  # each once, none lost
    assert sum(1 for batch in handed_out if batch) >= 2  # the workers really ran side by side


async def test_claim_due_never_leases_more_than_its_limit(inbox: SqlWebhookInbox) -> None:
    ids = [f"evt_{i:03d}" for i in range(40)]
    for i, eid in enumerate(ids):
        await inbox.store(_event(eid, received_at=T0 + timedelta(milliseconds=i)))
    now = T0 + timedelta(seconds=1)

    first = await inbox.claim_due(now, 3, LEASE)

    assert [e.id for e in first] == ids[:3]
    assert len(await inbox.claim_due(now, 100, LEASE)) == 37  # the other 37 were not leased


async def test_claim_due_takes_only_pending_events_that_are_due_oldest_first(
    inbox: SqlWebhookInbox,
) -> None:
    await inbox.store(_event("evt_late", next_attempt_at=T0 + timedelta(seconds=2)))
    await inbox.store(_event("evt_early"))
    await inbox.store(_event("evt_future", next_attempt_at=T0 + timedelta(hours=1)))
    await inbox.store(_event("evt_dead", status=InboxStatus.DEAD))
    await inbox.store(_event("evt_ignored", status=InboxStatus.IGNORED))
    await inbox.store(_event("evt_no_time", next_attempt_at=None, received_at=T0 - timedelta(seconds=1)))
    now = T0 + timedelta(seconds=5)

    first = await inbox.claim_due(now, 2, LEASE)
    rest = await inbox.claim_due(now, 10, LEASE)

    assert [e.id for e in first] == ["evt_no_time", "evt_early"]
    assert [e.id for e in rest] == ["evt_late"]
    assert await inbox.claim_due(now, 10, LEASE) == []


# ---- finish / list / redrive ---------------------------------------------------------------------


async def test_finish_records_a_failed_attempt_and_the_event_is_due_again_after_its_backoff(
    inbox: SqlWebhookInbox,
) -> None:
    await inbox.store(_event("evt_retry"))
    claimed = await inbox.claim("evt_retry", T0, LEASE)
    assert claimed is not None
    retry_at = T0 + timedelta(seconds=5)

    assert await inbox.finish(
        "evt_retry",
        InboxStatus.PENDING,
        T0,
        lease_token=claimed.lease_token,
        attempts=1,
        next_attempt_at=retry_at,
        last_error="boom",
    )

    got = await inbox.get("evt_retry")
    assert got is not None
    assert (got.status, got.attempts, got.next_attempt_at, got.last_error, got.processed_at) == (
        InboxStatus.PENDING,
        1,
        retry_at,
        "boom",
        None,
    )
    assert await inbox.claim_due(T0 + timedelta(seconds=4), 10, LEASE) == []  # the lease is gone ...
    due = await inbox.claim_due(retry_at, 10, LEASE)  # ... and the backoff decides
    assert [e.id for e in due] == ["evt_retry"]
    assert due[0].attempts == 1


async def test_finish_as_processed_stamps_the_time_and_order_and_a_later_failure_keeps_the_order(
    inbox: SqlWebhookInbox,
) -> None:
    await inbox.store(_event("evt_ok"))
    done_at = T0 + timedelta(seconds=3)

    await inbox.finish(
        "evt_ok", InboxStatus.PROCESSED, done_at, lease_token=None, attempts=1, order_id="ord_1"
    )
    got = await inbox.get("evt_ok")
    assert got is not None
    assert (got.status, got.processed_at, got.order_id, got.attempts) == (
        InboxStatus.PROCESSED,
        done_at,
        "ord_1",
        1,
    )

    await inbox.finish("evt_ok", InboxStatus.DEAD, done_at, lease_token=None, attempts=2, last_error="x")
    got = await inbox.get("evt_ok")
    assert got is not None
    assert (got.status, got.processed_at, got.order_id) == (InboxStatus.DEAD, None, "ord_1")

    await inbox.finish(
        "evt_ok", InboxStatus.IGNORED, done_at, lease_token=None, attempts=3, last_error="no order"
    )
    got = await inbox.get("evt_ok")
    assert got is not None and (got.status, got.processed_at) == (InboxStatus.IGNORED, done_at)


async def test_list_pages_newest_first_without_gaps_or_repeats_and_filters_by_status(
    inbox: SqlWebhookInbox,
) -> None:
    # Two events share each timestamp, so the id breaks ties.
    for i in range(9):
        status = InboxStatus.DEAD if i % 3 == 0 else InboxStatus.PENDING
        await inbox.store(_event(f"evt_{i}", received_at=T0 + timedelta(seconds=i // 2), status=status))
    expected = [e.id for e in sorted((await _all(inbox)), key=lambda e: (e.received_at, e.id), reverse=True)]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = await inbox.list(None, 2, cursor)
        seen.extend(e.id for e in page)
        pages += 1
        if cursor is None:
            break
    assert seen == expected
    assert expected[:3] == ["evt_8", "evt_7", "evt_6"]
    assert pages == 5

    dead, next_cursor = await inbox.list(InboxStatus.DEAD, 10, None)
    assert [e.id for e in dead] == ["evt_6", "evt_3", "evt_0"]
    assert next_cursor is None


async def _all(inbox: SqlWebhookInbox) -> list[InboxEvent]:
    events, _ = await inbox.list(None, 1000, None)
    return events


@pytest.mark.parametrize(
    "cursor", ["not-a-cursor", "W10", "eyJ4IjoxfQ", "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwiYSJd"]
)
async def test_a_cursor_that_is_not_ours_is_a_validation_error(inbox: SqlWebhookInbox, cursor: str) -> None:
    with pytest.raises(ValidationError):
        await inbox.list(None, 10, cursor)


async def test_redrive_makes_a_dead_event_pending_due_now_with_attempts_reset(inbox: SqlWebhookInbox) -> None:
    await inbox.store(_event("evt_dead"))
    claimed = await inbox.claim("evt_dead", T0, LEASE)
    assert claimed is not None
    assert await inbox.finish(
        "evt_dead",
        InboxStatus.DEAD,
        T0,
        lease_token=claimed.lease_token,
        attempts=8,
        last_error="gave up",
        order_id="ord_9",
    )
    later = T0 + timedelta(days=1)

    event = await inbox.redrive("evt_dead", later)

    assert event is not None
    assert (event.status, event.attempts, event.next_attempt_at, event.last_error, event.order_id) == (
        InboxStatus.PENDING,
        0,
        later,
        None,
        "ord_9",
    )
    assert [e.id for e in await inbox.claim_due(later, 10, LEASE)] == ["evt_dead"]
    assert await inbox.redrive("evt_unknown", later) is None


async def test_redrive_clears_a_live_lease_and_leaves_a_processed_event_as_it_is(
    inbox: SqlWebhookInbox,
) -> None:
    await inbox.store(_event("evt_leased"))
    await inbox.store(_event("evt_processed"))
    assert await inbox.claim("evt_leased", T0, LEASE) is not None
    await inbox.finish(
        "evt_processed", InboxStatus.PROCESSED, T0, lease_token=None, attempts=1, order_id="ord_1"
    )

    # A worker holds it right now: re-driving must not start a second, concurrent apply.
    assert await inbox.redrive("evt_leased", T0) is not None
    assert await inbox.claim("evt_leased", T0 + timedelta(seconds=1), LEASE) is None
    assert await inbox.redrive("evt_leased", T0 + timedelta(seconds=LEASE + 1)) is not None
    assert await inbox.claim("evt_leased", T0 + timedelta(seconds=LEASE + 2), LEASE) is not None

    processed = await inbox.redrive("evt_processed", T0)
    assert processed is not None
    assert (processed.status, processed.attempts, processed.processed_at) == (InboxStatus.PROCESSED, 1, T0)


# ---- failures and the migration --------------------------------------------------------------------


async def test_every_inbox_call_on_a_dead_server_is_ledger_unavailable_quickly() -> None:
    engine = create_engine("postgresql://postgres@127.0.0.1:1/postgres", connect_timeout_s=2.0)
    inbox = SqlWebhookInbox(engine)
    started = time.monotonic()
    try:
        calls = [
            inbox.store(_event("evt_1")),
            inbox.get("evt_1"),
            inbox.claim("evt_1", T0, LEASE),
            inbox.claim_due(T0, 10, LEASE),
            inbox.finish("evt_1", InboxStatus.PROCESSED, T0, lease_token=None, attempts=1),
            inbox.list(None, 10, None),
            inbox.redrive("evt_1", T0),
        ]
        for call in calls:
            with pytest.raises(LedgerUnavailable):
                await call
    finally:
        await inbox.close()
        await engine.dispose()
    assert time.monotonic() - started < 10.0


async def _inbox_schema(url: str) -> tuple[set[str], set[str]]:
    """(tables, indexes of webhook_events) at ``url``."""

    def read(conn: Connection) -> tuple[set[str], set[str]]:
        insp = inspect(conn)
        tables = set(insp.get_table_names()) - {"alembic_version"}
        indexes = (
            {i["name"] for i in insp.get_indexes("webhook_events")} if "webhook_events" in tables else set()
        )
        return tables, {str(name) for name in indexes}

    return await run_on_connection(url, read)


async def test_migration_0002_adds_and_removes_only_the_inbox(empty_database_url: str) -> None:
    url = empty_database_url
    await upgrade(url, "0001_initial")
    ledger_tables, _ = await _inbox_schema(url)
    assert "webhook_events" not in ledger_tables

    await upgrade(url, "0002_webhook_inbox")
    tables, indexes = await _inbox_schema(url)
    assert tables == ledger_tables | {"webhook_events"}
    assert indexes == {"ix_webhook_events_status_next_attempt", "ix_webhook_events_received"}
    engine = create_engine(url)
    try:
        assert await SqlWebhookInbox(engine).store(_event("evt_m"))
    finally:
        await engine.dispose()

    await downgrade(url, "0001_initial")  # with a row in the table
    assert await _inbox_schema(url) == (ledger_tables, set())

    await upgrade(url)
    assert await _inbox_schema(url) == (tables, indexes)


async def test_a_worker_whose_lease_lapsed_cannot_overwrite_the_new_holders_outcome(
    inbox: SqlWebhookInbox,
) -> None:
    await inbox.store(_event("evt_fenced"))
    slow = await inbox.claim("evt_fenced", T0, LEASE)
    assert slow is not None and slow.lease_token
    later = T0 + timedelta(seconds=LEASE + 1)
    fast = await inbox.claim("evt_fenced", later, LEASE)  # the slow worker's lease lapsed
    assert fast is not None and fast.lease_token != slow.lease_token
    assert await inbox.finish(
        "evt_fenced", InboxStatus.PROCESSED, later, lease_token=fast.lease_token, attempts=1, order_id="ord_1"
    )
    # The slow worker finally fails and tries to record it: refused, the processed outcome stands.
    assert not await inbox.finish(
        "evt_fenced", InboxStatus.DEAD, later, lease_token=slow.lease_token, attempts=8, last_error="late"
    )
    got = await inbox.get("evt_fenced")
    assert got is not None
    assert (got.status, got.order_id, got.last_error, got.lease_token) == (
        InboxStatus.PROCESSED,
        "ord_1",
        None,
        None,
    )
