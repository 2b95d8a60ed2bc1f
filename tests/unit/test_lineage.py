"""Which MLflow record a stage writes into, and the experiment it lives in (a real SQLite store in tmp_path)."""

from __future__ import annotations

import json

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from ganops import artifacts, lineage, tracking


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    return uri


def test_experiments_open_on_the_training_view_old_ones_too(store, monkeypatch):
    mlflow.set_tracking_uri(store)
    older = mlflow.create_experiment("made-before", tags={"note": "kept"})  # as an older ganops created it
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "made-before")
    tracking.configure()
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "made-now")
    tracking.configure()
    client = MlflowClient(store)
    for experiment in (client.get_experiment(older), client.get_experiment_by_name("made-now")):
        assert experiment.tags[next(iter(tracking.EXPERIMENT_KIND))] == "custom_model_development"
    assert client.get_experiment(older).tags["note"] == "kept"


def test_a_dvc_experiment_is_keyed_and_named_by_its_name_and_baseline(monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "wider-net")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "abc123")
    assert lineage.execution_key() == "exp:wider-net@abc123" and lineage.record_name(commit="abc1234") == "wider-net"
    monkeypatch.delenv("DVC_EXP_NAME")
    assert lineage.execution_key().startswith("process:")  # pytest is not run by dvc: a record of its own


def test_stages_of_one_execution_share_a_record_and_another_execution_gets_its_own(store, tmp_path, monkeypatch):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    artifacts.write_dataset_info(prepared / artifacts.PreparedData.INFO_FILE, artifacts.DatasetInfo(
        source="digits", height=8, width=8, channels=1, num_classes=10, train_count=6, validation_count=2,
        test_count=2, data_hash="d" * 40))
    verdict = tmp_path / "validation.json"
    artifacts.write_json(verdict, {"success": True, "rows": 10, "checks": 30, "failed": 0, "failed_checks": ""})
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  epochs: 7\n  augment: [color, cutout]\n")
    inputs = lineage.Inputs(prepared=prepared, params=params, validation=verdict)

    monkeypatch.setenv("DVC_EXP_NAME", "first")
    with lineage.open_record(inputs) as active:  # e.g. train
        first = active.info.run_id
    with lineage.open_record(inputs) as active:  # e.g. evaluate, in the same execution
        assert active.info.run_id == first
    monkeypatch.setenv("DVC_EXP_NAME", "second")
    with lineage.open_record(inputs) as active:
        second = active.info.run_id
    assert second != first

    run = MlflowClient(store).get_run(first)
    assert run.info.run_name == "first" and run.data.tags[lineage.EXPERIMENT_TAG] == "first"
    assert run.data.params["train.epochs"] == "7" and run.data.params["validate.min_rows"] == "100"
    assert run.data.params["train.augment"] == '["color", "cutout"]'  # lists as JSON text
    inputs_by_context = {tag.value: dataset_input for dataset_input in run.inputs.dataset_inputs
                         for tag in dataset_input.tags if tag.key == "mlflow.data.context"}
    assert set(inputs_by_context) == {"training", "validation", "test"}
    test_input = inputs_by_context["test"]
    assert test_input.dataset.name == "digits-test" and test_input.dataset.digest == "d" * lineage.DIGEST_LENGTH
    assert {tag.key: tag.value for tag in test_input.tags}["ganops.validation.success"] == "true"
    assert json.loads(test_input.dataset.source) == {"uri": str(prepared / "test")}
