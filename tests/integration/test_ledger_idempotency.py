"""The SQL idempotency store: Stripe's semantics, race-safe on both engines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from adapters.persistence.idempotency import SqlIdempotencyStore
from adapters.persistence.tables import idempotency_keys
from domain.idempotency import IdempotencyState, StoredResponse

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SCOPE = "user_1:POST:/api/payments/orders"
LOCK_S = 60.0
RESPONSE = StoredResponse(201, b'{"success":true,"order":{"id":"ord_1"}}\x00\xff', "application/json")


async def test_first_begin_starts_and_a_repeat_while_running_is_in_progress(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    first = await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    again = await idempotency_store.begin(SCOPE, "k1", "fp", NOW + timedelta(seconds=1), LOCK_S)
    assert first.state is IdempotencyState.STARTED
    assert again.state is IdempotencyState.IN_PROGRESS


async def test_completed_key_replays_status_and_exact_body_bytes(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    await idempotency_store.complete(SCOPE, "k1", RESPONSE, NOW + timedelta(hours=24))

    outcome = await idempotency_store.begin(SCOPE, "k1", "fp", NOW + timedelta(minutes=5), LOCK_S)

    assert outcome.state is IdempotencyState.REPLAY
    assert outcome.response == RESPONSE


async def test_same_key_with_another_request_is_a_mismatch(idempotency_store: SqlIdempotencyStore) -> None:
    await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    assert (
        await idempotency_store.begin(SCOPE, "k1", "other", NOW, LOCK_S)
    ).state is IdempotencyState.MISMATCH
    await idempotency_store.complete(SCOPE, "k1", RESPONSE, NOW + timedelta(hours=24))
    assert (
        await idempotency_store.begin(SCOPE, "k1", "other", NOW, LOCK_S)
    ).state is IdempotencyState.MISMATCH


async def test_keys_are_scoped(idempotency_store: SqlIdempotencyStore) -> None:
    await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    other_user = await idempotency_store.begin("user_2:POST:/api/payments/orders", "k1", "fp", NOW, LOCK_S)
    assert other_user.state is IdempotencyState.STARTED


async def test_released_key_can_be_claimed_again(idempotency_store: SqlIdempotencyStore) -> None:
    await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    await idempotency_store.release(SCOPE, "k1")
    assert (await idempotency_store.begin(SCOPE, "k1", "fp2", NOW, LOCK_S)).state is IdempotencyState.STARTED


async def test_release_does_not_forget_a_completed_response(idempotency_store: SqlIdempotencyStore) -> None:
    await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    await idempotency_store.complete(SCOPE, "k1", RESPONSE, NOW + timedelta(hours=24))
    await idempotency_store.release(SCOPE, "k1")
    assert (await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)).state is IdempotencyState.REPLAY


async def test_a_claim_older_than_the_lock_timeout_is_taken_over_once(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    still_locked = await idempotency_store.begin(SCOPE, "k1", "fp", NOW + timedelta(seconds=59), LOCK_S)
    later = NOW + timedelta(seconds=61)
    taken = await idempotency_store.begin(SCOPE, "k1", "fp", later, LOCK_S)
    after_takeover = await idempotency_store.begin(SCOPE, "k1", "fp", later, LOCK_S)
    assert still_locked.state is IdempotencyState.IN_PROGRESS
    assert taken.state is IdempotencyState.STARTED
    assert after_takeover.state is IdempotencyState.IN_PROGRESS


async def test_an_expired_response_counts_as_absent_and_is_purged(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    await idempotency_store.begin(SCOPE, "old", "fp", NOW, LOCK_S)
    await idempotency_store.complete(SCOPE, "old", RESPONSE, NOW + timedelta(hours=24))
    await idempotency_store.begin(SCOPE, "fresh", "fp", NOW, LOCK_S)
    await idempotency_store.complete(SCOPE, "fresh", RESPONSE, NOW + timedelta(hours=48))
    after = NOW + timedelta(hours=25)

    assert (
        await idempotency_store.begin(SCOPE, "old", "new-fp", after, LOCK_S)
    ).state is IdempotencyState.STARTED
    await idempotency_store.complete(SCOPE, "old", RESPONSE, NOW + timedelta(hours=26))
    assert await idempotency_store.purge_expired(NOW + timedelta(hours=30)) == 1  # "old", not "fresh"
    assert (
        await idempotency_store.begin(SCOPE, "fresh", "fp", after, LOCK_S)
    ).state is IdempotencyState.REPLAY
    assert await idempotency_store.purge_expired(NOW) == 0


async def test_concurrent_begins_on_one_key_start_exactly_one_request(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    outcomes = await asyncio.gather(
        *(idempotency_store.begin(SCOPE, "race", "fp", NOW, LOCK_S) for _ in range(20))
    )
    states = [o.state for o in outcomes]
    assert states.count(IdempotencyState.STARTED) == 1
    assert states.count(IdempotencyState.IN_PROGRESS) == 19


async def test_concurrent_takeovers_of_a_stale_claim_start_exactly_one_request(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    await idempotency_store.begin(SCOPE, "stale", "fp", NOW, LOCK_S)
    later = NOW + timedelta(minutes=5)
    outcomes = await asyncio.gather(
        *(idempotency_store.begin(SCOPE, "stale", "fp", later, LOCK_S) for _ in range(10))
    )
    assert [o.state for o in outcomes].count(IdempotencyState.STARTED) == 1
    async with idempotency_store._engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(idempotency_keys))).scalar_one()
    assert rows == 1
