"""One real `mlflow models serve` of a tiny champion (limit `LIMIT` images a request) on a free localhost
port, started once for all serving tests: starting it costs far more than the tests that use it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import NamedTuple

import psutil
import pytest

from ganops.config import RegisterConfig
from tests.helpers import VENV_BIN, clean_env, free_port, metrics, register_version, save_tiny_generator, server

LIMIT = 16


class Served(NamedTuple):
    base_url: str  # http://127.0.0.1:port
    process: psutil.Process  # `mlflow models serve`; its uvicorn worker is a child
    local: object  # the same registered version loaded in this process (mlflow.pyfunc.PyFuncModel)


@pytest.fixture(scope="package")
def champion_server(tmp_path_factory, empty_store_template) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serving")
    shutil.copy(empty_store_template, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        register_version(save_tiny_generator(root / "generator.keras"), metrics(2.0),
                         RegisterConfig(max_images_per_request=LIMIT))
        from ganops.registry import serving

        local = serving.load("models:/gan-generator@champion")
        port = free_port()
        command = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/gan-generator@champion",
                   "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
        with server(command, f"http://127.0.0.1:{port}/ping", clean_env(MLFLOW_TRACKING_URI=uri),
                    root / "serve.log", timeout=120) as process:
            yield Served(f"http://127.0.0.1:{port}", psutil.Process(process.pid), local)
