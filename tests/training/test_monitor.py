"""The training quality monitor: Fréchet distance of the EMA generator's samples to the holdout (÷ the
real-vs-real floor) every `train.monitor_every_epochs` epochs and at the end, logged to a real SQLite MLflow
store with step = epoch and written into history.csv; off (featurizer never loaded) when null; its time
never spent from the training budget."""

from __future__ import annotations

import json
import math
import time

import mlflow
import pandas as pd
import pytest

from ganops import artifacts
from ganops.errors import GanopsError
from ganops.features import featurizer
from ganops.training import callbacks, loop, train
from tests.helpers import shrunk_params

QUICK = {"epochs": 5, "sample_every_epochs": 1000, "checkpoint_every_steps": 1000}  # train overrides


@pytest.fixture(scope="module")
def featurizer_path(prepared_digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("featurizer") / "featurizer.keras"
    featurizer.run(shrunk_params().featurize, prepared_digits, path, path.with_suffix(".json"))
    return path


def _run_id(models) -> str:
    return json.loads((models / artifacts.ModelFolder.RUN_FILE).read_text())["run_id"]


def test_monitor_logs_fd_ratio_per_epoch_and_writes_history(prepared_digits, featurizer_path, tmp_path,
                                                            mlflow_store, capsys):
    cfg = shrunk_params(train={**QUICK, "monitor_every_epochs": 2, "monitor_samples": 50}).train
    models = tmp_path / "models" / "gan"
    train.run(cfg, prepared_digits, models, featurizer_path=featurizer_path, say=lambda _: None)

    client = mlflow.tracking.MlflowClient()
    ratios = client.get_metric_history(_run_id(models), "monitor.fd_ratio")
    distances = client.get_metric_history(_run_id(models), "monitor.fd")
    assert [m.step for m in ratios] == [2, 4, 5] == [m.step for m in distances]  # every 2 epochs, and the end
    assert all(math.isfinite(m.value) and m.value > 0 for m in ratios + distances)
    # One floor, computed once: fd / fd_ratio is the same at every point.
    floors = [d.value / r.value for d, r in zip(distances, ratios, strict=True)]
    assert max(floors) == pytest.approx(min(floors), rel=1e-9) and floors[0] > 0

    history = pd.read_csv(models / artifacts.ModelFolder.HISTORY_FILE)
    assert list(history.columns) == loop.HISTORY_COLUMNS + loop.MONITOR_COLUMNS
    monitored = history.dropna(subset=["monitor_fd_ratio"])
    assert list(monitored["epoch"]) == [2, 4, 5]
    assert list(monitored["monitor_fd_ratio"]) == pytest.approx([m.value for m in ratios])
    assert list(monitored["monitor_fd"]) == pytest.approx([m.value for m in distances])

    # The progress line shows the first epoch and every monitor point (others only every 10 s).
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    shown = {int(line.split()[1].split("/")[0]): "monitor.fd_ratio=" in line for line in lines}
    assert shown[1] is False and {epoch for epoch, monitored in shown.items() if monitored} == {2, 4, 5}


def test_monitor_off_when_null_loads_no_featurizer(prepared_digits, tmp_path, mlflow_store):
    cfg = shrunk_params(train={**QUICK, "epochs": 2, "monitor_every_epochs": None}).train
    models = tmp_path / "models" / "gan"
    # A path that does not exist: loading it would fail, so the run shows it was never loaded.
    train.run(cfg, prepared_digits, models, featurizer_path=tmp_path / "missing.keras", say=lambda _: None)
    assert list(pd.read_csv(models / artifacts.ModelFolder.HISTORY_FILE).columns) == loop.HISTORY_COLUMNS
    assert "monitor.fd_ratio" not in mlflow.get_run(_run_id(models)).data.metrics


def test_monitor_on_without_a_featurizer_is_a_one_line_error(prepared_digits, tmp_path, mlflow_store):
    cfg = shrunk_params(train=QUICK).train
    with pytest.raises(GanopsError, match=r"train.monitor_every_epochs: .*--featurizer"):
        train.run(cfg, prepared_digits, tmp_path / "gan", say=lambda _: None)
    with pytest.raises(GanopsError, match=r"missing.keras: featurizer not found"):
        train.run(cfg, prepared_digits, tmp_path / "gan", featurizer_path=tmp_path / "missing.keras",
                  say=lambda _: None)


def test_untimed_seconds_are_not_spent_from_the_budget():
    """The monitor's `seconds` are left out of the trainer's clock and its time budget."""

    class Untimed:  # what the loop reads of the monitor: the seconds it spent
        seconds = 0.0

    monitor = Untimed()
    budget = callbacks.TimeBudget(max_seconds=10.0, untimed=[monitor])
    budget.on_train_begin()
    started = time.perf_counter()
    time.sleep(0.3)
    monitor.seconds += time.perf_counter() - started  # 0.3 s of monitoring
    assert budget.elapsed() < 0.05
    assert budget.remaining() > 9.95
    time.sleep(0.1)  # training time counts
    assert 0.09 < budget.elapsed() < 0.2
