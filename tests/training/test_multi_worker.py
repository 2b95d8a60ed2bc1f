"""Multi-worker training as on a cluster, on 127.0.0.1: the chief runs the real train stage script
(pipeline/train.py, MLflow in tmp_path) and a second task runs `ganops worker`, each a process with its own
TF_CONFIG. A worker killed mid-run stops the chief with one line; both restarted, they resume from the chief's
checkpoint and end with the same weights."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest

from ganops.config import TrainConfig
from ganops.errors import GanopsError
from ganops.training import checkpoint, devices
from tests.helpers import write_shrunk_params
from tests.helpers.paths import REPO_ROOT
from tests.helpers.registry import free_port

STEPS_PER_EPOCH = 195 // 32  # the 300 prepared digits' train split, batch 32
EPOCHS = 40
START_TIMEOUT = 240  # seconds for both processes to import TensorFlow, meet and train on a busy machine


def _tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})


class Cluster:
    """The chief's train stage and one `ganops worker`, started together on fresh ports."""

    def __init__(self, tmp_path: Path, prepared: Path, params: Path):
        self.tmp_path, self.prepared, self.params = tmp_path, prepared, params
        self.checkpoints, self.scratch = tmp_path / "checkpoints", tmp_path / "worker-scratch"
        self.starts = 0

    def start(self) -> tuple[subprocess.Popen, subprocess.Popen]:
        ports = [free_port(), free_port()]
        self.starts += 1
        chief = self._spawn(0, ports, [sys.executable, str(REPO_ROOT / "pipeline" / "train.py"),
                                       "--params", str(self.params), "--prepared", str(self.prepared),
                                       "--out", str(self.tmp_path / "gan"), "--checkpoints", str(self.checkpoints)])
        worker = self._spawn(1, ports, [sys.executable, "-m", "ganops.cli", "worker", "--params", str(self.params),
                                        "--prepared", str(self.prepared), "--scratch", str(self.scratch)])
        return chief, worker

    def _spawn(self, index: int, ports: list[int], command: list[str]) -> subprocess.Popen:
        log = open(self.tmp_path / f"task{index}-{self.starts}.log", "w")  # noqa: SIM115 (closed with the process)
        return subprocess.Popen(command, env={**os.environ, "TF_CONFIG": _tf_config(ports, index)},
                                cwd=self.tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True)

    def log(self, index: int) -> str:
        return (self.tmp_path / f"task{index}-{self.starts}.log").read_text()


