"""The ``payments`` command line as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import jwt

from tests.e2e.conftest import BIN, Server
from tests.support.simulator import RunningSimulator


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("APP_ENV", "DATABASE_", "JWT_", "RAZORPAY_"))
    }
    return subprocess.run(
        [str(BIN / "payments"), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_development_defaults_with_one_clear_line() -> None:
    result = run("serve", "--port", "1", env={"APP_ENV": "production"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: DATABASE_URL")


def test_a_bad_value_stops_start_up_naming_the_variable() -> None:
    result = run("serve", "--port", "1", env={"RAZORPAY_TIMEOUT_MS": "soon"})
    assert result.returncode == 2
    assert result.stderr.strip() == "configuration error: RAZORPAY_TIMEOUT_MS must be an integer, got 'soon'"


def test_token_command_signs_with_jwt_secret_and_the_given_claims() -> None:
    secret = "cli-test-secret-cli-test-secret-0123"
    result = run(
        "token",
        "--sub",
        "u-42",
        "--role",
        "admin",
        "--ttl",
        "120",
        "--session-id",
        "s-9",
        env={"JWT_SECRET": secret},
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])
    assert (claims["sub"], claims["role"], claims["session_id"]) == ("u-42", "admin", "s-9")
    assert claims["exp"] - claims["iat"] == 120


def test_help_lists_every_command() -> None:
    result = run("--help")
    for command in ("serve", "migrate", "token", "simulator", "worker"):
        assert command in result.stdout


def test_serve_in_development_prints_the_address_an_admin_token_and_a_curl_line(server: Server) -> None:
    logs = server.logs()
    assert f"Payments API on {server.url}" in logs
    token = next(line.split(": ", 1)[1] for line in logs.splitlines() if line.startswith("Admin token"))
    assert jwt.decode(token, options={"verify_signature": False})["role"] == "admin"
    curl = next(line for line in logs.splitlines() if line.startswith("Try: curl"))
    assert token in curl and f"{server.url}/api/payments/orders" in curl


def test_worker_command_runs_the_jobs_and_stops_cleanly_on_sigterm(
    tmp_path: Path, sim: RunningSimulator
) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.db'}",
        "RAZORPAY_BASE_URL": sim.base_url,
        "RAZORPAY_KEY_ID": sim.key_id,
        "RAZORPAY_KEY_SECRET": sim.key_secret,
        "WEBHOOK_WORKERS": "2",
        "PYTHONUNBUFFERED": "1",
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith(("APP_ENV", "DATABASE_", "RAZORPAY_"))}
    proc = subprocess.Popen(
        [str(BIN / "payments"), "worker"],
        env={**base, **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (tmp_path / "worker.db").exists():
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "workers started: webhook-retrier-1, webhook-retrier-2, reconciler, idempotency-purge" in out
    assert "Stopping queue workers..." in out
