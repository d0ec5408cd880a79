"""Serve an ASGI app (by default the Razorpay simulator) with uvicorn in a background thread.

``razorpay_simulator`` is a session-scoped pytest fixture: import it into a ``conftest.py`` or a test
module (``from tests.support.simulator import razorpay_simulator``). It yields a
:class:`RunningSimulator` with the SDK-style ``base_url`` (no ``/v1``), the credentials, and helpers to
switch faults and drive Checkout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import uvicorn

from adapters.razorpay.simulator import create_simulator_app

SIM_KEY_ID = "rzp_test_simulator01"
SIM_KEY_SECRET = "sim_secret_0123456789abcdef"


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` on a free port of ``host``; yield ``http://host:port``; stop it afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class RunningSimulator:
    base_url: str  # like the SDK's base_url: without /v1
    key_id: str
    key_secret: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.key_id, self.key_secret)

    def set_fault(self, mode: str, **options: Any) -> None:
        """``options``: ``count``, ``latencyMs``, ``paths`` as the simulator's fault API takes them."""
        r = requests.post(f"{self.base_url}/_simulator/faults", json={"mode": mode, **options}, timeout=5)
        r.raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.base_url}/_simulator/faults", timeout=5).raise_for_status()

    def pay(self, order_id: str, outcome: str = "authorized", method: str = "card") -> dict[str, Any]:
        """What Checkout does in the browser; returns its JSON (the razorpay_* triple on success)."""
        r = requests.post(
            f"{self.base_url}/v1/checkout/pay",
            json={"order_id": order_id, "outcome": outcome, "method": method},
            timeout=5,
        )
        body: dict[str, Any] = r.json()
        return body

    def force_status(self, payment_id: str, status: str) -> dict[str, Any]:
        r = requests.post(
            f"{self.base_url}/_simulator/payments/{payment_id}/status", json={"status": status}, timeout=5
        )
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A raw authenticated call to the simulator's Razorpay API."""
        return requests.request(method, f"{self.base_url}{path}", auth=self.auth, timeout=5, **kwargs)


@pytest.fixture(scope="session")
def razorpay_simulator() -> Iterator[RunningSimulator]:
    app = create_simulator_app(SIM_KEY_ID, SIM_KEY_SECRET)
    with serve_in_thread(app) as base_url:
        sim = RunningSimulator(base_url, SIM_KEY_ID, SIM_KEY_SECRET)
        yield sim
        sim.clear_faults()
