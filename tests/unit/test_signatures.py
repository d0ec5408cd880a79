"""Razorpay signatures, checked against the vectors published with the official SDK's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from domain.signatures import (
    payment_signature,
    verify_payment_signature,
    verify_webhook_signature,
    webhook_signature,
)

# From razorpay-python's tests (tests/test_client_utility.py).
SDK_ORDER_ID = "fake_order_id"
SDK_PAYMENT_ID = "fake_payment_id"
SDK_SECRET = "key_secret"
SDK_PAYMENT_SIGNATURE = "b2335e3b0801106b84a7faff035df56ecffde06918c9ddd1f0fafbb37a51cc89"
SDK_WEBHOOK_SIGNATURE = "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9"
WEBHOOK_FIXTURE = "sdk_mocks/fake_payment_authorized_webhook.json"

REPO_ROOT = Path(__file__).resolve().parents[2]


def _fixtures_dir() -> Path:
    configured = os.environ.get("RAZORPAY_FIXTURES_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "fixtures" / "razorpay"


@pytest.fixture(scope="module")
def sdk_webhook_body() -> bytes:
    """The exact bytes of the SDK's webhook mock (its final newline is part of what was signed)."""
    path = _fixtures_dir() / WEBHOOK_FIXTURE
    if not path.is_file():
        pytest.fail(
            f"Razorpay fixture {path} is missing: the webhook signature vector cannot be checked. "
            "Put the fixtures at ../shared/fixtures/razorpay relative to the repository root, or set "
            "RAZORPAY_FIXTURES_DIR to the directory that holds sdk_mocks/.",
            pytrace=False,
        )
    return path.read_bytes()


# ---- payment (Checkout) signature ----------------------------------------------------------------


def test_payment_signature_matches_the_sdk_vector() -> None:
    assert payment_signature(SDK_ORDER_ID, SDK_PAYMENT_ID, SDK_SECRET) == SDK_PAYMENT_SIGNATURE
    assert verify_payment_signature(SDK_ORDER_ID, SDK_PAYMENT_ID, SDK_PAYMENT_SIGNATURE, SDK_SECRET)


@pytest.mark.parametrize(
    ("order_id", "payment_id", "signature", "secret"),
    [
        pytest.param(SDK_ORDER_ID, SDK_PAYMENT_ID, SDK_PAYMENT_SIGNATURE, "other_secret", id="wrong-secret"),
        pytest.param("fake_order_id2", SDK_PAYMENT_ID, SDK_PAYMENT_SIGNATURE, SDK_SECRET, id="other-order"),
        pytest.param(SDK_ORDER_ID, "fake_payment_id2", SDK_PAYMENT_SIGNATURE, SDK_SECRET, id="other-payment"),
        pytest.param(SDK_PAYMENT_ID, SDK_ORDER_ID, SDK_PAYMENT_SIGNATURE, SDK_SECRET, id="ids-swapped"),
        pytest.param(SDK_ORDER_ID, SDK_PAYMENT_ID, "", SDK_SECRET, id="empty-signature"),
        pytest.param(SDK_ORDER_ID, SDK_PAYMENT_ID, SDK_PAYMENT_SIGNATURE, "", id="empty-secret"),
        pytest.param(SDK_ORDER_ID, SDK_PAYMENT_ID, "zz" * 32, SDK_SECRET, id="non-hex"),
        pytest.param(
            SDK_ORDER_ID, SDK_PAYMENT_ID, SDK_PAYMENT_SIGNATURE.upper(), SDK_SECRET, id="upper-case"
        ),
        pytest.param(SDK_ORDER_ID, SDK_PAYMENT_ID, SDK_PAYMENT_SIGNATURE[:-1], SDK_SECRET, id="truncated"),
        pytest.param(SDK_ORDER_ID, SDK_PAYMENT_ID, SDK_PAYMENT_SIGNATURE + "0", SDK_SECRET, id="extended"),
        pytest.param(SDK_ORDER_ID, SDK_PAYMENT_ID, " " + SDK_PAYMENT_SIGNATURE, SDK_SECRET, id="padded"),
        pytest.param(SDK_ORDER_ID, SDK_PAYMENT_ID, "é" * 64, SDK_SECRET, id="non-ascii"),
    ],
)
def test_payment_signature_refusals(order_id: str, payment_id: str, signature: str, secret: str) -> None:
    assert verify_payment_signature(order_id, payment_id, signature, secret) is False


