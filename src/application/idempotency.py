"""Running a request under an Idempotency-Key (Stripe's semantics)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.errors import (
    DependencyUnavailable,
    DomainError,
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    ValidationError,
)
from domain.idempotency import TTL_SECONDS, IdempotencyState, StoredResponse, validate_key
from domain.ports import Clock, IdempotencyStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IdempotentResult:
    response: StoredResponse
    replayed: bool
    # False when this request ran but a retry had taken over its claim meanwhile: its response was not
    # stored (the key belongs to the retry now), though it is still this caller's answer.
    stored: bool = True


class IdempotencyService:
    """Claims a key, runs the request once, stores its response for 24 h and replays it.

    A request refused by validation, or one that failed because a dependency was unavailable or because
    of an unexpected error, stores nothing: a retry with the same key runs again. Other refusals
    (invalid state, gateway rejection, ...) are final and are replayed like successes.

    A claim older than the lock timeout may be taken over by a retry while the first request still runs;
    the store's fencing token then keeps the first request from storing its response over the retry's or
    releasing the retry's claim.
    """

    def __init__(
        self,
        store: IdempotencyStore,
        clock: Clock,
        ttl_seconds: int = TTL_SECONDS,
        lock_timeout_seconds: float = 60.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl_seconds
        self._lock_timeout = lock_timeout_seconds

    async def run(
        self,
        scope: str,
        key: str,
        fingerprint: str,
        handler: Callable[[], Awaitable[StoredResponse]],
        render_error: Callable[[DomainError], StoredResponse],
    ) -> IdempotentResult:
        validate_key(key)
        outcome = await self._store.begin(scope, key, fingerprint, self._clock.now(), self._lock_timeout)
        if outcome.state is IdempotencyState.REPLAY:
            assert outcome.response is not None
            return IdempotentResult(outcome.response, replayed=True)
        if outcome.state is IdempotencyState.IN_PROGRESS:
            raise IdempotencyRequestInProgress(
                "a request with this Idempotency-Key is still being processed; retry later."
            )
        if outcome.state is IdempotencyState.MISMATCH:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request; use a new key."
            )
        token = outcome.token
        assert token is not None, "a STARTED outcome carries the claim's token"
        try:
            response = await handler()
        except (ValidationError, DependencyUnavailable):
            await self._release_quietly(scope, key, token)
            raise
        except DomainError as exc:
            await self._complete(scope, key, token, render_error(exc))
            raise
        except BaseException:
            await self._release_quietly(scope, key, token)
            raise
        stored = await self._complete(scope, key, token, response)
        return IdempotentResult(response, replayed=False, stored=stored)

    def _expiry(self) -> datetime:
        return self._clock.now() + timedelta(seconds=self._ttl)

    async def _complete(self, scope: str, key: str, token: str, response: StoredResponse) -> bool:
        stored = await self._store.complete(scope, key, token, response, self._expiry())
        if not stored:
            log.warning(
                "idempotency key %r in scope %r: the claim was taken over (by a retry, after the lock "
                "timeout) while this request ran; its response (HTTP %d) was NOT stored",
                key,
                scope,
                response.status,
            )
        return stored

    async def _release_quietly(self, scope: str, key: str, token: str) -> None:
        # If even the release fails, the claim lapses after the lock timeout. A release that finds the
        # claim taken over deletes nothing: the key belongs to the retry now.
        try:
            released = await self._store.release(scope, key, token)
        except Exception:  # noqa: BLE001 - the original error matters, not this one
            return
        if not released:
            log.info("idempotency key %r in scope %r: claim already taken over, not released", key, scope)

    async def purge_expired(self) -> int:
        return await self._store.purge_expired(self._clock.now())
