"""Shared fixtures: small real inputs (never mocks of what we ship)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ganops import startup
from tests.helpers import REPO_ROOT, shrunk_params

# Before TensorFlow or GX load anywhere in the test session: the entry points' environment and quiet start-up.
startup.setup()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def prepare_digits(tmp_path_factory) -> Callable[..., Path]:
    """The built-in digits through the prepare stage's library function, once per session for each `data`
    override of the shrunk config: `prepare_digits(max_images=200)`. The folders are shared: copy one to
    tamper with it."""
    from ganops.data import prepare

    prepared: dict[str, Path] = {}

    def prepared_for(**data) -> Path:
        cfg = shrunk_params(data=data).data
        assert cfg.source == "digits", "prepare_digits prepares the built-in digits only"
        key = cfg.model_dump_json()
        if key not in prepared:
            out = tmp_path_factory.mktemp("prepared") / "prepared"
            prepare.run(cfg, out)
            prepared[key] = out
        return prepared[key]

    return prepared_for


@pytest.fixture(scope="session")
def prepared_digits(prepare_digits) -> Path:
    """The shrunk config's 300 built-in digits, prepared: 195 train, 45 validation, 60 test."""
    return prepare_digits()


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    """A real SQLite MLflow store in tmp_path, selected the way users select a server."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return uri


@pytest.fixture(scope="session")
def empty_store_template(tmp_path_factory) -> Path:
    """An MLflow SQLite file with its schema created once: migrating a fresh file takes seconds."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(empty_store_template, tmp_path, monkeypatch) -> str:
    """A real, empty SQLite MLflow store in tmp_path (copied from the migrated template), selected the way
    users select a server."""
    path = tmp_path / "mlflow.db"
    shutil.copy(empty_store_template, path)
    uri = f"sqlite:///{path}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return uri
