"""Running a request under an Idempotency-Key (Stripe's semantics)."""

from __future__ import annotations

import contextlib
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


@dataclass(frozen=True, slots=True)
class IdempotentResult:
    response: StoredResponse
    replayed: bool


class IdempotencyService:
    """Claims a key, runs the request once, stores its response for 24 h and replays it.

    A request refused by validation, or one that failed because a dependency was unavailable or because
    of an unexpected error, stores nothing: a retry with the same key runs again. Other refusals
    (invalid state, gateway rejection, ...) are final and are replayed like successes.
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
        try:
            response = await handler()
        except (ValidationError, DependencyUnavailable):
            await self._release_quietly(scope, key)
            raise
        except DomainError as exc:
            await self._store.complete(scope, key, render_error(exc), self._expiry())
            raise
        except BaseException:
            await self._release_quietly(scope, key)
            raise
        await self._store.complete(scope, key, response, self._expiry())
        return IdempotentResult(response, replayed=False)

    def _expiry(self) -> datetime:
        return self._clock.now() + timedelta(seconds=self._ttl)

    async def _release_quietly(self, scope: str, key: str) -> None:
        # If even the release fails, the claim lapses after the lock timeout.
        with contextlib.suppress(Exception):
            await self._store.release(scope, key)

    async def purge_expired(self) -> int:
        return await self._store.purge_expired(self._clock.now())
