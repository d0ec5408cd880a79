"""The real Razorpay SDK adapter against the simulator over HTTP (the SDK is never mocked)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import requests
from litestar import Litestar, get

from adapters.razorpay.gateway import RazorpayGateway
from adapters.razorpay.simulator import create_simulator_mount
from domain.errors import GatewayRejected, GatewayUnavailable
from domain.money import Money
from domain.signatures import verify_payment_signature
from tests.support.simulator import (
    SIM_KEY_ID,
    SIM_KEY_SECRET,
    RunningSimulator,
    serve_in_thread,
)

TIMEOUT_S = 0.5


@pytest.fixture
async def gateway(sim: RunningSimulator) -> AsyncIterator[RazorpayGateway]:
    gw = RazorpayGateway(sim.key_id, sim.key_secret, base_url=sim.base_url, timeout_s=TIMEOUT_S)
    yield gw
    await gw.close()


async def _paid(gw: RazorpayGateway, sim: RunningSimulator, amount: int = 50000) -> tuple[str, str]:
    """An order with an authorized payment: (order id, payment id)."""
    order = await gw.create_order(Money.of(amount, "INR"), "rcpt-1", {})
    checkout = sim.pay(order.id)
    return order.id, checkout["razorpay_payment_id"]


async def _captured(gw: RazorpayGateway, sim: RunningSimulator, amount: int = 50000) -> str:
    _, pid = await _paid(gw, sim, amount)
    await gw.capture_payment(pid, amount, "INR")
    return pid


# -- happy paths --------------------------------------------------------------------------------


async def test_create_order_returns_the_gateway_order(gateway: RazorpayGateway) -> None:
    order = await gateway.create_order(Money.of(50000, "INR"), "receipt#1", {"cart": "42"})
    assert order.id.startswith("order_")
    assert len(order.id) == len("order_") + 14
    assert (order.amount, order.currency, order.status, order.receipt) == (
        50000,
        "INR",
        "created",
        "receipt#1",
    )


async def test_checkout_signature_verifies_with_the_key_secret(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    order = await gateway.create_order(Money.of(1000, "INR"), None, {})
    checkout = sim.pay(order.id)
    assert checkout["razorpay_order_id"] == order.id
    assert verify_payment_signature(
        order.id, checkout["razorpay_payment_id"], checkout["razorpay_signature"], SIM_KEY_SECRET
    )


async def test_fetch_payment_shows_an_authorized_payment_of_the_order(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    order_id, pid = await _paid(gateway, sim, 12300)
    payment = await gateway.fetch_payment(pid)
    assert (payment.id, payment.order_id, payment.amount, payment.currency) == (pid, order_id, 12300, "INR")
    assert (payment.status, payment.captured, payment.fee, payment.method) == ("authorized", False, 0, "card")
    assert payment.created_at is not None


async def test_capture_marks_the_payment_captured_with_fee_and_tax(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    _, pid = await _paid(gateway, sim, 50000)
    captured = await gateway.capture_payment(pid, 50000, "INR")
    assert (captured.status, captured.captured) == ("captured", True)
    assert (captured.fee, captured.tax) == (1180, 180)  # 2 % + 18 % GST on it


async def test_capture_twice_is_a_success_when_the_payment_is_captured(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    _, pid = await _paid(gateway, sim)
    first = await gateway.capture_payment(pid, 50000, "INR")
    second = await gateway.capture_payment(pid, 50000, "INR")
    assert second.status == "captured"
    assert second == first


async def test_capture_of_a_payment_captured_outside_any_callback_is_a_success(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    _, pid = await _paid(gateway, sim)
    sim.force_status(pid, "captured")
    assert (await gateway.capture_payment(pid, 50000, "INR")).status == "captured"


async def test_capture_of_a_failed_payment_is_rejected(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    order = await gateway.create_order(Money.of(50000, "INR"), None, {})
    failure = sim.pay(order.id, outcome="failed")
    pid = failure["error"]["metadata"]["payment_id"]
    with pytest.raises(GatewayRejected, match="authorized"):
        await gateway.capture_payment(pid, 50000, "INR")


async def test_capture_with_a_different_amount_is_rejected(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    _, pid = await _paid(gateway, sim, 50000)
    with pytest.raises(GatewayRejected, match="equal to the amount authorized"):
        await gateway.capture_payment(pid, 40000, "INR")
    assert (await gateway.fetch_payment(pid)).status == "authorized"


async def test_fetch_order_payments_lists_every_attempt(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    order = await gateway.create_order(Money.of(50000, "INR"), None, {})
    failed = sim.pay(order.id, outcome="failed")["error"]["metadata"]["payment_id"]
    ok = sim.pay(order.id)["razorpay_payment_id"]
    payments = await gateway.fetch_order_payments(order.id)
    assert {p.id: p.status for p in payments} == {failed: "failed", ok: "authorized"}
    assert next(p for p in payments if p.id == failed).error_code == "BAD_REQUEST_ERROR"


async def test_fetch_payment_refunds_finds_a_refund_by_its_notes_reference(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    pid = await _captured(gateway, sim, 50000)
    made = await gateway.refund_payment(
        pid, 10000, "rf_lookup_reference_1", {"refund_ref": "rf_lookup_reference_1"}
    )
    other = await gateway.refund_payment(
        pid, 5000, "rf_lookup_reference_2", {"refund_ref": "rf_lookup_reference_2"}
    )
    refunds = await gateway.fetch_payment_refunds(pid)
    by_ref = {r.notes.get("refund_ref"): r for r in refunds}
    assert by_ref["rf_lookup_reference_1"].id == made.id and by_ref["rf_lookup_reference_1"].amount == 10000
    assert by_ref["rf_lookup_reference_2"].id == other.id and len(refunds) == 2


async def test_partial_then_full_refund(gateway: RazorpayGateway, sim: RunningSimulator) -> None:
    pid = await _captured(gateway, sim, 50000)
    first = await gateway.refund_payment(pid, 20000, "refund-key-partial-1", {"reason": "damaged"})
    assert (first.payment_id, first.amount, first.currency, first.status) == (pid, 20000, "INR", "processed")
    assert first.notes == {"reason": "damaged"}
    assert first.id.startswith("rfnd_")
    second = await gateway.refund_payment(pid, 30000, "refund-key-rest-0001", {})
    assert second.id != first.id
    assert second.notes == {}
    payment = await gateway.fetch_payment(pid)
    assert (payment.status, payment.amount_refunded) == ("refunded", 50000)
    assert await gateway.fetch_refund(first.id) == first


async def test_refund_with_the_same_idempotency_key_refunds_once(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    pid = await _captured(gateway, sim, 50000)
    first, second = await asyncio.gather(
        gateway.refund_payment(pid, 10000, "same-key-0000000001", {}),
        gateway.refund_payment(pid, 10000, "same-key-0000000001", {}),
    )
    assert first.id == second.id
    assert (await gateway.fetch_payment(pid)).amount_refunded == 10000
    listed = sim.api("GET", f"/v1/payments/{pid}/refunds").json()
    assert listed["count"] == 1


async def test_refund_idempotency_key_reused_for_another_amount_is_rejected(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    pid = await _captured(gateway, sim, 50000)
    await gateway.refund_payment(pid, 10000, "reused-key-00000001", {})
    with pytest.raises(GatewayRejected, match="same idempotency key"):
        await gateway.refund_payment(pid, 20000, "reused-key-00000001", {})


async def test_refund_over_what_was_captured_is_rejected(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    pid = await _captured(gateway, sim, 50000)
    await gateway.refund_payment(pid, 40000, "over-key-000000001", {})
    with pytest.raises(GatewayRejected, match="greater than amount captured"):
        await gateway.refund_payment(pid, 10001, "over-key-000000002", {})
    assert (await gateway.fetch_payment(pid)).amount_refunded == 40000


async def test_refund_of_an_uncaptured_payment_is_rejected(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    _, pid = await _paid(gateway, sim)
    with pytest.raises(GatewayRejected):
        await gateway.refund_payment(pid, 100, "uncaptured-key-0001", {})


# -- rejections -----------------------------------------------------------------------------------


async def test_unknown_payment_id_is_rejected(gateway: RazorpayGateway) -> None:
    with pytest.raises(GatewayRejected) as info:
        await gateway.fetch_payment("pay_00000000000000")
    assert info.value.detail == "The id provided does not exist"


async def test_unknown_refund_and_order_ids_are_rejected(gateway: RazorpayGateway) -> None:
    with pytest.raises(GatewayRejected):
        await gateway.fetch_refund("rfnd_00000000000000")
    with pytest.raises(GatewayRejected):
        await gateway.fetch_order_payments("order_00000000000000")


async def test_ids_that_could_change_the_url_path_never_reach_the_gateway(gateway: RazorpayGateway) -> None:
    for bad in ("../orders", "pay_1/capture", "pay_1?x=1", ""):
        with pytest.raises(GatewayRejected, match="not valid"):
            await gateway.fetch_payment(bad)


async def test_order_below_the_minimum_is_rejected_with_razorpays_reason(gateway: RazorpayGateway) -> None:
    with pytest.raises(GatewayRejected) as info:
        await gateway.create_order(Money.of(50, "INR"), None, {})
    assert info.value.detail == "The amount must be at least INR 1.00"


async def test_rejection_detail_is_one_short_line_without_keys(sim: RunningSimulator) -> None:
    # The simulator echoes an invalid id in its error text, as Razorpay does: the adapter must bound it.
    gw = RazorpayGateway(sim.key_id, sim.key_secret, base_url=sim.base_url, timeout_s=TIMEOUT_S)
    try:
        with pytest.raises(GatewayRejected) as info:
            await gw.fetch_payment("rzp_live_AbCdEfGhIjKlMnOp_" + "x" * 30)
    finally:
        await gw.close()
    detail = info.value.detail
    assert "rzp_live" not in detail
    assert "AbCdEfGh" not in detail
    assert "[redacted]" in detail
    assert len(detail) <= 200
    assert "\n" not in detail
    assert detail.isprintable()


async def test_bad_credentials_make_the_gateway_unavailable_not_a_client_rejection(
    sim: RunningSimulator, capfd: pytest.CaptureFixture[str]
) -> None:
    gw = RazorpayGateway(sim.key_id, "wrong-secret", base_url=sim.base_url, timeout_s=TIMEOUT_S)
    try:
        with pytest.raises(GatewayUnavailable):
            await gw.create_order(Money.of(50000, "INR"), None, {})
    finally:
        await gw.close()
    assert capfd.readouterr().out == ""


async def test_simulator_answers_401_with_razorpay_error_json_without_credentials(
    sim: RunningSimulator,
) -> None:
    r = requests.get(f"{sim.base_url}/v1/orders", timeout=5)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "BAD_REQUEST_ERROR"
    assert r.json()["error"]["description"] == "Authentication failed"


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("error_500", {}),
        ("html_502", {}),
        ("drop", {}),
        ("latency", {"latencyMs": int(TIMEOUT_S * 1000) + 700}),
    ],
)
async def test_injected_fault_makes_the_gateway_unavailable_and_prints_nothing(
    gateway: RazorpayGateway,
    sim: RunningSimulator,
    capfd: pytest.CaptureFixture[str],
    mode: str,
    options: dict[str, Any],
) -> None:
    _, pid = await _paid(gateway, sim)
    capfd.readouterr()
    sim.set_fault(mode, count=1, **options)
    with pytest.raises(GatewayUnavailable):
        await gateway.fetch_payment(pid)
    assert capfd.readouterr().out == ""
    # count=1: the next call goes through again
    assert (await gateway.fetch_payment(pid)).id == pid


async def test_latency_within_the_timeout_still_answers(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    _, pid = await _paid(gateway, sim)
    sim.set_fault("latency", count=1, latencyMs=100)
    assert (await gateway.fetch_payment(pid)).status == "authorized"


async def test_fault_paths_filter_only_hits_matching_requests(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    _, pid = await _paid(gateway, sim)
    sim.set_fault("error_500", paths="/v1/refunds")
    assert (await gateway.fetch_payment(pid)).id == pid
    with pytest.raises(GatewayUnavailable):
        await gateway.fetch_refund("rfnd_00000000000000")


async def test_capture_during_an_outage_is_unavailable_and_leaves_the_payment_authorized(
    gateway: RazorpayGateway, sim: RunningSimulator
) -> None:
    _, pid = await _paid(gateway, sim)
    sim.set_fault("error_500", count=1, paths="/v1/payments")
    with pytest.raises(GatewayUnavailable):
        await gateway.capture_payment(pid, 50000, "INR")
    assert (await gateway.fetch_payment(pid)).status == "authorized"


async def test_connection_refused_is_unavailable_and_prints_nothing(
    capfd: pytest.CaptureFixture[str],
) -> None:
    gw = RazorpayGateway(SIM_KEY_ID, SIM_KEY_SECRET, base_url="http://127.0.0.1:9", timeout_s=TIMEOUT_S)
    try:
        with pytest.raises(GatewayUnavailable):
            await gw.fetch_payment("pay_00000000000000")
    finally:
        await gw.close()
    assert capfd.readouterr().out == ""


async def test_non_json_answers_from_a_proxy_are_unavailable_not_rejections(
    capfd: pytest.CaptureFixture[str],
) -> None:
    async def html_proxy(scope: Any, receive: Any, send: Any) -> None:
        status = 200 if scope["path"].endswith("ok_html") else 404
        body = b"<html><body>Not here</body></html>"
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/html")]}
        )
        await send({"type": "http.response.body", "body": body})

    with serve_in_thread(html_proxy) as url:
        gw = RazorpayGateway(SIM_KEY_ID, SIM_KEY_SECRET, base_url=url, timeout_s=TIMEOUT_S)
        try:
            with pytest.raises(GatewayUnavailable):
                await gw.fetch_payment("pay_ok_html")
            with pytest.raises(GatewayUnavailable):
                await gw.fetch_payment("pay_00000000000000")
        finally:
            await gw.close()
    assert capfd.readouterr().out == ""


# -- lifecycle and mounting -------------------------------------------------------------------------


async def test_closed_gateway_refuses_calls_as_unavailable(sim: RunningSimulator) -> None:
    gw = RazorpayGateway(sim.key_id, sim.key_secret, base_url=sim.base_url, timeout_s=TIMEOUT_S)
    await gw.create_order(Money.of(50000, "INR"), None, {})
    await gw.close()
    with pytest.raises(GatewayUnavailable):
        await gw.create_order(Money.of(50000, "INR"), None, {})


async def test_concurrent_calls_share_a_bounded_pool(sim: RunningSimulator) -> None:
    gw = RazorpayGateway(sim.key_id, sim.key_secret, base_url=sim.base_url, timeout_s=2, max_workers=3)
    try:
        orders = await asyncio.gather(
            *(gw.create_order(Money.of(1000 + i, "INR"), None, {}) for i in range(12))
        )
    finally:
        await gw.close()
    assert sorted(o.amount for o in orders) == [1000 + i for i in range(12)]
    assert len({o.id for o in orders}) == 12


async def test_simulator_mounted_inside_another_litestar_app(capfd: pytest.CaptureFixture[str]) -> None:
    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    outer = Litestar(
        route_handlers=[health, create_simulator_mount("/_simulator", SIM_KEY_ID, SIM_KEY_SECRET)]
    )
    with serve_in_thread(outer) as url:
        base = f"{url}/_simulator"
        mounted = RunningSimulator(base, SIM_KEY_ID, SIM_KEY_SECRET)
        gw = RazorpayGateway(SIM_KEY_ID, SIM_KEY_SECRET, base_url=base, timeout_s=2)
        try:
            order = await gw.create_order(Money.of(50000, "INR"), None, {})
            pid = mounted.pay(order.id)["razorpay_payment_id"]
            assert (await gw.capture_payment(pid, 50000, "INR")).status == "captured"
            mounted.set_fault("html_502", count=1)
            with pytest.raises(GatewayUnavailable):
                await gw.fetch_payment(pid)
            refund = await gw.refund_payment(pid, 100, "mounted-key-000001", {})
            assert refund.payment_id == pid
        finally:
            await gw.close()
        assert requests.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
    assert capfd.readouterr().out == ""
