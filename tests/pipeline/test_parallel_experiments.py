"""A sweep for real: `dvc exp run --queue -S …` variants run by `dvc queue start --jobs 2` in a temporary git
repository, against the default SQLite store at the repository root and against an `mlflow server`. Every
variant must finish with its own MLflow record and its own registered version, nothing lost or crossed, the
candidate alias on the newest version and the champion crowned once (the first version).

The baseline runs only prepare, validate and featurize (shared by every variant, since only train params
change), so the queued variants' registrations are the model's first ones and race for the champion."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import VENV_BIN, clean_env, free_port, server, write_shrunk_params

MODEL = "gan-generator"
# (g_learning_rate, seed) per experiment name: 4 variants, 2 at a time.
GRID = {f"glr{rate}-seed{seed}": (rate, seed) for rate in ("1e-4", "3e-4") for seed in (0, 1)}
QUEUE_TIMEOUT_S = 900  # all variants; the test's own timeout is above it
FAILURE_SIGNS = ("database is locked", "Traceback", "ERROR")


def _run(args, cwd, env, check=True, timeout=600):
    result = subprocess.run(args, cwd=cwd, env=env, check=False, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def baseline_repo(tmp_path_factory, repo_root) -> Path:
    """A committed repository whose prepare, validate and featurize outputs are in DVC's cache; copied per
    test, so the shared stages run once."""
    repo = tmp_path_factory.mktemp("baseline")
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(repo_root / name, repo / name)
    for name in ("pipeline", "src", "data/raw"):
        shutil.copytree(repo_root / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # Seconds of work per variant: one epoch, no training monitor, few samples to evaluate.
    write_shrunk_params(repo / "params.yaml", evaluate={"num_samples": 40},
                        train={"epochs": 1, "monitor_every_epochs": None, "sample_every_epochs": 1})
    env, dvc = clean_env(**_git_identity()), [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q", "-b", "main"], repo, env)
    _run([*dvc, "init", "-q"], repo, env)
    _run([*dvc, "config", "core.analytics", "false"], repo, env)
    _run([*dvc, "repro", "featurize"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "baseline: shared stages"], repo, env)
    assert not (repo / "mlflow.db").exists()  # no stage before train logs
    return repo


def _git_identity() -> dict[str, str]:
    return {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _copy(baseline: Path, into: Path) -> Path:
    repo = into / "repo"
    shutil.copytree(baseline, repo, symlinks=True, ignore=shutil.ignore_patterns("tmp"))  # .dvc/tmp: per repo
    return repo


def _statuses(repo: Path, env: dict) -> dict[str, str]:
    """{experiment name: Queued | Running | Success | Failed …} from `dvc queue status`."""
    lines = _run([sys.executable, "-m", "dvc", "queue", "status"], repo, env).stdout.splitlines()
    return {line.split()[1]: line.split()[-1] for line in lines[1:] if len(line.split()) >= 3
            and line.split()[1] in GRID}


def sweep(repo: Path, env: dict) -> dict[str, str]:
    """Queue the grid, run it two at a time and wait (bounded) until every variant has ended; return
    {name: its `dvc queue logs`}."""
    dvc = [sys.executable, "-m", "dvc"]
    for name, (rate, seed) in GRID.items():
        _run([*dvc, "exp", "run", "--queue", "-n", name, "-S", f"train.g_learning_rate={rate}",
              "-S", f"train.seed={seed}"], repo, env)
    _run([*dvc, "queue", "start", "--jobs", "2"], repo, env)
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    try:
        while (statuses := _statuses(repo, env)) and (
                len(statuses) < len(GRID) or {"Queued", "Running"} & set(statuses.values())):
            assert time.monotonic() < deadline, f"queue still busy after {QUEUE_TIMEOUT_S} s: {statuses}"
            time.sleep(5)
    finally:
        _run([*dvc, "queue", "stop", "--kill"], repo, env, check=False, timeout=120)
    logs = {name: _run([*dvc, "queue", "logs", name], repo, env, check=False).stdout for name in GRID}
    assert statuses == dict.fromkeys(GRID, "Success"), "\n\n".join(f"--- {n}\n{t[-3000:]}" for n, t in logs.items())
    return logs


def check_records(client: MlflowClient, logs: dict[str, str]) -> None:
    for name, log in logs.items():
        for sign in FAILURE_SIGNS:
            assert sign not in log, f"{name}: {sign!r} in its queue log:\n{log[-3000:]}"

    experiment = client.get_experiment_by_name("ganops")
    assert experiment is not None
    records = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id], max_results=100)}
    assert set(records) == set(GRID)  # one record per variant, nothing else, nothing lost
    for name, run in records.items():
        rate, seed = GRID[name]
        assert run.data.tags["dvc.experiment"] == name
        assert float(run.data.params["train.g_learning_rate"]) == float(rate)
        assert int(run.data.params["train.seed"]) == seed

    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{MODEL}'")}
    by_run = {v.run_id: number for number, v in versions.items()}
    assert len(versions) == len(GRID) and set(by_run) == {r.info.run_id for r in records.values()}
    for name, run in records.items():  # versions ↔ records one to one, each naming the other
        number = by_run[run.info.run_id]
        assert run.data.tags["ganops.registered_version"] == f"{MODEL}/{number}"
        assert versions[number].tags["dvc_experiment"] == name

    aliases = {alias: str(v) for alias, v in client.get_registered_model(MODEL).aliases.items()}
    numbers = sorted(versions, key=int)
    assert aliases == {"candidate": numbers[-1], "champion": numbers[0]}
    crowned = [n for n, v in versions.items() if "promotion.decision" in v.tags]
    assert crowned == [numbers[0]]  # only the first version was ever made champion


def check_exp_show(repo: Path, env: dict, client: MlflowClient) -> None:
    """`dvc exp show` lists each variant's own record and version."""
    shown = json.loads(_run([sys.executable, "-m", "dvc", "exp", "show", "--json"], repo, env).stdout)
    rows = {rev["name"]: rev["data"]["metrics"]["reports/registered.json"]["data"]
            for commit in shown for experiment in commit.get("experiments") or [] for rev in experiment["revs"]}
    assert set(GRID) <= set(rows)
    for name in GRID:
        assert client.get_run(rows[name]["run_id"]).info.run_name == name
        assert client.get_model_version(MODEL, rows[name]["version"]).run_id == rows[name]["run_id"]


