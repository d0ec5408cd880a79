"""Razorpay webhooks through the real server: signed raw bytes, durable inbox, exactly-once effects."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx

from domain.signatures import webhook_signature
from tests.e2e.conftest import WEBHOOK_SECRET, Server
from tests.e2e.helpers import SIM, auth, create_order

HOOK = "/api/payments/webhooks/razorpay"


def payment_event(event: str, payment_id: str, order_id: str, amount: int, status: str) -> bytes:
    entity = {
        "id": payment_id,
        "entity": "payment",
        "amount": amount,
        "currency": "INR",
        "status": status,
        "order_id": order_id,
        "method": "upi",
        "captured": status == "captured",
        "notes": [],
        "fee": 1180 if status == "captured" else 0,
        "tax": 180 if status == "captured" else 0,
        "amount_refunded": 0,
        "error_code": None,
        "created_at": int(time.time()),
    }
    doc = {
        "entity": "event",
        "account_id": "acc_e2e",
        "event": event,
        "contains": ["payment"],
        "payload": {"payment": {"entity": entity}},
        "created_at": int(time.time()),
    }
    return json.dumps(doc, ensure_ascii=False).encode()


def deliver(server: Server, body: bytes, event_id: str, secret: str = WEBHOOK_SECRET) -> httpx.Response:
    return httpx.post(
        server.url + HOOK,
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Razorpay-Signature": webhook_signature(body, secret),
            "X-Razorpay-Event-Id": event_id,
        },
        timeout=30,
    )


def order_of(server: Server, token: str, order_id: str) -> dict[str, Any]:
    got: dict[str, Any] = httpx.get(
        f"{server.url}/api/payments/orders/{order_id}", headers=auth(token)
    ).json()
    return got["order"]


def test_captured_webhook_pays_the_order_once_even_when_redelivered(server: Server) -> None:
    user = server.token("hook-user-1")
    order = create_order(server, user, 25_000)
    pay = httpx.post(f"{server.url}{SIM}/v1/checkout/pay", json={"order_id": order["gatewayOrderId"]}).json()
    body = payment_event(
        "payment.captured", pay["razorpay_payment_id"], order["gatewayOrderId"], 25_000, "captured"
    )
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    first = deliver(server, body, event_id)
    assert first.status_code == 200 and first.json() == {"success": True, "duplicate": False}
    again = deliver(server, body, event_id)
    assert again.status_code == 200 and again.json() == {"success": True, "duplicate": True}
    got = order_of(server, user, order["id"])
    assert got["status"] == "paid" and got["amountPaid"] == 25_000
    admin = server.token("hook-admin", "--role", "admin")
    journal = httpx.get(f"{server.url}/api/payments/admin/ledger/balance", headers=auth(admin)).json()
    assert journal["balances"]["INR"]["total"] == 0


def test_failed_payment_webhook_leaves_the_order_attempted(server: Server) -> None:
    user = server.token("hook-user-2")
    order = create_order(server, user)
    r = httpx.post(
        f"{server.url}{SIM}/v1/checkout/pay", json={"order_id": order["gatewayOrderId"], "outcome": "failed"}
    )
    payment_id = r.json()["error"]["metadata"]["payment_id"]
    body = payment_event("payment.failed", payment_id, order["gatewayOrderId"], order["amount"], "failed")
    assert deliver(server, body, f"evt_{uuid.uuid4().hex[:14]}").status_code == 200
    got = order_of(server, user, order["id"])
    assert got["status"] == "attempted" and got["payments"][0]["status"] == "failed"


def test_bad_signature_is_400_and_stores_nothing(server: Server) -> None:
    user = server.token("hook-user-3")
    order = create_order(server, user)
    body = payment_event(
        "payment.captured", "pay_E2Enotstored01", order["gatewayOrderId"], order["amount"], "captured"
    )
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    r = deliver(server, body, event_id, secret="not-the-webhook-secret")
    assert r.status_code == 400 and r.json()["code"] == "signature_invalid"
    tampered = body.replace(b'"amount": ', b'"amount":  ', 1)
    r = httpx.post(
        server.url + HOOK,
        content=tampered,
        headers={
            "X-Razorpay-Signature": webhook_signature(body, WEBHOOK_SECRET),
            "X-Razorpay-Event-Id": event_id,
        },
    )
    assert r.status_code == 400 and r.json()["code"] == "signature_invalid"
    assert order_of(server, user, order["id"])["status"] == "created"
    admin = server.token("hook-admin", "--role", "admin")
    events = httpx.get(f"{server.url}/api/payments/admin/webhook-events", headers=auth(admin)).json()[
        "events"
    ]
    assert event_id not in {e["id"] for e in events}


def test_unknown_event_types_and_orders_are_stored_ignored_and_visible_to_admins(server: Server) -> None:
    admin = server.token("hook-admin", "--role", "admin")
    unknown_type = json.dumps(
        {"entity": "event", "event": "payment.dispute.created", "payload": {}, "created_at": 1}
    ).encode()
    unknown_order = payment_event(
        "payment.captured", "pay_E2Eunknown0001", "order_E2Enotours0001", 10_000, "captured"
    )
    ids = [f"evt_{uuid.uuid4().hex[:14]}", f"evt_{uuid.uuid4().hex[:14]}"]
    for body, eid in zip((unknown_type, unknown_order), ids, strict=True):
        assert deliver(server, body, eid).status_code == 200
    r = httpx.get(
        f"{server.url}/api/payments/admin/webhook-events",
        params={"status": "ignored", "limit": 100},
        headers=auth(admin),
    )
    assert r.status_code == 200
    stored = {e["id"]: e for e in r.json()["events"]}
    assert set(ids) <= stored.keys()
    assert stored[ids[0]]["eventType"] == "payment.dispute.created"
    user = server.token("hook-user-4")
    r = httpx.get(f"{server.url}/api/payments/admin/webhook-events", headers=auth(user))
    assert r.status_code == 403
    r = httpx.post(f"{server.url}/api/payments/admin/webhook-events/{ids[1]}/redrive", headers=auth(admin))
    assert r.status_code == 200 and r.json()["event"]["status"] == "ignored"


def test_webhook_body_over_the_limit_is_413_and_stores_nothing(server: Server) -> None:
    body = b'{"event": "payment.captured", "pad": "' + b"x" * (1024 * 1024) + b'"}'
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    r = deliver(server, body, event_id)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    admin = server.token("hook-admin", "--role", "admin")
    events = httpx.get(
        f"{server.url}/api/payments/admin/webhook-events", params={"limit": 100}, headers=auth(admin)
    ).json()["events"]
    assert event_id not in {e["id"] for e in events}
