"""Fixtures for the registry tests: a real SQLite store (the shared `mlflow_store`) and a tiny generator."""

from __future__ import annotations

import pytest
from registry_helpers import save_tiny_generator


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    return save_tiny_generator(tmp_path_factory.mktemp("generator") / "generator.keras")
