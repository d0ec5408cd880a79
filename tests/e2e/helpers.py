"""Small HTTP helpers for the e2e tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import Server

SIM = "/_simulator"


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def create_order(server: Server, token: str, amount: int = 50_000, **extra: Any) -> dict[str, Any]:
    r = httpx.post(
        f"{server.url}/api/payments/orders",
        json={"amount": amount, "currency": "INR", **extra},
        headers=auth(token),
        timeout=30,
    )
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()["order"]
    return order


def checkout(server: Server, gateway_order_id: str, outcome: str = "authorized") -> dict[str, str]:
    """What the browser does with Razorpay Checkout: pay, and get the three razorpay_* fields."""
    r = httpx.post(
        f"{server.url}{SIM}/v1/checkout/pay",
        json={"order_id": gateway_order_id, "outcome": outcome},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text
    fields: dict[str, str] = r.json()
    return fields


def paid_order(server: Server, token: str, amount: int = 50_000) -> dict[str, Any]:
    order = create_order(server, token, amount)
    fields = checkout(server, order["gatewayOrderId"])
    r = httpx.post(f"{server.url}/api/payments/verify", json=fields, headers=auth(token), timeout=30)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()["order"]
    return result


def set_fault(server: Server, **fault: Any) -> None:
    r = httpx.post(f"{server.url}{SIM}{SIM}/faults", json=fault, timeout=10)
    assert r.status_code in (200, 201, 204), r.text


def clear_faults(server: Server) -> None:
    r = httpx.delete(f"{server.url}{SIM}{SIM}/faults", timeout=10)
    assert r.status_code in (200, 204), r.text