@pytest.mark.slow  # 4 queued pipeline variants at --jobs 2: minutes on 2 cores (make test-slow)
@pytest.mark.timeout(1500)
def test_queued_sweep_into_the_local_store(baseline_repo, tmp_path):
    repo = _copy(baseline_repo, tmp_path)
    env = clean_env(**_git_identity())
    logs = sweep(repo, env)
    store = f"sqlite:///{repo / 'mlflow.db'}"  # queued variants ran in temp copies: DVC_ROOT led them here
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    check_records(client, logs)
    check_exp_show(repo, env, client)


@pytest.mark.slow  # 4 queued pipeline variants at --jobs 2: minutes on 2 cores (make test-slow)
@pytest.mark.timeout(1500)
def test_queued_sweep_into_a_tracking_server(baseline_repo, tmp_path):
    repo = _copy(baseline_repo, tmp_path)
    port = free_port()
    command = [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'backend.db'}",
               "--artifacts-destination", (tmp_path / "artifacts").as_uri(), "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    url = f"http://127.0.0.1:{port}"
    with server(command, f"{url}/health", clean_env(), tmp_path / "server.log", timeout=120):
        env = clean_env(MLFLOW_TRACKING_URI=url, **_git_identity())
        logs = sweep(repo, env)
        assert not (repo / "mlflow.db").exists()  # the queue's workers saw MLFLOW_TRACKING_URI
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        check_records(client, logs)
        check_exp_show(repo, env, client)


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
