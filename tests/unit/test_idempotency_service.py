"""IdempotencyService (Stripe's semantics) over the in-memory store."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

import pytest

from application.idempotency import IdempotencyService, IdempotentResult
from domain.errors import (
    DomainError,
    GatewayRejected,
    GatewayUnavailable,
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    InvalidState,
    LedgerUnavailable,
    ValidationError,
)
from domain.idempotency import (
    TTL_SECONDS,
    IdempotencyState,
    StoredResponse,
    fingerprint,
    validate_key,
)
from tests.fakes import FakeClock, InMemoryIdempotencyStore

SCOPE = "user_1:POST:/api/payments/orders"
FP = fingerprint("POST", "/api/payments/orders", b'{"amount": 50000, "currency": "INR"}')
OK = StoredResponse(201, b'{"success": true, "order": {"id": "ord_1"}}')


def render(exc: DomainError) -> StoredResponse:
    return StoredResponse(
        422, json.dumps({"code": exc.code, "detail": exc.detail}).encode(), "application/problem+json"
    )


class Handler:
    """Counts its runs; answers ``response`` or raises the next queued error."""

    def __init__(self, response: StoredResponse = OK) -> None:
        self.response = response
        self.errors: list[BaseException] = []
        self.runs = 0

    async def __call__(self) -> StoredResponse:
        self.runs += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.response


@pytest.fixture
def store() -> InMemoryIdempotencyStore:
    return InMemoryIdempotencyStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(store: InMemoryIdempotencyStore, clock: FakeClock) -> IdempotencyService:
    return IdempotencyService(store, clock, lock_timeout_seconds=60.0)


async def test_first_run_stores_and_returns(
    service: IdempotencyService, store: InMemoryIdempotencyStore, clock: FakeClock
) -> None:
    handler = Handler()
    result = await service.run(SCOPE, "key-1", FP, handler, render)
    assert result.response == OK
    assert result.replayed is False
    assert handler.runs == 1
    rec = store.records[(SCOPE, "key-1")]
    assert rec.response == OK
    assert rec.expires_at is not None
    assert (rec.expires_at - clock.now()).total_seconds() == TTL_SECONDS


async def test_replay_returns_the_same_response_without_running_the_handler(
    service: IdempotencyService, clock: FakeClock
) -> None:
    first = Handler()
    await service.run(SCOPE, "key-1", FP, first, render)
    clock.advance(3600)
    second = Handler(StoredResponse(201, b"something else"))
    result = await service.run(SCOPE, "key-1", FP, second, render)
    assert result.replayed is True
    assert result.response == OK
    assert second.runs == 0


async def test_different_fingerprint_is_key_reused(service: IdempotencyService) -> None:
    await service.run(SCOPE, "key-1", FP, Handler(), render)
    other = Handler()
    other_fp = fingerprint("POST", "/api/payments/orders", b'{"amount": 60000, "currency": "INR"}')
    with pytest.raises(IdempotencyKeyReused):
        await service.run(SCOPE, "key-1", other_fp, other, render)
    assert other.runs == 0


async def test_keys_are_scoped(service: IdempotencyService) -> None:
    await service.run(SCOPE, "key-1", FP, Handler(), render)
    other_user = Handler()
    result = await service.run("user_2:POST:/api/payments/orders", "key-1", FP, other_user, render)
    assert result.replayed is False
    assert other_user.runs == 1


async def test_in_progress_is_refused(service: IdempotencyService) -> None:
    started = asyncio.Event()
    finish = asyncio.Event()

    async def slow() -> StoredResponse:
        started.set()
        await finish.wait()
        return OK

    first = asyncio.create_task(service.run(SCOPE, "key-1", FP, slow, render))
    await started.wait()
    second = Handler()
    with pytest.raises(IdempotencyRequestInProgress):
        await service.run(SCOPE, "key-1", FP, second, render)
    assert second.runs == 0
    finish.set()
    assert (await first).replayed is False
    assert (await service.run(SCOPE, "key-1", FP, second, render)).replayed is True


@pytest.mark.parametrize(
    "error",
    [
        ValidationError("amount must be an integer."),
        GatewayUnavailable(),
        LedgerUnavailable(),
    ],
)
async def test_validation_and_unavailable_release_the_key(
    service: IdempotencyService, store: InMemoryIdempotencyStore, error: DomainError
) -> None:
    handler = Handler()
    handler.errors.append(error)
    with pytest.raises(type(error)):
        await service.run(SCOPE, "key-1", FP, handler, render)
    assert (SCOPE, "key-1") not in store.records
    assert "release" in store.calls
    result = await service.run(SCOPE, "key-1", FP, handler, render)
    assert handler.runs == 2  # the retry ran again
    assert result.replayed is False
    assert result.response == OK


@pytest.mark.parametrize("error", [RuntimeError("boom"), asyncio.CancelledError()])
async def test_unexpected_errors_release_the_key(
    service: IdempotencyService, store: InMemoryIdempotencyStore, error: BaseException
) -> None:
    handler = Handler()
    handler.errors.append(error)
    with pytest.raises(type(error)):
        await service.run(SCOPE, "key-1", FP, handler, render)
    assert (SCOPE, "key-1") not in store.records
    assert (await service.run(SCOPE, "key-1", FP, handler, render)).replayed is False
    assert handler.runs == 2


@pytest.mark.parametrize(
    "error", [InvalidState("the order is not paid."), GatewayRejected("The amount is invalid.")]
)
async def test_other_domain_errors_are_stored_and_replayed(
    service: IdempotencyService, store: InMemoryIdempotencyStore, error: DomainError
) -> None:
    handler = Handler()
    handler.errors.append(error)
    with pytest.raises(type(error)):
        await service.run(SCOPE, "key-1", FP, handler, render)
    stored = store.records[(SCOPE, "key-1")].response
    assert stored == render(error)
    result = await service.run(SCOPE, "key-1", FP, handler, render)
    assert result.replayed is True
    assert result.response == render(error)
    assert json.loads(result.response.body)["code"] == error.code
    assert handler.runs == 1


@pytest.mark.parametrize("key", ["", "a b", "key/1", "ключ", "k" * 256, "key\n", "key;drop"])
async def test_invalid_key_format_refused(
    service: IdempotencyService, store: InMemoryIdempotencyStore, key: str
) -> None:
    handler = Handler()
    with pytest.raises(ValidationError):
        await service.run(SCOPE, key, FP, handler, render)
    assert handler.runs == 0
    assert store.calls == []  # refused before the store is asked


@pytest.mark.parametrize(
    "key", ["a", "k" * 255, "order-2026:01.retry_1", "550e8400-e29b-41d4-a716-446655440000"]
)
def test_valid_key_formats(key: str) -> None:
    assert validate_key(key) == key


async def test_stale_in_progress_claim_can_be_taken_over(
    service: IdempotencyService, store: InMemoryIdempotencyStore, clock: FakeClock
) -> None:
    # A request claimed the key and died without completing or releasing it.
    outcome = await store.begin(SCOPE, "key-1", FP, clock.now(), 60.0)
    assert outcome.state is IdempotencyState.STARTED
    handler = Handler()
    clock.advance(30)
    with pytest.raises(IdempotencyRequestInProgress):
        await service.run(SCOPE, "key-1", FP, handler, render)
    clock.advance(31)  # now older than the 60 s lock timeout
    result = await service.run(SCOPE, "key-1", FP, handler, render)
    assert result.replayed is False
    assert handler.runs == 1
    assert (await service.run(SCOPE, "key-1", FP, handler, render)).replayed is True


async def test_completed_responses_expire_after_the_ttl(
    service: IdempotencyService, store: InMemoryIdempotencyStore, clock: FakeClock
) -> None:
    handler = Handler()
    await service.run(SCOPE, "key-1", FP, handler, render)
    clock.advance(TTL_SECONDS - 1)
    assert (await service.run(SCOPE, "key-1", FP, handler, render)).replayed is True
    assert await service.purge_expired() == 0
    clock.advance(2)
    assert await service.purge_expired() == 1
    assert (await service.run(SCOPE, "key-1", FP, handler, render)).replayed is False
    assert handler.runs == 2


def test_fingerprint_distinguishes_method_path_and_body() -> None:
    base = fingerprint("POST", "/a", b"{}")
    assert base == fingerprint("post", "/a", b"{}")
    assert base != fingerprint("PUT", "/a", b"{}")
    assert base != fingerprint("POST", "/b", b"{}")
    assert base != fingerprint("POST", "/a", b"{ }")
    # the separator keeps path and body apart
    assert fingerprint("POST", "/a", b"b") != fingerprint("POST", "/ab", b"")


# ---- fencing: a slow request whose stale claim a retry took over stores and releases nothing -----------

RETRY_OK = StoredResponse(201, b'{"success": true, "order": {"id": "ord_retry"}}')
SLOW_OK = StoredResponse(201, b'{"success": true, "order": {"id": "ord_slow"}}')


class Gated:
    """A handler that signals when it runs and finishes (answers or raises) only when released."""

    def __init__(self, response: StoredResponse, error: BaseException | None = None) -> None:
        self.response = response
        self.error = error
        self.started = asyncio.Event()
        self.finish = asyncio.Event()

    async def __call__(self) -> StoredResponse:
        self.started.set()
        await self.finish.wait()
        if self.error is not None:
            raise self.error
        return self.response


async def _start(service: IdempotencyService, handler: Gated) -> asyncio.Task[IdempotentResult]:
    task = asyncio.create_task(service.run(SCOPE, "key-1", FP, handler, render))
    await handler.started.wait()
    return task


async def test_a_slow_requests_late_complete_does_not_overwrite_the_retrys_stored_response(
    service: IdempotencyService,
    store: InMemoryIdempotencyStore,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow = Gated(SLOW_OK)
    slow_run = await _start(service, slow)
    clock.advance(61)  # the slow request's claim is now stale: a retry takes it over
    retried = await service.run(SCOPE, "key-1", FP, Handler(RETRY_OK), render)
    assert (retried.response, retried.replayed, retried.stored) == (RETRY_OK, False, True)

    slow.finish.set()
    with caplog.at_level(logging.WARNING, logger="application.idempotency"):
        late = await slow_run

    assert late.response == SLOW_OK  # the slow caller still gets its own answer ...
    assert (late.replayed, late.stored) == (False, False)  # ... but it is not stored
    assert "NOT stored" in caplog.text
    assert store.records[(SCOPE, "key-1")].response == RETRY_OK
    replay = await service.run(SCOPE, "key-1", FP, Handler(), render)
    assert (replay.response, replay.replayed) == (RETRY_OK, True)


async def test_a_late_complete_while_the_retry_runs_stores_nothing_and_the_retrys_own_complete_works(
    service: IdempotencyService, store: InMemoryIdempotencyStore, clock: FakeClock
) -> None:
    slow, retry = Gated(SLOW_OK), Gated(RETRY_OK)
    slow_run = await _start(service, slow)
    clock.advance(61)
    retry_run = await _start(service, retry)

    slow.finish.set()
    late = await slow_run
    assert (late.response, late.stored) == (SLOW_OK, False)
    assert store.records[(SCOPE, "key-1")].response is None  # the retry's claim, untouched
    with pytest.raises(IdempotencyRequestInProgress):
        await service.run(SCOPE, "key-1", FP, Handler(), render)

    retry.finish.set()
    retried = await retry_run
    assert (retried.response, retried.stored) == (RETRY_OK, True)
    replay = await service.run(SCOPE, "key-1", FP, Handler(), render)
    assert (replay.response, replay.replayed) == (RETRY_OK, True)


@pytest.mark.parametrize("error", [GatewayUnavailable(), ValidationError("bad"), RuntimeError("boom")])
async def test_a_slow_requests_late_release_does_not_delete_the_retrys_claim(
    service: IdempotencyService, store: InMemoryIdempotencyStore, clock: FakeClock, error: BaseException
) -> None:
    slow, retry = Gated(SLOW_OK, error), Gated(RETRY_OK)
    slow_run = await _start(service, slow)
    clock.advance(61)
    retry_run = await _start(service, retry)

    slow.finish.set()
    with pytest.raises(type(error)):
        await slow_run
    assert (SCOPE, "key-1") in store.records  # the retry's claim survived the late release
    third = Handler()
    with pytest.raises(IdempotencyRequestInProgress):
        await service.run(SCOPE, "key-1", FP, third, render)
    assert third.runs == 0  # no third concurrent run of the request

    retry.finish.set()
    assert (await retry_run).stored is True
    replay = await service.run(SCOPE, "key-1", FP, third, render)
    assert (replay.response, replay.replayed) == (RETRY_OK, True)


async def test_a_slow_requests_late_final_refusal_does_not_overwrite_the_retrys_stored_response(
    service: IdempotencyService, store: InMemoryIdempotencyStore, clock: FakeClock
) -> None:
    slow = Gated(SLOW_OK, InvalidState("the order is not paid."))
    slow_run = await _start(service, slow)
    clock.advance(61)
    await service.run(SCOPE, "key-1", FP, Handler(RETRY_OK), render)

    slow.finish.set()
    with pytest.raises(InvalidState):  # the slow caller still gets its own refusal
        await slow_run
    assert store.records[(SCOPE, "key-1")].response == RETRY_OK


async def test_the_store_fences_complete_and_release_by_token(
    store: InMemoryIdempotencyStore, clock: FakeClock
) -> None:
    first = await store.begin(SCOPE, "key-1", FP, clock.now(), 60.0)
    clock.advance(61)
    second = await store.begin(SCOPE, "key-1", FP, clock.now(), 60.0)
    assert first.token is not None
    assert second.token is not None
    assert first.token != second.token
    expires = clock.now() + timedelta(hours=24)
    assert await store.release(SCOPE, "key-1", first.token) is False
    assert await store.complete(SCOPE, "key-1", first.token, SLOW_OK, expires) is False
    assert await store.complete(SCOPE, "key-1", second.token, RETRY_OK, expires) is True
    assert await store.complete(SCOPE, "key-1", second.token, SLOW_OK, expires) is False  # once only
    assert await store.release(SCOPE, "key-1", second.token) is False  # a stored response stays
    assert store.records[(SCOPE, "key-1")].response == RETRY_OK
