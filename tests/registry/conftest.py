"""Fixtures for the registry tests: a tiny real generator and a throw-away PostgreSQL cluster (the store fixtures
live in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.helpers import postgres, save_tiny_generator


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    return save_tiny_generator(tmp_path_factory.mktemp("generator") / "generator.keras")


@pytest.fixture(scope="session")
def postgres_cluster():
    """A real PostgreSQL cluster on 127.0.0.1 for the session (`.create_database(name)` returns its URI);
    skipped, with the reason, where PostgreSQL or psycopg2 is not installed."""
    reason = postgres.missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres.cluster() as cluster:
        yield cluster
