"""The HTTP contract of API.md through the real server: problem details, validation, auth, idempotency."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.e2e.helpers import auth, checkout, clear_faults, create_order, paid_order, set_fault

ORDERS = "/api/payments/orders"


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["code"] == code
    assert {"type", "title", "detail", "requestId"} <= body.keys()
    assert body["requestId"] == r.headers["x-request-id"]
    text = r.text.lower()
    for leak in ("traceback", 'file "', "sqlalchemy", "select ", "postgresql://", "secret"):
        assert leak not in text, f"{leak!r} leaked in {r.text}"
    return body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "json"),
        (b"", "json"),
        (b"[]", "object"),
        (json.dumps({"amount": 500.0, "currency": "INR"}).encode(), "int"),
        (json.dumps({"amount": 50000.5, "currency": "INR"}).encode(), "int"),
        (json.dumps({"amount": "50000", "currency": "INR"}).encode(), "int"),
        (json.dumps({"amount": True, "currency": "INR"}).encode(), "int"),
        (json.dumps({"amount": 99, "currency": "INR"}).encode(), "at least 100"),
        (json.dumps({"amount": -100, "currency": "INR"}).encode(), "amount"),
        (json.dumps({"amount": 10**15, "currency": "INR"}).encode(), "at most"),
        (json.dumps({"amount": 50000, "currency": "XYZ"}).encode(), "currency"),
        (json.dumps({"amount": 50000, "currency": "inr"}).encode(), "currency"),
        (json.dumps({"amount": 50000, "currency": "INR", "receipt": "r" * 41}).encode(), "receipt"),
        (
            json.dumps(
                {"amount": 50000, "currency": "INR", "notes": {f"k{i}": "v" for i in range(16)}}
            ).encode(),
            "notes",
        ),
        (json.dumps({"amount": 50000, "currency": "INR", "notes": {"k": 1}}).encode(), "notes"),
        (json.dumps({"amount": 50000, "currency": "INR", "amonut": 1}).encode(), "amonut"),
    ],
)
def test_invalid_order_requests_are_400_validation_error_and_store_nothing(
    server: Server, body: bytes, fragment: str
) -> None:
    user = server.token(f"user-{uuid.uuid4().hex[:8]}")
    r = httpx.post(
        server.url + ORDERS,
        content=body,
        headers=auth(user, **{"Content-Type": "application/json", "Idempotency-Key": "k-1"}),
    )
    problem = assert_problem(r, 400, "validation_error")
    assert fragment in problem["detail"].lower()
    listed = httpx.get(server.url + ORDERS, headers=auth(user)).json()
    assert listed["orders"] == []
    # A request refused by validation stores no key: the same key now works with a valid body.
    ok = httpx.post(
        server.url + ORDERS,
        json={"amount": 50_000, "currency": "INR"},
        headers=auth(user, **{"Idempotency-Key": "k-1"}),
    )
    assert ok.status_code == 201, ok.text


def test_idempotent_replay_returns_the_first_response(server: Server) -> None:
    user = server.token("user-idem")
    key = uuid.uuid4().hex
    body = {"amount": 12_300, "currency": "INR", "receipt": "idem"}
    first = httpx.post(server.url + ORDERS, json=body, headers=auth(user, **{"Idempotency-Key": key}))
    second = httpx.post(server.url + ORDERS, json=body, headers=auth(user, **{"Idempotency-Key": key}))
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(httpx.get(server.url + ORDERS, headers=auth(user)).json()["orders"]) == 1


def test_idempotency_key_reused_with_another_body_is_422(server: Server) -> None:
    user = server.token("user-idem-reuse")
    key = uuid.uuid4().hex
    httpx.post(
        server.url + ORDERS,
        json={"amount": 10_000, "currency": "INR"},
        headers=auth(user, **{"Idempotency-Key": key}),
    )
    r = httpx.post(
        server.url + ORDERS,
        json={"amount": 20_000, "currency": "INR"},
        headers=auth(user, **{"Idempotency-Key": key}),
    )
    assert_problem(r, 422, "idempotency_key_reused")


def test_idempotency_keys_are_scoped_per_user(server: Server) -> None:
    key = uuid.uuid4().hex
    a = httpx.post(
        server.url + ORDERS,
        json={"amount": 10_000, "currency": "INR"},
        headers=auth(server.token("scope-a"), **{"Idempotency-Key": key}),
    )
    b = httpx.post(
        server.url + ORDERS,
        json={"amount": 10_000, "currency": "INR"},
        headers=auth(server.token("scope-b"), **{"Idempotency-Key": key}),
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["order"]["id"] != b.json()["order"]["id"]
    assert "idempotent-replayed" not in b.headers


def test_concurrent_use_of_one_idempotency_key_is_409_in_progress(server: Server) -> None:
    user = server.token("user-idem-concurrent")
    key = uuid.uuid4().hex
    body = {"amount": 10_000, "currency": "INR"}
    set_fault(server, mode="latency", latencyMs=1500, paths="/v1/orders", count=1)
    results: list[httpx.Response] = []
    try:
        slow = threading.Thread(
            target=lambda: results.append(
                httpx.post(
                    server.url + ORDERS, json=body, headers=auth(user, **{"Idempotency-Key": key}), timeout=30
                )
            )
        )
        slow.start()
        import time

        time.sleep(0.5)
        during = httpx.post(server.url + ORDERS, json=body, headers=auth(user, **{"Idempotency-Key": key}))
        slow.join()
    finally:
        clear_faults(server)
    assert_problem(during, 409, "idempotency_request_in_progress")
    assert results[0].status_code == 201
    after = httpx.post(server.url + ORDERS, json=body, headers=auth(user, **{"Idempotency-Key": key}))
    assert after.status_code == 201 and after.json() == results[0].json()


def test_another_users_order_is_404_not_403(server: Server) -> None:
    order = create_order(server, server.token("owner-1"))
    r = httpx.get(f"{server.url}{ORDERS}/{order['id']}", headers=auth(server.token("intruder-1")))
    assert_problem(r, 404, "not_found")
    fields = checkout(server, order["gatewayOrderId"])
    v = httpx.post(f"{server.url}/api/payments/verify", json=fields, headers=auth(server.token("intruder-1")))
    assert_problem(v, 404, "not_found")


def test_admin_can_read_any_order(server: Server) -> None:
    order = create_order(server, server.token("owner-2"))
    r = httpx.get(f"{server.url}{ORDERS}/{order['id']}", headers=auth(server.token("ops", "--role", "admin")))
    assert r.status_code == 200 and r.json()["order"]["id"] == order["id"]


def test_refund_by_non_admin_is_403_and_changes_nothing(server: Server) -> None:
    user = server.token("user-refund-403")
    order = paid_order(server, user)
    r = httpx.post(f"{server.url}{ORDERS}/{order['id']}/refunds", json={"amount": 100}, headers=auth(user))
    assert_problem(r, 403, "forbidden")
    got = httpx.get(f"{server.url}{ORDERS}/{order['id']}", headers=auth(user)).json()["order"]
    assert got["amountRefunded"] == 0


def test_refund_over_captured_is_422_and_of_unpaid_order_is_409(server: Server) -> None:
    admin = server.token("admin-x", "--role", "admin")
    user = server.token("user-over")
    order = paid_order(server, user, 10_000)
    r = httpx.post(
        f"{server.url}{ORDERS}/{order['id']}/refunds", json={"amount": 10_001}, headers=auth(admin)
    )
    assert_problem(r, 422, "refund_exceeds_captured")
    unpaid = create_order(server, user)
    r = httpx.post(f"{server.url}{ORDERS}/{unpaid['id']}/refunds", json={}, headers=auth(admin))
    assert_problem(r, 409, "invalid_state")
    r = httpx.post(f"{server.url}{ORDERS}/{order['id']}/refunds", json={"amount": 10.5}, headers=auth(admin))
    assert_problem(r, 400, "validation_error")


def test_wrong_signature_is_400_and_captures_nothing(server: Server) -> None:
    user = server.token("user-sig")
    order = create_order(server, user)
    fields = checkout(server, order["gatewayOrderId"])
    fields["razorpay_signature"] = "0" * 64
    r = httpx.post(f"{server.url}/api/payments/verify", json=fields, headers=auth(user))
    assert_problem(r, 400, "signature_invalid")
    got = httpx.get(f"{server.url}{ORDERS}/{order['id']}", headers=auth(user)).json()["order"]
    assert got["status"] == "created" and got["payments"] == []


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."],
)
def test_missing_or_bad_tokens_are_one_identical_401(server: Server, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = httpx.get(server.url + ORDERS, headers=headers)
    body = assert_problem(r, 401, "invalid_token")
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    baseline = httpx.get(server.url + ORDERS).json()
    assert {k: v for k, v in body.items() if k != "requestId"} == {
        k: v for k, v in baseline.items() if k != "requestId"
    }


def test_unknown_route_is_404_and_wrong_method_is_405_problem(server: Server) -> None:
    assert_problem(httpx.get(server.url + "/api/payments/nope"), 404, "not_found")
    assert_problem(httpx.delete(server.url + "/api/payments/verify"), 405, "method_not_allowed")


def test_body_over_one_mebibyte_is_413(server: Server) -> None:
    user = server.token("user-big")
    big = b'{"amount": 50000, "currency": "INR", "receipt": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    r = httpx.post(
        server.url + ORDERS, content=big, headers=auth(user, **{"Content-Type": "application/json"})
    )
    assert_problem(r, 413, "payload_too_large")


def test_request_id_is_echoed_when_sane_and_replaced_when_not(server: Server) -> None:
    r = httpx.get(server.url + "/health/live", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = httpx.get(server.url + "/health/live", headers={"X-Request-ID": "x" * 129})
    assert r.headers["x-request-id"] != "x" * 129 and len(r.headers["x-request-id"]) <= 128
    r = httpx.get(server.url + "/api/payments/missing", headers={"X-Request-ID": "trace-404"})
    assert r.headers["x-request-id"] == "trace-404" and r.json()["requestId"] == "trace-404"


def test_gateway_down_is_503_with_retry_after_and_stores_nothing(server: Server) -> None:
    user = server.token("user-503")
    for mode in ("error_500", "html_502", "drop"):
        set_fault(server, mode=mode, paths="/v1/orders")
        try:
            r = httpx.post(
                server.url + ORDERS,
                json={"amount": 10_000, "currency": "INR"},
                headers=auth(user),
                timeout=30,
            )
        finally:
            clear_faults(server)
        assert_problem(r, 503, "service_unavailable")
        assert int(r.headers["retry-after"]) >= 1
    assert httpx.get(server.url + ORDERS, headers=auth(user)).json()["orders"] == []


def test_health_and_openapi_are_served(server: Server) -> None:
    assert httpx.get(server.url + "/health/live").json() == {"status": "live"}
    ready = httpx.get(server.url + "/health/ready").json()
    assert ready["status"] == "ready" and ready["checks"]["ledger"] == "ok"
    assert httpx.head(server.url + "/health/live").status_code == 200
    assert httpx.head(server.url + "/health/ready").status_code == 200
    schema = httpx.get(server.url + "/schema/openapi.json").json()
    assert "/api/payments/orders" in schema["paths"]
