"""Idempotency keys with Stripe's semantics.

The same key from the same user on the same endpoint with the same body replays the first response; with
a different body it is refused; while the first request still runs it is refused with "in progress".

A claim carries a random fencing token. A claim whose request seems dead (older than the lock timeout)
may be taken over by a retry, which gets a new token; the store then accepts ``complete``/``release``
only with the token of the current claim, so the slow first request can no longer overwrite the retry's
stored response or delete its claim.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import ValidationError

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-:.]{1,255}$")
TTL_SECONDS = 24 * 3600


def validate_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):  # match() with "$" would let a trailing newline through
        raise ValidationError(
            "Idempotency-Key must be 1 to 255 characters of letters, digits, '-', '_', ':' or '.'."
        )
    return key


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same request" for a key."""
    h = hashlib.sha256()
    h.update(method.upper().encode())
    h.update(b"\0")
    h.update(path.encode())
    h.update(b"\0")
    h.update(body)
    return h.hexdigest()


def new_claim_token() -> str:
    """A fresh fencing token for one claim of a key (128 random bits, hex)."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes
    content_type: str = "application/json"


class IdempotencyState(StrEnum):
    STARTED = "started"  # the caller owns the key now and must complete or release it
    REPLAY = "replay"
    IN_PROGRESS = "in_progress"
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class IdempotencyOutcome:
    state: IdempotencyState
    response: StoredResponse | None = None  # set when state is REPLAY
    token: str | None = None  # set when state is STARTED: the claim's fencing token
