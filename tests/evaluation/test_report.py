"""The evaluate stage's library function end to end: a tiny conditional GAN trained for real, its metrics,
figures and HTML report, logged to the training run; then again with a champion in the registry."""

from __future__ import annotations

import base64
import json
import re

import mlflow
import numpy as np
import pandas as pd
import pytest

from ganops import artifacts, imaging, lineage
from ganops.config import RegisterConfig
from ganops.evaluation import evaluate, report
from ganops.registry import registration
from ganops.registry.champion import summary as champion_summary
from ganops.training import train
from tests.helpers import shrunk_params

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _evaluate(paths, prepared, featurizer_path, register_cfg=None):
    """The evaluate stage as its entry point runs it: the champion looked up in the registry, then passed in."""
    champion = champion_summary(register_cfg) if register_cfg is not None else None
    return evaluate.run(shrunk_params(evaluate={"kid_subsets": 10}).evaluate, prepared,
                        paths / "models", featurizer_path, paths / "metrics.json", paths / "samples.png",
                        paired_path=paths / "paired.json", figures_dir=paths / "evaluation", report_path=paths / "report.html",
                        champion=champion)


def _images(page: str) -> list[str]:
    return re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)


@pytest.fixture
def trained(prepared_digits, tmp_path, mlflow_store):
    cfg = shrunk_params(train={"conditional": True, "sample_every_epochs": 1, "monitor_every_epochs": None}).train
    train.run(cfg, prepared_digits, tmp_path / "models", tmp_path / "checkpoints", say=lambda _: None)
    return tmp_path


def test_report_is_self_contained_and_shows_metrics_figures_and_champion(trained, prepared_digits,
                                                                        digits_featurizer_path):
    metrics = _evaluate(trained, prepared_digits, digits_featurizer_path, RegisterConfig())
    assert json.loads((trained / "metrics.json").read_text()) == metrics
    assert 0.0 <= metrics["conditional_accuracy"] <= 1.0 and "omitted" not in metrics
    table = pd.read_csv(trained / "evaluation" / evaluate.CLASS_HISTOGRAM_FILE)
    assert list(table.columns) == ["class", "generated", "real", "test", "accuracy", "accuracy_real"]
    assert len(table) == 10 and table["generated"].sum() == pytest.approx(1.0)

    page = (trained / "report.html").read_text()
    # Nothing to fetch: no scripts, stylesheets or fonts, and every image inline.
    assert not re.search(r'(src|href)\s*=\s*"?(https?:)?//', page, re.IGNORECASE)
    assert not re.search(r"<script|<link|@import|url\(", page, re.IGNORECASE)
    images = _images(page)
    # Samples, loss curves, class grid, class histogram, per-class accuracy, nearest neighbours.
    assert len(images) == 6
    for uri in images:
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.removeprefix("data:image/png;base64,")).startswith(PNG_MAGIC)
    for text in ("Fréchet distance", "Kernel distance", "copying", "conditional_accuracy", "Pixel Gaussian",
                 "Noisy train", "Real (floor)", "Nearest training neighbours", "No champion in the registry yet"):
        assert text in page
    # Each metric beside its floor and the baselines, with its interval.
    for value in (metrics["real"]["fd"], metrics["pixel_gaussian"]["fd"], metrics["noisy_train"]["fd"],
                  metrics["fd_low"], metrics["fd_high"]):
        assert f"{value:.4g}" in page

    run_id = json.loads((trained / "models" / artifacts.ModelFolder.RUN_FILE).read_text())["run_id"]
    run = mlflow.get_run(run_id)
    assert run.data.metrics["eval.kid"] == pytest.approx(metrics["kid"])
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "evaluation")}
    assert {"evaluation/report.html", "evaluation/neighbours.png", "evaluation/class_grid.png",
            "evaluation/class_histogram.csv", "evaluation/metrics.json"} <= logged

    # The first registered version becomes the champion; the next report shows its tagged values.
    registered = registration.run(RegisterConfig(), trained / "models", trained / "metrics.json",
                              trained / "paired.json", trained / "registered.json",
                              lineage.Inputs(prepared=prepared_digits))
    _evaluate(trained, prepared_digits, digits_featurizer_path, RegisterConfig())
    page = (trained / "report.html").read_text()
    assert f"Champion v{registered['version']}" in page and "not comparable" not in page


def test_report_warns_when_the_champion_used_another_featurizer(tmp_path):
    imaging.save_png(tmp_path / "samples.png", imaging.grid(-np.ones((4, 8, 8, 1), np.float32)))
    metrics = {"fd": 2.0, "fd_ratio": 2.0, "real": {"fd": 1.0}, "num_samples": 4, "featurizer_hash": "aaaa",
               "featurizer": "classifier"}
    champion = {"name": "gan-generator", "alias": "champion", "version": "3", "run_id": "r0",
                "featurizer_hash": "bbbb", "metrics": {"fd": 1.5, "fd_ratio": 1.25}}
    page = report.render(report.Context(
        run_id="r1", metrics=metrics, champion=champion, samples=tmp_path / "samples.png", class_grid=None,
        neighbours=None, class_table=None, neighbour_distances=np.zeros(0), history=tmp_path / "absent.csv",
        conditional=False))
    assert "Champion v3" in page and "<td class=num>1.25</td>" in page
    assert "Measured with featurizer bbbb, not aaaa" in page and "not comparable" in page
