"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.databases import NoPostgresServer, PostgresServer, resolve_postgres_server
from tests.support.simulator import RunningSimulator, razorpay_simulator

__all__ = ["razorpay_simulator"]  # the session-wide simulator fixture, registered for every test


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server of this run (TEST_DATABASE_URL, testcontainers, or the local one).

    Fails, never skips, when none is reachable.
    """
    try:
        server = resolve_postgres_server()
    except NoPostgresServer as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sim(razorpay_simulator: RunningSimulator) -> Iterator[RunningSimulator]:
    """The session's simulator with no fault injected before or after the test."""
    razorpay_simulator.clear_faults()
    yield razorpay_simulator
    razorpay_simulator.clear_faults()
