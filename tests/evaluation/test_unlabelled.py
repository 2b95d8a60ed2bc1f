"""Unlabelled data: the featurize stage trains an autoencoder; evaluate and the report say which metrics
they omit and why."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np

from ganops import artifacts, imaging
from ganops.evaluation import evaluate, report
from ganops.features import featurizer
from tests.helpers import shrunk_params


def test_unlabelled_data_gets_an_autoencoder_and_omits_class_metrics(prepared_digits, tmp_path):
    unlabelled = tmp_path / "prepared"
    shutil.copytree(prepared_digits, unlabelled)
    for name in artifacts.PreparedData.SPLIT_FILES.values():
        split = artifacts.read_split(unlabelled / name)
        artifacts.write_split(unlabelled / name, artifacts.Split(split.images, None))
    info = artifacts.read_dataset_info(unlabelled / artifacts.PreparedData.INFO_FILE)
    artifacts.write_dataset_info(unlabelled / artifacts.PreparedData.INFO_FILE, dataclasses.replace(info, num_classes=0))

    params = shrunk_params(featurize={"epochs": 5})
    summary = featurizer.run(params.featurize, unlabelled, tmp_path / "ae.keras",
                             tmp_path / "featurizer.json")
    assert summary["kind"] == "autoencoder" and 0.0 < summary["validation_reconstruction_mse"] < 1.0
    assert "validation_accuracy" not in json.loads((tmp_path / "featurizer.json").read_text())
    autoencoder = featurizer.load(tmp_path / "ae.keras")
    assert autoencoder.kind == "autoencoder" and autoencoder.hash == summary["hash"]

    splits = {name: artifacts.read_split(unlabelled / file_name) for name, file_name in artifacts.PreparedData.SPLIT_FILES.items()}
    train, test = splits["train"], splits["test"]
    evaluation = evaluate.compute(params.evaluate, train.images[:len(test)],
                                  train, test, splits["validation"], autoencoder)
    metrics = evaluation.metrics
    assert metrics["featurizer"] == "autoencoder" and evaluation.class_table is None
    assert set(metrics["omitted"]) == {"classifier_score", "class_coverage", "class_entropy",
                                       "conditional_accuracy", "cas"}
    assert all("unlabelled" in why for why in metrics["omitted"].values())
    assert not any(key.startswith("class") for key in metrics)
    assert metrics["copying"] == 1.0 and np.isfinite(metrics["fd"]) and metrics["real"]["fd"] > 0

    # The report says which metrics were omitted and why, instead of leaving them out silently.
    imaging.save_png(tmp_path / "samples.png", imaging.grid(evaluation.generated.signed(np.arange(16))))
    page = report.render(report.Context(
        run_id="r", metrics=metrics, champion=None, samples=tmp_path / "samples.png", class_grid=None,
        neighbours=None, class_table=None, neighbour_distances=evaluation.neighbours[2],
        history=tmp_path / "absent.csv", conditional=False))
    assert page.count("omitted: unlabelled data") == 5 and "<h2>Classes</h2>" not in page
