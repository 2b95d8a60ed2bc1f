"""Fixtures for the registry tests: a real SQLite store per test and a tiny real generator."""

from __future__ import annotations

import pytest
from registry_helpers import empty_store_template, save_tiny_generator, store  # noqa: F401


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    return save_tiny_generator(tmp_path_factory.mktemp("generator") / "generator.keras")
