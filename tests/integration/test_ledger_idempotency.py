"""The SQL idempotency store: Stripe's semantics, race-safe and fenced on both engines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, select

from adapters.persistence.idempotency import SqlIdempotencyStore
from adapters.persistence.tables import idempotency_keys
from application.idempotency import IdempotencyService
from domain.errors import DomainError
from domain.idempotency import IdempotencyOutcome, IdempotencyState, StoredResponse
from tests.fakes import FakeClock

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SCOPE = "user_1:POST:/api/payments/orders"
LOCK_S = 60.0
RESPONSE = StoredResponse(201, b'{"success":true,"order":{"id":"ord_1"}}\x00\xff', "application/json")


def _token(outcome: IdempotencyOutcome) -> str:
    assert outcome.state is IdempotencyState.STARTED
    assert outcome.token is not None
    return outcome.token


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
    claim = await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    assert await idempotency_store.complete(SCOPE, "k1", _token(claim), RESPONSE, NOW + timedelta(hours=24))

    outcome = await idempotency_store.begin(SCOPE, "k1", "fp", NOW + timedelta(minutes=5), LOCK_S)

    assert outcome.state is IdempotencyState.REPLAY
    assert outcome.response == RESPONSE


async def test_same_key_with_another_request_is_a_mismatch(idempotency_store: SqlIdempotencyStore) -> None:
    claim = await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    assert (
        await idempotency_store.begin(SCOPE, "k1", "other", NOW, LOCK_S)
    ).state is IdempotencyState.MISMATCH
    await idempotency_store.complete(SCOPE, "k1", _token(claim), RESPONSE, NOW + timedelta(hours=24))
    assert (
        await idempotency_store.begin(SCOPE, "k1", "other", NOW, LOCK_S)
    ).state is IdempotencyState.MISMATCH


async def test_keys_are_scoped(idempotency_store: SqlIdempotencyStore) -> None:
    await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    other_user = await idempotency_store.begin("user_2:POST:/api/payments/orders", "k1", "fp", NOW, LOCK_S)
    assert other_user.state is IdempotencyState.STARTED


async def test_released_key_can_be_claimed_again(idempotency_store: SqlIdempotencyStore) -> None:
    claim = await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    assert await idempotency_store.release(SCOPE, "k1", _token(claim))
    assert (await idempotency_store.begin(SCOPE, "k1", "fp2", NOW, LOCK_S)).state is IdempotencyState.STARTED


async def test_release_does_not_forget_a_completed_response(idempotency_store: SqlIdempotencyStore) -> None:
    claim = await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    await idempotency_store.complete(SCOPE, "k1", _token(claim), RESPONSE, NOW + timedelta(hours=24))
    assert not await idempotency_store.release(SCOPE, "k1", _token(claim))
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
    old = await idempotency_store.begin(SCOPE, "old", "fp", NOW, LOCK_S)
    await idempotency_store.complete(SCOPE, "old", _token(old), RESPONSE, NOW + timedelta(hours=24))
    fresh = await idempotency_store.begin(SCOPE, "fresh", "fp", NOW, LOCK_S)
    await idempotency_store.complete(SCOPE, "fresh", _token(fresh), RESPONSE, NOW + timedelta(hours=48))
    after = NOW + timedelta(hours=25)

    reclaimed = await idempotency_store.begin(SCOPE, "old", "new-fp", after, LOCK_S)
    assert reclaimed.state is IdempotencyState.STARTED
    await idempotency_store.complete(SCOPE, "old", _token(reclaimed), RESPONSE, NOW + timedelta(hours=26))
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


# ---- fencing tokens: a slow request whose stale claim a retry took over writes nothing -----------------

LATE = StoredResponse(201, b'{"success":true,"order":{"id":"ord_slow"}}', "application/json")
TAKEOVER_AT = NOW + timedelta(seconds=LOCK_S + 1)


async def _row(store: SqlIdempotencyStore, key: str) -> Row[Any] | None:
    async with store._engine.connect() as conn:
        where = (idempotency_keys.c.scope == SCOPE) & (idempotency_keys.c.key == key)
        return (await conn.execute(select(idempotency_keys).where(where))).first()


async def _slow_request_and_its_retry(store: SqlIdempotencyStore) -> tuple[str, str]:
    """The first request's claim goes stale while it still runs; a retry takes it over. Their tokens."""
    slow = await store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)
    retry = await store.begin(SCOPE, "k1", "fp", TAKEOVER_AT, LOCK_S)
    return _token(slow), _token(retry)


