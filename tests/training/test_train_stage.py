"""The train stage's library function inside the pipeline: a conditional mlp GAN trains, is evaluated and
registered, and the registered model generates images of a requested class."""

from __future__ import annotations

import json

import keras
import mlflow
import numpy as np
import pandas as pd
import yaml

from ganops import artifacts, lineage
from ganops.config import RegisterConfig
from ganops.data import prepare
from ganops.evaluation import evaluate
from ganops.features import featurizer
from ganops.registry import registration, serving
from ganops.training import train
from tests.helpers import shrunk_params
from tests.model.test_resnet import coloured_squares


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
    assert said[0] == ("train: arch auto -> mlp (gray images); augment auto -> none (195 training images; "
                       "auto leaves the mlp arch unaugmented)")
    assert said[1].startswith("train: 1× cpu") and len(said) == 2
    assert result.steps == 3 * (195 // 32) and not result.stopped_by_budget
    assert list(pd.read_csv(models / artifacts.ModelFolder.HISTORY_FILE)["epoch"]) == [1, 2, 3]
    record = json.loads((checkpoints / "mlflow_run.json").read_text())
    assert record["finished"] and record["run_id"] == json.loads((models / artifacts.ModelFolder.RUN_FILE).read_text())["run_id"]

    run = mlflow.get_run(record["run_id"])
    assert run.data.params["train.arch"] == "auto" and run.data.params["resolved.arch"] == "mlp"
    assert run.data.params["runtime.precision"] == "float32"
    assert run.data.params["train.augment"] == "auto" and run.data.params["resolved.augment"] == "none"
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


def test_the_defaults_choose_a_dcgan_with_augmentation_on_a_small_rgb_set(tmp_path, store):
    """`arch: auto` and `augment: auto` (the defaults) on a few 16×16 RGB images: the stage says what it chose
    and why, trains a dcgan whose D sees DiffAugmented images, and MLflow records the choices beside the
    `auto` params."""
    images, labels = coloured_squares(96, 16)
    np.savez(tmp_path / "squares.npz", x=images, y=labels)
    params = shrunk_params(data={"source": "npz", "path": str(tmp_path / "squares.npz"), "image_size": 16,
                                 "channels": 3},
                           train={"epochs": 1, "batch_size": 8, "monitor_every_epochs": None})
    assert params.train.arch == params.train.augment == "auto"
    prepared = tmp_path / "prepared"
    info = prepare.run(params.data, prepared)
    said = []
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump({"train": params.train.model_dump(mode="json")}))
    result = train.run(params.train, prepared, tmp_path / "models" / "gan", params_path=params_path,
                       say=said.append)
    assert said[0] == (f"train: arch auto -> dcgan (RGB at 16 px or more); augment auto -> color, translation "
                       f"({info.train_count} training images; fewer than 5,000)")
    assert isinstance(result.gan.generator.get_layer("images"), keras.layers.Conv2DTranspose)  # the dcgan's
    assert result.gan.augment_policy == ("color", "translation")
    run_file = tmp_path / "models" / "gan" / artifacts.ModelFolder.RUN_FILE
    run = mlflow.get_run(json.loads(run_file.read_text())["run_id"])
    assert run.data.params["train.arch"] == run.data.params["train.augment"] == "auto"
    assert run.data.params["resolved.arch"] == "dcgan"
    assert run.data.params["resolved.augment"] == "color,translation"
    assert run.data.params["resolved.d_dropout"] == "0.0"  # DiffAugment replaces D's dropout
