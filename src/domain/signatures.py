"""Razorpay signatures: HMAC-SHA256, hex digest, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def _hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def payment_signature(order_id: str, payment_id: str, key_secret: str) -> str:
    """The Checkout signature: HMAC of ``order_id|payment_id`` with the API key secret."""
    return _hex_hmac(key_secret, f"{order_id}|{payment_id}".encode())


def verify_payment_signature(order_id: str, payment_id: str, signature: str, key_secret: str) -> bool:
    """Check a Checkout signature against the order id *we stored*, never one the client chose."""
    if not key_secret or not isinstance(signature, str):
        return False
    expected = payment_signature(order_id, payment_id, key_secret)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))


def webhook_signature(body: bytes, webhook_secret: str) -> str:
    """The webhook signature: HMAC of the raw body bytes (never a re-serialized body)."""
    return _hex_hmac(webhook_secret, body)


def verify_webhook_signature(body: bytes, signature: str | None, secrets: Iterable[str]) -> bool:
    """True when ``signature`` matches the body under any configured secret (rotation)."""
    if not signature:
        return False
    given = signature.encode("utf-8", "replace")
    ok = False
    for secret in secrets:
        if secret:
            # Check every secret so the time taken does not tell which one matched.
            ok |= hmac.compare_digest(webhook_signature(body, secret).encode("ascii"), given)
    return ok