def _finish(process: subprocess.Popen, timeout: float) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def _wait_for(path: Path, processes: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert all(p.poll() is None for p in processes), "a task exited before the first checkpoint"
        assert time.monotonic() < deadline, f"no {path} after {timeout}s"
        time.sleep(0.2)


def _state(folder: Path) -> dict[str, np.ndarray]:
    latest = checkpoint.latest(folder)
    assert latest is not None
    with np.load(latest.folder / checkpoint.STATE_FILE) as state:
        return {key: state[key] for key in state.files}


def test_two_workers_train_resume_after_a_killed_worker_and_agree(prepared_digits, tmp_path, mlflow_store):
    params = write_shrunk_params(tmp_path / "params.yaml", train={
        "epochs": EPOCHS, "checkpoint_every_steps": STEPS_PER_EPOCH, "sample_every_epochs": 50,
        "monitor_every_epochs": None})
    cluster = Cluster(tmp_path, prepared_digits, params)

    chief, worker = cluster.start()
    _wait_for(cluster.checkpoints / checkpoint.POINTER_FILE, [chief, worker], START_TIMEOUT)
    worker.kill()
    worker.wait()
    # The chief notices the lost task (its heartbeats stop) and stops with one line, keeping its checkpoint.
    assert _finish(chief, 120) != 0
    # The last line of ours: tf.distribute's thread pool can still print an "Exception ignored in Pool.__del__"
    # traceback while the interpreter shuts down after it.
    error = [line for line in cluster.log(0).splitlines() if line.startswith("ganops ")][-1]
    assert error.startswith("ganops train: error: worker 0: multi-worker training stopped at step"), error
    assert "restart every task of the cluster to resume" in error
    killed_at = checkpoint.latest(cluster.checkpoints).step
    assert 0 < killed_at < EPOCHS * STEPS_PER_EPOCH

    chief, worker = cluster.start()
    assert _finish(chief, START_TIMEOUT + 120) == 0, cluster.log(0)[-3000:]
    assert _finish(worker, 60) == 0, cluster.log(1)[-3000:]
    assert f"train: resuming from {cluster.checkpoints}" in cluster.log(0)
    assert "train: continuing MLflow run" in cluster.log(0)
    assert f"worker: done at step {EPOCHS * STEPS_PER_EPOCH}" in cluster.log(1)

    chief_state, worker_state = _state(cluster.checkpoints), _state(cluster.scratch)
    assert chief_state.keys() == worker_state.keys()
    assert [key for key in chief_state if not np.array_equal(chief_state[key], worker_state[key])] == []
    assert int(chief_state[next(k for k in chief_state if k.startswith("gan."))].max()) >= 0  # a real state file
    assert (tmp_path / "gan" / "generator.keras").exists()
    client = mlflow.MlflowClient(tracking_uri=mlflow_store)  # the stage's store, whatever this process last used
    runs = client.search_runs([experiment.experiment_id for experiment in client.search_experiments()])
    assert len(runs) == 1 and runs[0].data.params["runtime.workers"] == "2"
    assert runs[0].data.params["runtime.strategy"] == "MultiWorkerMirroredStrategy"
    assert "train: 2 workers, 2× cpu (MultiWorkerMirroredStrategy), float32" in cluster.log(0)
    assert runs[0].data.metrics["train_steps"] == EPOCHS * STEPS_PER_EPOCH


def _cluster_env(spec: dict) -> dict[str, str]:
    return {"TF_CONFIG": json.dumps(spec)}


def test_tf_config_names_the_task_and_the_chief():
    workers = {"worker": ["a:1", "b:2", "c:3"]}
    chief = devices.cluster_from_env(_cluster_env({"cluster": workers, "task": {"type": "worker", "index": 0}}))
    other = devices.cluster_from_env(_cluster_env({"cluster": workers, "task": {"type": "worker", "index": 2}}))
    assert chief is not None and chief.size == 3 and chief.is_chief
    assert other is not None and not other.is_chief and other.describe() == "worker 2"
    with_chief = {"chief": ["a:1"], "worker": ["b:2"]}
    named = devices.cluster_from_env(_cluster_env({"cluster": with_chief, "task": {"type": "worker", "index": 0}}))
    assert named is not None and not named.is_chief and named.size == 2
    assert devices.cluster_from_env({}) is None and devices.cluster_from_env({"TF_CONFIG": " "}) is None


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "TF_CONFIG: not a cluster spec with a task"),
    (json.dumps({"cluster": {"worker": ["a:1"]}}), "TF_CONFIG: not a cluster spec with a task (KeyError: 'task')"),
    (json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}),
     "TF_CONFIG: jobs ['ps'] are not supported"),
    (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}),
     "TF_CONFIG: task worker 3 is not in the cluster (1 tasks)"),
])
def test_a_bad_tf_config_is_one_line(text, message):
    with pytest.raises(GanopsError, match="^" + re.escape(message)) as raised:
        devices.cluster_from_env({"TF_CONFIG": text})
    assert "\n" not in str(raised.value)


def test_distribution_resolves_auto_and_refuses_multi_worker_without_a_cluster():
    two = devices.Cluster((("worker", 0), ("worker", 1)), ("worker", 0))
    one = devices.Cluster((("worker", 0),), ("worker", 0))
    assert devices.distribution(TrainConfig(), two) == "multi_worker"
    assert devices.distribution(TrainConfig(), one) == "auto" == devices.distribution(TrainConfig(), None)
    assert devices.distribution(TrainConfig(distribute="one_device"), two) == "one_device"
    with pytest.raises(GanopsError, match=r"train\.distribute: multi_worker needs TF_CONFIG"):
        devices.distribution(TrainConfig(distribute="multi_worker"), None)


def test_replicas_split_over_workers_and_devices():
    cpus, gpus = ("/cpu:0", "/cpu:1"), ("/gpu:0", "/gpu:1")
    assert devices.choose(TrainConfig(arch="mlp"), (), cpus, "multi_worker", workers=2).devices == ("/cpu:0",)
    assert devices.choose(TrainConfig(arch="mlp"), gpus, cpus, "multi_worker", workers=2).devices == gpus
    assert devices.choose(TrainConfig(arch="mlp"), gpus, cpus, "one_device").devices == ("/gpu:0",)
    with pytest.raises(GanopsError, match=r"train.batch_size: 64 does not split evenly over 3 workers × 2 gpu"):
        devices.choose(TrainConfig(arch="mlp", batch_size=64), gpus, cpus, "multi_worker", workers=3)
