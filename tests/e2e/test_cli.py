"""The ``payments`` command line as a user runs it."""

from __future__ import annotations

import os
import subprocess

import jwt

from tests.e2e.conftest import BIN, Server


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