async def test_every_claim_gets_a_fresh_token_that_the_row_carries(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    slow, retry = await _slow_request_and_its_retry(idempotency_store)
    other = _token(await idempotency_store.begin(SCOPE, "k2", "fp", NOW, LOCK_S))
    assert len({slow, retry, other}) == 3
    row = await _row(idempotency_store, "k1")
    assert row is not None
    assert row.claim_token == retry


async def test_a_late_complete_after_a_takeover_does_not_overwrite_the_retrys_stored_response(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    slow, retry = await _slow_request_and_its_retry(idempotency_store)
    assert await idempotency_store.complete(SCOPE, "k1", retry, RESPONSE, NOW + timedelta(hours=24))

    assert not await idempotency_store.complete(SCOPE, "k1", slow, LATE, NOW + timedelta(hours=48))

    replay = await idempotency_store.begin(SCOPE, "k1", "fp", TAKEOVER_AT, LOCK_S)
    assert replay.state is IdempotencyState.REPLAY
    assert replay.response == RESPONSE
    row = await _row(idempotency_store, "k1")
    assert row is not None
    assert row.expires_at == NOW + timedelta(hours=24)


async def test_a_late_complete_while_the_retry_still_runs_stores_nothing_and_the_retrys_complete_works(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    slow, retry = await _slow_request_and_its_retry(idempotency_store)

    assert not await idempotency_store.complete(SCOPE, "k1", slow, LATE, NOW + timedelta(hours=24))
    still_running = await idempotency_store.begin(SCOPE, "k1", "fp", TAKEOVER_AT, LOCK_S)
    assert still_running.state is IdempotencyState.IN_PROGRESS

    assert await idempotency_store.complete(SCOPE, "k1", retry, RESPONSE, NOW + timedelta(hours=24))
    replay = await idempotency_store.begin(SCOPE, "k1", "fp", TAKEOVER_AT, LOCK_S)
    assert replay.state is IdempotencyState.REPLAY
    assert replay.response == RESPONSE


async def test_a_late_release_after_a_takeover_does_not_delete_the_retrys_claim(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    slow, retry = await _slow_request_and_its_retry(idempotency_store)

    assert not await idempotency_store.release(SCOPE, "k1", slow)

    third = await idempotency_store.begin(SCOPE, "k1", "fp", TAKEOVER_AT, LOCK_S)
    assert third.state is IdempotencyState.IN_PROGRESS  # the retry still holds the key
    row = await _row(idempotency_store, "k1")
    assert row is not None
    assert row.claim_token == retry
    assert await idempotency_store.complete(SCOPE, "k1", retry, RESPONSE, NOW + timedelta(hours=24))
    replay = await idempotency_store.begin(SCOPE, "k1", "fp", TAKEOVER_AT, LOCK_S)
    assert replay.response == RESPONSE


async def test_a_late_release_after_the_retry_completed_keeps_its_response(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    slow, retry = await _slow_request_and_its_retry(idempotency_store)
    assert await idempotency_store.complete(SCOPE, "k1", retry, RESPONSE, NOW + timedelta(hours=24))

    assert not await idempotency_store.release(SCOPE, "k1", slow)

    replay = await idempotency_store.begin(SCOPE, "k1", "fp", TAKEOVER_AT, LOCK_S)
    assert replay.response == RESPONSE


async def test_a_claim_completes_once_and_a_second_complete_does_not_overwrite(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    token = _token(await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S))
    assert await idempotency_store.complete(SCOPE, "k1", token, RESPONSE, NOW + timedelta(hours=24))
    assert not await idempotency_store.complete(SCOPE, "k1", token, LATE, NOW + timedelta(hours=24))
    row = await _row(idempotency_store, "k1")
    assert row is not None
    assert row.claim_token is None  # a completed key is nobody's claim
    assert (await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S)).response == RESPONSE


async def test_complete_and_release_with_a_token_of_another_key_write_nothing(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    token_1 = _token(await idempotency_store.begin(SCOPE, "k1", "fp", NOW, LOCK_S))
    _token(await idempotency_store.begin(SCOPE, "k2", "fp", NOW, LOCK_S))
    assert not await idempotency_store.complete(SCOPE, "k2", token_1, RESPONSE, NOW + timedelta(hours=24))
    assert not await idempotency_store.release(SCOPE, "k2", token_1)
    assert not await idempotency_store.release("user_2:POST:/api/payments/orders", "k1", token_1)
    assert (
        await idempotency_store.begin(SCOPE, "k2", "fp", NOW, LOCK_S)
    ).state is IdempotencyState.IN_PROGRESS


async def test_only_the_winner_of_concurrent_takeovers_can_complete(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    first = _token(await idempotency_store.begin(SCOPE, "stale", "fp", NOW, LOCK_S))
    outcomes = await asyncio.gather(
        *(idempotency_store.begin(SCOPE, "stale", "fp", TAKEOVER_AT, LOCK_S) for _ in range(10))
    )
    [winner] = [_token(o) for o in outcomes if o.state is IdempotencyState.STARTED]
    assert all(o.token is None for o in outcomes if o.state is not IdempotencyState.STARTED)
    assert not await idempotency_store.complete(SCOPE, "stale", first, LATE, NOW + timedelta(hours=24))
    assert await idempotency_store.complete(SCOPE, "stale", winner, RESPONSE, NOW + timedelta(hours=24))
    replay = await idempotency_store.begin(SCOPE, "stale", "fp", TAKEOVER_AT, LOCK_S)
    assert replay.response == RESPONSE


async def test_through_the_service_a_slow_request_does_not_overwrite_its_retrys_stored_response(
    idempotency_store: SqlIdempotencyStore,
) -> None:
    clock = FakeClock(NOW)
    service = IdempotencyService(idempotency_store, clock, lock_timeout_seconds=LOCK_S)
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow_handler() -> StoredResponse:
        started.set()
        await finish.wait()
        return LATE

    async def retry_handler() -> StoredResponse:
        return RESPONSE

    def render(exc: DomainError) -> StoredResponse:
        raise AssertionError(exc)

    slow = asyncio.create_task(service.run(SCOPE, "k1", "fp", slow_handler, render))
    await started.wait()
    clock.advance(LOCK_S + 1)
    retried = await service.run(SCOPE, "k1", "fp", retry_handler, render)
    finish.set()
    late = await slow

    assert (retried.response, retried.replayed, retried.stored) == (RESPONSE, False, True)
    assert (late.response, late.replayed, late.stored) == (LATE, False, False)
    replay = await service.run(SCOPE, "k1", "fp", retry_handler, render)
    assert (replay.response, replay.replayed) == (RESPONSE, True)
