"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.databases import NoPostgresServer, PostgresServer, resolve_postgres_server


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
