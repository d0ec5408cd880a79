"""Conformance of the entity parsers with real Razorpay payloads.

Samples live outside the project, in ``../shared/fixtures/razorpay`` relative to the repository root
(``docs_api/`` and ``docs_webhooks/`` from Razorpay's docs, ``sdk_mocks/`` from the official SDK's
tests); ``RAZORPAY_FIXTURES_DIR`` overrides the location. A missing folder FAILS these tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.razorpay.gateway import (
    MalformedEntity,
    order_from_entity,
    payment_from_entity,
    refund_from_entity,
    safe_gateway_detail,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES_DIR = Path(
    os.environ.get("RAZORPAY_FIXTURES_DIR") or REPO_ROOT.parent / "shared" / "fixtures" / "razorpay"
)
SUBDIRS = ("docs_api", "docs_webhooks", "sdk_mocks")
MISSING = "razorpay-fixtures-folder-missing"


def _missing_message() -> str:
    return (
        f"Razorpay fixtures folder is missing: {FIXTURES_DIR} (expected ../shared/fixtures/razorpay "
        "next to the repository, with docs_api/, docs_webhooks/ and sdk_mocks/; "
        "set RAZORPAY_FIXTURES_DIR to point elsewhere)"
    )


def _walk(obj: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(obj, dict):
        if obj.get("entity") in ("payment", "refund", "order"):
            yield where, obj
        for key, value in obj.items():
            yield from _walk(value, f"{where}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _walk(value, f"{where}[{i}]")


def _samples() -> dict[str, list[tuple[str, Any]]]:
    """Every entity found in the fixture files, by kind, and every error sample."""
    found: dict[str, list[tuple[str, Any]]] = {"payment": [], "refund": [], "order": [], "error": []}
    if not FIXTURES_DIR.is_dir():
        return found
    for sub in SUBDIRS:
        for path in sorted((FIXTURES_DIR / sub).glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            name = f"{sub}/{path.name}"
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                found["error"].append((name, data["error"]))
            for where, entity in _walk(data, ""):
                found[entity["entity"]].append((f"{name}{where}", entity))
    return found


SAMPLES = _samples()


def _params(kind: str) -> list[Any]:
    if not SAMPLES[kind]:
        # Never an empty parameter set (pytest would skip it): a missing folder must fail loudly.
        return [pytest.param(MISSING, None, id=MISSING)]
    return [pytest.param(name, entity, id=name) for name, entity in SAMPLES[kind]]


def _require(name: str) -> None:
    if name == MISSING:
        pytest.fail(_missing_message())


def _load(relative: str) -> Any:
    path = FIXTURES_DIR / relative
    if not path.is_file():
        pytest.fail(f"{_missing_message()}; missing file {relative}")
    return json.loads(path.read_text(encoding="utf-8"))


def test_fixtures_folder_holds_the_razorpay_samples() -> None:
    assert FIXTURES_DIR.is_dir(), _missing_message()
    # At least the samples this suite was written against (a folder emptied by mistake fails too).
    assert len(SAMPLES["payment"]) >= 25
    assert len(SAMPLES["refund"]) >= 9
    assert len(SAMPLES["order"]) >= 8
    assert len(SAMPLES["error"]) >= 8


# -- every sample -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "raw"), _params("payment"))
def test_every_payment_sample_maps_to_a_snapshot(name: str, raw: dict[str, Any]) -> None:
    _require(name)
    snap = payment_from_entity(raw)
    assert snap.id == raw["id"]
    assert snap.amount == raw["amount"]
    assert type(snap.amount) is int
    assert snap.currency == raw["currency"]
    assert snap.status == raw["status"]
    assert snap.order_id == raw.get("order_id")
    assert snap.method == raw.get("method")
    assert snap.amount_refunded == (raw.get("amount_refunded") or 0)
    assert snap.fee == (raw.get("fee") or 0)
    assert snap.tax == (raw.get("tax") or raw.get("service_tax") or 0)
    assert snap.captured is raw.get("captured", raw["status"] in ("captured", "refunded"))
    assert snap.error_code == (raw.get("error_code") or None)  # "" in some webhook samples
    assert snap.created_at == datetime.fromtimestamp(raw["created_at"], UTC)


@pytest.mark.parametrize(("name", "raw"), _params("refund"))
def test_every_refund_sample_maps_to_a_snapshot(name: str, raw: dict[str, Any]) -> None:
    _require(name)
    snap = refund_from_entity(raw)
    assert snap.id == raw["id"]
    assert snap.payment_id == raw["payment_id"]
    assert snap.amount == raw["amount"]
    assert type(snap.amount) is int
    assert snap.currency == raw["currency"]
    assert snap.status == raw.get("status", "pending")
    assert snap.notes == (raw.get("notes") or {})
    assert isinstance(snap.notes, dict)
    assert snap.created_at == datetime.fromtimestamp(raw["created_at"], UTC)


@pytest.mark.parametrize(("name", "raw"), _params("order"))
def test_every_order_sample_maps_to_a_gateway_order(name: str, raw: dict[str, Any]) -> None:
    _require(name)
    order = order_from_entity(raw)
    assert (order.id, order.amount, order.currency, order.status) == (
        raw["id"],
        raw["amount"],
        raw["currency"],
        raw["status"],
    )
    assert order.receipt == raw.get("receipt")


@pytest.mark.parametrize(("name", "raw"), _params("error"))
def test_every_error_sample_description_survives_the_safety_filter(name: str, raw: dict[str, Any]) -> None:
    # Razorpay's own short reasons are safe: they reach clients unchanged.
    _require(name)
    assert raw["code"] == "BAD_REQUEST_ERROR"
    assert safe_gateway_detail(raw["description"]) == raw["description"]


# -- the traps the design brief names ---------------------------------------------------------------


def test_empty_notes_sent_as_a_list_become_an_empty_dict() -> None:
    raw = _load("docs_api/refunds_create_normal.success.json")
    assert raw["notes"] == []
    assert refund_from_entity(raw).notes == {}


def test_refund_notes_are_kept() -> None:
    snap = refund_from_entity(_load("docs_api/refunds_entity.entity.json"))
    assert snap.notes == {"notes_key_1": "Beam me up Scotty.", "notes_key_2": "Engage"}
    assert (snap.status, snap.amount) == ("processed", 10000)


def test_captured_payment_carries_fee_and_tax() -> None:
    snap = payment_from_entity(_load("docs_api/payments_fetch.wallet.json"))
    assert (snap.status, snap.captured, snap.fee, snap.tax, snap.method) == (
        "captured",
        True,
        5900,
        900,
        "wallet",
    )


def test_failed_payment_keeps_its_error_code_and_zero_fee() -> None:
    snap = payment_from_entity(_load("docs_api/payments_entity.failure.json"))
    assert (snap.status, snap.captured, snap.order_id) == ("failed", False, None)
    assert (snap.fee, snap.tax, snap.error_code) == (0, 0, "BAD_REQUEST_ERROR")


def test_empty_error_code_of_a_failed_webhook_payment_is_none() -> None:
    raw = _load("docs_webhooks/payment.failed.card.json")["payload"]["payment"]["entity"]
    assert raw["error_code"] == ""
    snap = payment_from_entity(raw)
    assert (snap.status, snap.error_code) == ("failed", None)


def test_captured_flag_is_reported_as_sent_even_on_an_authorized_event() -> None:
    raw = dict(_load("docs_webhooks/payment.authorized.card.json")["payload"]["payment"]["entity"])
    raw["captured"] = True  # Razorpay snapshots may say so: callers branch on status
    snap = payment_from_entity(raw)
    assert (snap.status, snap.captured) == ("authorized", True)


def test_missing_captured_flag_is_derived_from_status() -> None:
    raw = _load("sdk_mocks/fake_captured_payment.json")
    assert "captured" not in raw
    assert payment_from_entity(raw).captured is True
    assert payment_from_entity(_load("sdk_mocks/fake_payment.json")).captured is False


def test_old_webhook_service_tax_is_read_as_tax() -> None:
    entity = _load("sdk_mocks/fake_payment_authorized_webhook.json")["payload"]["payment"]["entity"]
    snap = payment_from_entity(entity)
    assert (snap.fee, snap.tax) == (23000, 3000)


def test_refund_without_status_is_pending() -> None:
    item = _load("sdk_mocks/refund_collection.json")["items"][0]
    assert "status" not in item
    assert refund_from_entity(item).status == "pending"


def test_partially_refunded_payment_reports_amount_refunded() -> None:
    raw = _load("docs_webhooks/refund.processed.normal_refunds.json")["payload"]["payment"]["entity"]
    snap = payment_from_entity(raw)
    assert (snap.status, snap.amount_refunded) == ("captured", 190000)


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [500.0, "500", True, None, -1, 1e3])
def test_non_integer_or_negative_amounts_are_refused(amount: object) -> None:
    raw = dict(_load("docs_api/payments_fetch.card.json"))
    raw["amount"] = amount
    with pytest.raises(MalformedEntity):
        payment_from_entity(raw)
    refund = dict(_load("docs_api/refunds_entity.entity.json"))
    refund["amount"] = amount
    with pytest.raises(MalformedEntity):
        refund_from_entity(refund)


def test_float_fee_is_refused() -> None:
    raw = dict(_load("docs_api/payments_fetch.card.json"))
    raw["fee"] = 1.5
    with pytest.raises(MalformedEntity):
        payment_from_entity(raw)


def test_an_entity_of_another_kind_is_refused() -> None:
    with pytest.raises(MalformedEntity):
        payment_from_entity(_load("docs_api/refunds_entity.entity.json"))
    with pytest.raises(MalformedEntity):
        refund_from_entity(_load("docs_api/payments_fetch.card.json"))


@pytest.mark.parametrize("notes", [["a"], "text", 5])
def test_notes_that_are_not_an_object_are_refused(notes: object) -> None:
    raw = dict(_load("docs_api/refunds_entity.entity.json"))
    raw["notes"] = notes
    with pytest.raises(MalformedEntity):
        refund_from_entity(raw)


def test_missing_id_or_status_is_refused() -> None:
    for key in ("id", "status", "currency"):
        raw = dict(_load("docs_api/payments_fetch.card.json"))
        del raw[key]
        with pytest.raises(MalformedEntity):
            payment_from_entity(raw)


def test_non_objects_are_refused() -> None:
    values: tuple[object, ...] = ([], "payment", None, 1)
    for value in values:
        with pytest.raises(MalformedEntity):
            payment_from_entity(value)


# -- the safety filter for rejection details ------------------------------------------------------


def test_safe_detail_redacts_keys_tokens_cards_and_emails() -> None:
    raw = (
        "Bad key rzp_test_1DP5mmOlF5G5ag secret=Zx81mQpLk3Ww9aB7cD0eF1gH2iJ card 4111 1111 1111 1111 "
        "for gaurav.kumar@example.com"
    )
    detail = safe_gateway_detail(raw)
    for leaked in ("rzp_test", "Zx81mQpLk3", "4111", "gaurav.kumar"):
        assert leaked not in detail
    assert detail.startswith("Bad key [redacted]")


def test_safe_detail_is_one_bounded_printable_line() -> None:
    detail = safe_gateway_detail("line one\nline two\x00\x1b[31m" + "word " * 100)
    assert "\n" not in detail
    assert detail.isprintable()
    assert len(detail) <= 200
    assert detail.startswith("line one line two")


def test_safe_detail_falls_back_to_a_generic_reason() -> None:
    assert safe_gateway_detail("") == "The payment gateway rejected the request."
    assert safe_gateway_detail(None) == "The payment gateway rejected the request."
