"""Checkpoints: a real train-stage process killed with SIGKILL resumes where it stopped; resumes are exact;
checkpoints of other configs or data are not resumed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ganops import artifacts
from ganops.training import checkpoint
from ganops.training import train as train_lib
from tests.helpers import shrunk_params, write_shrunk_params

DCGAN = {"arch": "dcgan", "augment": [], "r1_weight": 0.0, "ema_decay": 0.9}  # train overrides of every test here


def _stage(repo_root, prepared, workdir, env):
    return subprocess.Popen(
        [sys.executable, str(repo_root / "pipeline" / "train.py"), "--params", str(workdir / "params.yaml"),
         "--prepared", str(prepared), "--out", str(workdir / "models" / "gan"),
         "--checkpoints", str(workdir / "models" / "checkpoints")],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _state_values(folder: Path, suffix: str) -> dict[str, np.ndarray]:
    meta = json.loads((folder / checkpoint.META_FILE).read_text())
    with np.load(folder / checkpoint.STATE_FILE) as state:
        return {key: state[key] for key, (name, _) in meta["variables"].items() if name.endswith(suffix)}


def test_sigkilled_stage_resumes_from_its_last_checkpoint(repo_root, prepared_digits, tmp_path, mlflow_store):
    train = {**DCGAN, "epochs": 40, "checkpoint_every_steps": 40, "sample_every_epochs": 1000,
             "monitor_every_epochs": None}
    write_shrunk_params(tmp_path / "params.yaml", train=train)
    cfg = shrunk_params(train=train).train
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    steps_per_epoch = artifacts.read_dataset_info(prepared_digits / artifacts.PreparedData.INFO_FILE).train_count // 32
    total = cfg.epochs * steps_per_epoch
    checkpoints = tmp_path / "models" / "checkpoints"

    first = _stage(repo_root, prepared_digits, tmp_path, env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        found = checkpoint.latest(checkpoints)
        if found is not None and found.step >= cfg.checkpoint_every_steps:
            break
        time.sleep(0.01)
    assert first.poll() is None, f"the stage ended before it could be killed:\n{first.stdout.read()}"
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = checkpoint.latest(checkpoints).step
    assert 0 < killed_at < total
    assert not (tmp_path / "models" / "gan" / artifacts.ModelFolder.RUN_FILE).exists()

    second = _stage(repo_root, prepared_digits, tmp_path, env)
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output
    assert "train: resuming from" in output and f"(step {killed_at}," in output
    assert "continuing MLflow run" in output

    written = json.loads((tmp_path / "models" / "gan" / artifacts.ModelFolder.RUN_FILE).read_text())
    assert written["steps"] == total and written["resumed_from"] >= killed_at
    final = checkpoint.latest(checkpoints)
    assert final.step == total
    iterations = _state_values(final.folder, "/iteration")
    assert sorted(iterations) == ["d_optimizer.0000", "g_optimizer.0000"]
    assert all(int(value) == total for value in iterations.values())  # optimizer state survived the kill
    assert len(list(checkpoints.glob("step-*"))) == 1

    # One MLflow run for the whole execution, finished by the second process.
    with sqlite3.connect(mlflow_store.removeprefix("sqlite:///")) as db:
        runs = db.execute("select run_uuid, status from runs").fetchall()
        steps = db.execute("select value from metrics where key = 'train_steps'").fetchall()
    assert runs == [(written["run_id"], "FINISHED")]
    assert steps == [(float(total),)]


@pytest.fixture(scope="module")
def split(prepared_digits):
    return artifacts.PreparedData(prepared_digits).open_split("train")  # the stage's path: read from the shards


SHORT = shrunk_params(train={**DCGAN, "epochs": 3, "checkpoint_every_steps": 5,
                             "augment": ["translation", "cutout"]}).train


def test_same_seed_same_losses_and_resume_is_exact(split, tmp_path):
    first = train_lib.train(SHORT, split)
    again = train_lib.train(SHORT.model_copy(update={"epochs": 1}), split)
    losses = ["d_loss", "g_loss"]
    assert again.history[losses].values.tolist() == first.history[losses].values[:1].tolist()

    # A run stopped by its time budget after its first step (mid-epoch), then resumed, ends where the
    # uninterrupted run ends: data order, seeds, optimizer moments and the epoch's running means came back.
    stopped = train_lib.train(SHORT.model_copy(update={"max_seconds": 1e-3}), split, checkpoint_dir=tmp_path)
    assert stopped.stopped_by_budget and stopped.steps == 1
    resumed = train_lib.train(SHORT, split, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 1 and resumed.steps == first.steps
    np.testing.assert_allclose(resumed.history[losses], first.history[losses], rtol=1e-6)
    for mine, theirs in zip(resumed.gan.ema_generator.get_weights(), first.gan.ema_generator.get_weights(), strict=False):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


def test_checkpoint_of_another_config_or_data_is_not_resumed(split, tmp_path):
    cfg = SHORT.model_copy(update={"epochs": 1})
    train_lib.train(cfg, split, data_hash="a" * 40, checkpoint_dir=tmp_path)
    total = len(split) // 32

    def resume(changed_cfg, data_hash="a" * 40, total_steps=total):
        said = []
        gan = train_lib.build_gan(changed_cfg, split.shape)
        found = train_lib.resume_point(tmp_path, gan, checkpoint.fingerprint(changed_cfg, data_hash),
                                       total_steps, said.append)
        assert len(said) == 1
        return found, said[0]

    found, said = resume(cfg.model_copy(update={"g_learning_rate": 1e-3}))
    assert found is None and said == (f"train: starting fresh, not resuming {tmp_path / f'step-{total:09d}'}: "
                                      "train.g_learning_rate changed (0.0002 → 0.001)")
    found, said = resume(cfg, data_hash="b" * 40)
    assert found is None and "the training data changed" in said
    found, said = resume(cfg, total_steps=total - 1)
    assert found is None and "beyond this run's" in said
    found, said = resume(cfg.model_copy(update={"conditional": True}))
    assert found is None and "train.conditional changed" in said
    # More epochs or a time budget is the same training, to be continued.
    found, said = resume(cfg.model_copy(update={"epochs": 2, "max_seconds": 600.0}), total_steps=2 * total)
    assert found.step == total and said.startswith("train: resuming from")


def test_a_half_written_checkpoint_is_never_picked(split, tmp_path):
    cfg = SHORT.model_copy(update={"epochs": 1})
    train_lib.train(cfg, split, checkpoint_dir=tmp_path)
    # What a kill during the next save leaves: a temporary folder without its rename, and a newer step
    # folder whose pointer update never happened.
    (tmp_path / ".step-000000100.tmp").mkdir()
    (tmp_path / "step-000000100").mkdir()
    one_epoch = len(split) // 32
    assert checkpoint.latest(tmp_path).step == one_epoch
    (tmp_path / checkpoint.POINTER_FILE).unlink()  # without a pointer: the newest *complete* folder
    assert checkpoint.latest(tmp_path).step == one_epoch
