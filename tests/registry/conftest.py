"""Fixtures for the registry tests: a tiny real generator (the store fixtures live in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.helpers import save_tiny_generator


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    return save_tiny_generator(tmp_path_factory.mktemp("generator") / "generator.keras")