def test_payment_signature_of_a_non_string_is_refused() -> None:
    assert verify_payment_signature(SDK_ORDER_ID, SDK_PAYMENT_ID, None, SDK_SECRET) is False  # type: ignore[arg-type]


# ---- webhook signature ----------------------------------------------------------------------------


def test_webhook_signature_matches_the_sdk_vector(sdk_webhook_body: bytes) -> None:
    assert sdk_webhook_body.endswith(b"\n")
    assert webhook_signature(sdk_webhook_body, SDK_SECRET) == SDK_WEBHOOK_SIGNATURE
    assert verify_webhook_signature(sdk_webhook_body, SDK_WEBHOOK_SIGNATURE, [SDK_SECRET])


def test_webhook_body_without_its_final_newline_does_not_verify(sdk_webhook_body: bytes) -> None:
    stripped = sdk_webhook_body.rstrip(b"\n")
    assert stripped != sdk_webhook_body
    assert not verify_webhook_signature(stripped, SDK_WEBHOOK_SIGNATURE, [SDK_SECRET])


def test_reserialized_webhook_body_does_not_verify(sdk_webhook_body: bytes) -> None:
    import json

    reserialized = json.dumps(json.loads(sdk_webhook_body)).encode()
    assert not verify_webhook_signature(reserialized, SDK_WEBHOOK_SIGNATURE, [SDK_SECRET])


BODY = b'{"event":"payment.captured","payload":{}}'
WEBHOOK_SECRET = "whsec_current"
API_SECRET = "api_key_secret"


@pytest.mark.parametrize(
    ("body", "signature", "secrets"),
    [
        pytest.param(BODY, webhook_signature(BODY, "wrong"), [WEBHOOK_SECRET], id="wrong-secret"),
        pytest.param(BODY + b" ", webhook_signature(BODY, WEBHOOK_SECRET), [WEBHOOK_SECRET], id="tampered"),
        pytest.param(BODY, "", [WEBHOOK_SECRET], id="empty-signature"),
        pytest.param(BODY, None, [WEBHOOK_SECRET], id="no-signature"),
        pytest.param(BODY, "g" * 64, [WEBHOOK_SECRET], id="non-hex"),
        pytest.param(
            BODY, webhook_signature(BODY, WEBHOOK_SECRET).upper(), [WEBHOOK_SECRET], id="upper-case"
        ),
        pytest.param(
            BODY, webhook_signature(BODY, API_SECRET), [WEBHOOK_SECRET], id="signed-with-api-secret"
        ),
        pytest.param(BODY, webhook_signature(BODY, WEBHOOK_SECRET), [], id="no-secret-configured"),
        pytest.param(BODY, webhook_signature(BODY, ""), [""], id="empty-secret-configured"),
    ],
)
def test_webhook_signature_refusals(body: bytes, signature: str | None, secrets: list[str]) -> None:
    assert verify_webhook_signature(body, signature, secrets) is False


def test_webhook_signature_rotation_accepts_either_secret() -> None:
    old, new = "whsec_old", "whsec_new"
    secrets = [new, old]
    assert verify_webhook_signature(BODY, webhook_signature(BODY, old), secrets)
    assert verify_webhook_signature(BODY, webhook_signature(BODY, new), secrets)
    assert not verify_webhook_signature(BODY, webhook_signature(BODY, "whsec_retired"), secrets)
    # secrets may be any iterable, e.g. a generator read once
    assert verify_webhook_signature(BODY, webhook_signature(BODY, old), (s for s in secrets))


def test_webhook_signature_is_hex_sha256() -> None:
    sig = webhook_signature(BODY, WEBHOOK_SECRET)
    assert len(sig) == 64
    assert sig == sig.lower()
    int(sig, 16)
