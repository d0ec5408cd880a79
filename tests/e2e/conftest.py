"""The real server process over HTTP: ``payments serve`` started as a subprocess on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.databases import (
    PostgresServer,
    create_database,
    drop_database,
    run_sync,
    unique_database_name,
)

BIN = Path(sys.executable).parent
WEBHOOK_SECRET = "e2e-webhook-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path

    def token(self, sub: str, *extra: str) -> str:
        """A token from the real ``payments token`` command, with the server's configuration."""
        out = subprocess.run(
            [str(BIN / "payments"), "token", "--sub", sub, *extra],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return out.stdout.strip()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(tmp: Path, extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "JWT_", "RAZORPAY_", "APP_ENV", "PUBLIC_URL"))
    }
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp / 'e2e.db'}",
            "JWT_SECRET": "e2e-test-secret-that-is-long-enough-0123456789",
            "RAZORPAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "RAZORPAY_TIMEOUT_MS": "3000",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    log_path = tmp / f"server-{port}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(BIN / "payments"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                return Server(url, env, proc, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not become ready:\n{log_path.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("e2e"))
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> Iterator[Server]:
    """The server on a PostgreSQL database of its own, migrated with the real ``payments migrate``."""
    name = unique_database_name("payments_e2e")
    url = run_sync(lambda: create_database(postgres_server.url, name))
    try:
        env = {**os.environ, "DATABASE_URL": url}
        migrated = subprocess.run(
            [str(BIN / "payments"), "migrate"], env=env, capture_output=True, text=True, timeout=120
        )
        assert migrated.returncode == 0, migrated.stderr
        srv = start_server(tmp_path_factory.mktemp("e2e-pg"), {"DATABASE_URL": url, "AUTO_MIGRATE": "false"})
        try:
            yield srv
        finally:
            stop_server(srv)
    finally:
        run_sync(lambda: drop_database(postgres_server.url, name))
