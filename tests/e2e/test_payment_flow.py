"""The whole flow through the real server process: token, order, Checkout, verify, refunds, ledger."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.e2e.helpers import auth, checkout, create_order


@pytest.fixture(params=["sqlite", "postgresql"])
def any_server(request: pytest.FixtureRequest) -> Server:
    """The same flow on the embedded SQLite default and on PostgreSQL."""
    fixture = "server" if request.param == "sqlite" else "pg_server"
    srv: Server = request.getfixturevalue(fixture)
    return srv


def test_order_to_full_refund_through_http_with_balanced_ledger(any_server: Server) -> None:
    server = any_server
    user = server.token("user-flow")
    admin = server.token("admin-flow", "--role", "admin")

    order = create_order(server, user, 50_000, receipt="rcpt-1", notes={"sku": "book"})
    assert order["status"] == "created" and order["amount"] == 50_000 and order["keyId"]
    assert order["gatewayOrderId"].startswith("order_") and order["notes"] == {"sku": "book"}

    fields = checkout(server, order["gatewayOrderId"])
    r = httpx.post(f"{server.url}/api/payments/verify", json=fields, headers=auth(user))
    assert r.status_code == 200, r.text
    paid = r.json()["order"]
    assert paid["status"] == "paid" and paid["amountPaid"] == 50_000
    assert paid["payments"][0]["id"] == fields["razorpay_payment_id"]
    assert paid["payments"][0]["status"] == "captured" and paid["payments"][0]["capturedAt"]

    # Verifying again changes nothing.
    again = httpx.post(f"{server.url}/api/payments/verify", json=fields, headers=auth(user))
    assert again.status_code == 200 and again.json()["order"]["amountPaid"] == 50_000

    r = httpx.post(
        f"{server.url}/api/payments/orders/{order['id']}/refunds",
        json={"amount": 20_000},
        headers=auth(admin),
    )
    assert r.status_code == 201, r.text
    refund = r.json()["refund"]
    assert refund["id"].startswith("rfnd_") and refund["amount"] == 20_000
    assert refund["paymentId"] == fields["razorpay_payment_id"]

    got = httpx.get(f"{server.url}/api/payments/orders/{order['id']}", headers=auth(user)).json()["order"]
    assert got["status"] == "partially_refunded" and got["amountRefunded"] == 20_000

    r = httpx.post(f"{server.url}/api/payments/orders/{order['id']}/refunds", json={}, headers=auth(admin))
    assert r.status_code == 201, r.text
    assert r.json()["refund"]["amount"] == 30_000  # default: all that is left

    got = httpx.get(f"{server.url}/api/payments/orders/{order['id']}", headers=auth(admin)).json()["order"]
    assert got["status"] == "refunded" and got["amountRefunded"] == 50_000 and len(got["refunds"]) == 2

    r = httpx.post(
        f"{server.url}/api/payments/orders/{order['id']}/refunds", json={"amount": 100}, headers=auth(admin)
    )
    assert r.status_code == 422 and r.json()["code"] == "refund_exceeds_captured"
    r = httpx.post(f"{server.url}/api/payments/orders/{order['id']}/refunds", json={}, headers=auth(admin))
    assert r.status_code == 409 and r.json()["code"] == "invalid_state"

    bal = httpx.get(f"{server.url}/api/payments/admin/ledger/balance", headers=auth(admin))
    assert bal.status_code == 200
    inr = bal.json()["balances"]["INR"]
    assert inr["total"] == 0
    assert inr["accounts"]["sales"] <= -50_000 and inr["accounts"]["refunds"] >= 50_000


def test_orders_list_shows_only_own_orders_with_cursor_pagination(server: Server) -> None:
    alice, bob = server.token("alice-list"), server.token("bob-list")
    mine = [create_order(server, alice, 10_000 + i)["id"] for i in range(3)]
    create_order(server, bob, 20_000)
    r = httpx.get(f"{server.url}/api/payments/orders", params={"limit": 2}, headers=auth(alice))
    assert r.status_code == 200
    first = r.json()
    assert len(first["orders"]) == 2 and first["nextCursor"]
    r2 = httpx.get(
        f"{server.url}/api/payments/orders",
        params={"limit": 2, "cursor": first["nextCursor"]},
        headers=auth(alice),
    )
    ids = [o["id"] for o in first["orders"]] + [o["id"] for o in r2.json()["orders"]]
    assert sorted(ids) == sorted(mine) and ids[0] == mine[-1]


def test_a_customer_who_pays_twice_is_charged_once(server: Server) -> None:
    user = server.token("user-twice")
    order = create_order(server, user, 30_000)
    first, second = checkout(server, order["gatewayOrderId"]), checkout(server, order["gatewayOrderId"])
    ok = httpx.post(f"{server.url}/api/payments/verify", json=first, headers=auth(user))
    assert ok.status_code == 200 and ok.json()["order"]["amountPaid"] == 30_000
    refused = httpx.post(f"{server.url}/api/payments/verify", json=second, headers=auth(user))
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_state"
    got = httpx.get(f"{server.url}/api/payments/orders/{order['id']}", headers=auth(user)).json()["order"]
    assert got["amountPaid"] == 30_000
    statuses = {p["id"]: p["status"] for p in got["payments"]}
    assert statuses == {first["razorpay_payment_id"]: "captured", second["razorpay_payment_id"]: "authorized"}
