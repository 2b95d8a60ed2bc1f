"""The train stage's library function inside the pipeline: a conditional mlp GAN trains, is evaluated and
registered, and the registered model generates images of a requested class."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import yaml

from ganops import artifacts, lineage
from ganops.config import RegisterConfig
from ganops.evaluation import evaluate
from ganops.features import featurizer
from ganops.registry import registration, serving
from ganops.training import train
from tests.helpers import shrunk_params


def test_conditional_mlp_trains_evaluates_and_registers(prepared_digits, tmp_path, mlflow_store):
    params = shrunk_params(train={"conditional": True, "epochs": 3, "checkpoint_every_steps": 10,
                                  "sample_every_epochs": 1, "spectral_norm": True, "monitor_every_epochs": 2})
    cfg = params.train
    models, checkpoints = tmp_path / "models" / "gan", tmp_path / "models" / "checkpoints"
    featurizer.run(params.featurize, prepared_digits, tmp_path / "featurizer.keras",
                   tmp_path / "featurizer.json")
    said = []
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump({"train": cfg.model_dump(mode="json")}))
    result = train.run(cfg, prepared_digits, models, checkpoints, featurizer_path=tmp_path / "featurizer.keras",
                       params_path=params_path, say=said.append)
    assert said[0].startswith("train: 1× cpu") and len(said) == 1
    assert result.steps == 3 * (195 // 32) and not result.stopped_by_budget
    assert list(pd.read_csv(models / artifacts.ModelFolder.HISTORY_FILE)["epoch"]) == [1, 2, 3]
    record = json.loads((checkpoints / "mlflow_run.json").read_text())
    assert record["finished"] and record["run_id"] == json.loads((models / artifacts.ModelFolder.RUN_FILE).read_text())["run_id"]

    run = mlflow.get_run(record["run_id"])
    assert run.data.params["train.arch"] == "mlp" and run.data.params["runtime.precision"] == "float32"
    assert run.data.params["runtime.device"] == "cpu" and run.data.params["runtime.jit_compile"] == "False"
    assert run.data.params["train.r1_weight"] == "None" and run.data.params["resolved.r1_weight"] == "1.0"
    history = mlflow.tracking.MlflowClient().get_metric_history(record["run_id"], "d_loss")
    assert [m.step for m in history] == [1, 2, 3]

    metrics = evaluate.run(params.evaluate, prepared_digits,
                           models, tmp_path / "featurizer.keras", tmp_path / "metrics.json", tmp_path / "samples.png",
                           paired_path=tmp_path / "paired.json")
    assert metrics["fd"] > 0 and metrics["num_samples"] == 60
    # The monitor measures on the validation split (test stays unseen until evaluate), every 2 epochs and at the end.
    monitored = mlflow.tracking.MlflowClient().get_metric_history(record["run_id"], "monitor.fd_ratio")
    assert [m.step for m in monitored] == [2, 3] and all(np.isfinite(m.value) and m.value > 0 for m in monitored)
    registered = registration.run(RegisterConfig(), models, tmp_path / "metrics.json", tmp_path / "paired.json",
                              tmp_path / "registered.json", lineage.Inputs(prepared=prepared_digits))
    # One process, one execution: evaluate and register wrote into the record train started.
    assert registered["run_id"] == record["run_id"]
    assert len(mlflow.tracking.MlflowClient().get_metric_history(record["run_id"], "eval.fd")) == 1
    model = serving.load(f"models:/{registered['name']}@{registered['alias']}")
    images = model.predict(pd.DataFrame([{"n": 3.0, "seed": 1.0, "label": 4.0}]))
    assert np.asarray(images).shape == (3, 8, 8, 1)
