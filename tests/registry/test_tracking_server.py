"""The register and promote steps against a real `mlflow server` (SQLite backend, proxied artifact store,
free localhost port): what a team's shared server looks like, selected only by MLFLOW_TRACKING_URI."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from ganops import artifacts, lineage, tracking
from ganops.cli import app
from ganops.config import RegisterConfig
from ganops.registry import registration, serving
from tests.helpers import (
    IMAGE_SHAPE,
    VENV_BIN,
    clean_env,
    free_port,
    metrics,
    save_tiny_generator,
    server,
    synthetic_paired,
    write_params,
    write_prepared_info,
)


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    port = free_port()
    command = [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'backend.db'}",
               "--artifacts-destination", (root / "artifacts").as_uri(), "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    with server(command, f"http://127.0.0.1:{port}/health", clean_env(), root / "server.log", timeout=120):
        yield f"http://127.0.0.1:{port}", root / "artifacts"


def stage_outputs(folder, fd_ratio):
    """What train and evaluate leave for register: the generator, the run id, the metrics, the paired evidence."""
    folder.mkdir()
    save_tiny_generator(folder / "generator.keras")
    tracking.configure()
    with mlflow.start_run(run_name=folder.name) as active:
        mlflow.log_params({"train.arch": "mlp"})
    artifacts.write_record(artifacts.ModelFolder(folder).run_path, artifacts.TrainingRun(
        run_id=active.info.run_id, steps=1, seconds=1.0, stopped_by_budget=False))
    write_prepared_info(folder / "prepared")
    (folder / "metrics.json").write_text(json.dumps(metrics(fd_ratio)))
    (folder / "paired.json").write_text(json.dumps(synthetic_paired(2.0 * fd_ratio)))
    return folder


def test_register_and_promote_against_a_tracking_server(tracking_server, tmp_path, monkeypatch):
    url, artifacts_dir = tracking_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    cfg = RegisterConfig(max_images_per_request=8)

    for name, fd_ratio in (("first", 3.0), ("second", 2.0)):
        outputs = stage_outputs(tmp_path / name, fd_ratio)
        registration.run(cfg, outputs, outputs / "metrics.json", outputs / "paired.json", outputs / "registered.json",
                     lineage.Inputs(prepared=outputs / "prepared"))

    result = CliRunner().invoke(app, ["promote", "--params", str(write_params(tmp_path / "params.yaml"))])
    assert result.exit_code == 0, result.output
    assert "promoted gan-generator v2 to champion (was v1)" in result.output

    client = tracking.client()
    aliases = client.get_registered_model("gan-generator").aliases
    assert {alias: str(version) for alias, version in aliases.items()} == {"candidate": "2", "champion": "2"}
    version = client.get_model_version("gan-generator", "2")
    assert version.tags["metric.fd_ratio"] == "2.0" and version.tags["data_hash"] == "d" * 40
    # Artifacts went through the server into its artifact store, and load back from there.
    assert any(artifacts_dir.rglob("generator.keras"))
    champion = serving.load("models:/gan-generator@champion")
    assert champion.predict(pd.DataFrame([{"n": 2.0}])).shape == (2, *IMAGE_SHAPE)
