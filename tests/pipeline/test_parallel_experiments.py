"""Parallel experiments without loss: the README's queued sweep into the default SQLite store at the repository
root (8 variants, 2 at a time; the same sweep through the authenticated PostgreSQL team server runs in
tests/registry/test_team_server.py), and the races it raises, interleaved by hand."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import clean_env, sweep

MODEL = "gan-generator"


@pytest.mark.slow  # 8 queued pipeline variants into SQLite; make test runs the README's 4 through the team server
@pytest.mark.timeout(sweep.TEST_TIMEOUT_S)
def test_queued_sweep_into_the_local_store(repo_root, tmp_path):
    baseline = sweep.make_baseline(repo_root, tmp_path / "baseline")
    repo = sweep.copy_baseline(baseline, tmp_path)
    env = clean_env(**sweep.GIT_IDENTITY)
    logs = sweep.sweep(repo, env)
    store = f"sqlite:///{repo / 'mlflow.db'}"  # queued variants ran in temp copies: DVC_ROOT led them here
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    sweep.check_records(client, logs)
    sweep.check_exp_show(repo, env, client, logs)


def test_late_registrations_neither_crown_nor_move_the_candidate_back(store, tmp_path):
    """The races of two parallel first registrations, interleaved by hand: v2's process runs ahead of v1's,
    both find no champion, and v1's sets the candidate alias last."""
    from ganops import tracking
    from ganops.config import RegisterConfig
    from ganops.registry import promotion, registration

    client, cfg = tracking.client(), RegisterConfig(max_images_per_request=16)
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, source=tmp_path.as_uri())
    assert registration.point_at_newest(client, MODEL, cfg.alias, "2") == "2"
    assert promotion.crown_first_version(client, cfg, "2") is None  # not the first version: never crowned here
    assert registration.point_at_newest(client, MODEL, cfg.alias, "1") == "2"  # v1's late write is undone
    assert promotion.crown_first_version(client, cfg, "1") == "1"
    assert promotion.crown_first_version(client, cfg, "1") is None  # and only once
    aliases = {alias: str(v) for alias, v in client.get_registered_model(MODEL).aliases.items()}
    assert aliases == {"candidate": "2", "champion": "1"}


def test_parallel_stages_create_a_new_local_store_once(tmp_path):
    """Stages that start together on a repository without `mlflow.db` each open it: only one may create and
    migrate its tables (otherwise the others fail with "duplicate column name")."""
    code = "from ganops import tracking; tracking.configure()"
    env = clean_env(DVC_ROOT=str(tmp_path))
    starts = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
              for _ in range(3)]
    failures = [err for process in starts if (err := process.communicate(timeout=300)[1]) and process.returncode]
    assert not failures, failures[0][-2000:]
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert MlflowClient(tracking_uri=store).get_experiment_by_name("ganops") is not None
