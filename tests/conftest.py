"""Shared fixtures: small real inputs (never mocks of what we ship)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganops import startup

# Before TensorFlow or GX load anywhere in the test session: the entry points' environment and quiet start-up.
startup.setup()

REPO_ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO_ROOT.parent / "shared" / "data" / "mnist-t10k"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def prepared_digits(tmp_path_factory) -> Path:
    """A real prepared folder: 300 built-in digits through the prepare stage's library function."""
    from ganops.config import DataConfig
    from ganops.data import prepare

    out = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare.run(DataConfig(max_images=300), out)
    return out


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    """A real SQLite MLflow store in tmp_path, selected the way users select a server."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return uri
