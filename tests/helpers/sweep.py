"""The README's sweep for real, shared by the local-store and the team-server tests: a committed baseline
repository, `dvc exp run --queue -S …` variants run by `dvc queue start --jobs 2`, and the checks that every
variant ended with its own MLflow record and registered version, nothing lost or crossed.

The baseline runs only prepare, validate and featurize (shared by every variant, since only train params
change), so the queued variants' registrations are the model's first ones and race for the champion."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.helpers.params import write_shrunk_params
from tests.helpers.registry import clean_env

# (g_learning_rate, seed) per experiment name: 8 variants, run 2 at a time.
GRID = {f"glr{rate}-seed{seed}": (rate, seed) for rate in ("1e-4", "2e-4", "3e-4", "5e-4") for seed in (0, 1)}
# The README's own sweep, 4 of them: still two at a time, racing for the champion, in half the minutes.
README_GRID = {name: value for name, value in GRID.items() if value[0] in ("1e-4", "3e-4")}
QUEUE_TIMEOUT_S = 1200  # all variants, from `dvc queue start`
# A sweep test's whole budget (pytest-timeout counts fixture set-up): the queue, plus the baseline's shared stages,
# queueing, stopping the queue and reading its logs on a busy machine.
TEST_TIMEOUT_S = QUEUE_TIMEOUT_S + 600
POLL_S = 10  # each poll starts a `dvc` process: not too often on 2 cores
FAILURE_SIGNS = ("database is locked", "Traceback", "ERROR")
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@t"}
DVC = [sys.executable, "-m", "dvc"]


def run(args: list[str], cwd: Path, env: dict, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, check=False, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_baseline(repo_root: Path, repo: Path, model_name: str = "gan-generator") -> Path:
    """A committed repository at `repo` whose prepare, validate and featurize outputs are in DVC's cache (no
    stage before train logs to MLflow); copy it per sweep with `copy_baseline`."""
    repo.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(repo_root / name, repo / name)
    for name in ("pipeline", "src", "data/raw"):
        shutil.copytree(repo_root / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # Seconds of work per variant: one epoch, no training monitor, few samples to evaluate.
    write_shrunk_params(repo / "params.yaml", evaluate={"num_samples": 40}, register={"model_name": model_name},
                        train={"epochs": 1, "monitor_every_epochs": None, "sample_every_epochs": 1})
    env = clean_env(**GIT_IDENTITY)
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run([*DVC, "init", "-q"], repo, env)
    run([*DVC, "config", "core.analytics", "false"], repo, env)
    run([*DVC, "repro", "featurize"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline: shared stages"], repo, env)
    assert not (repo / "mlflow.db").exists()
    return repo


def copy_baseline(baseline: Path, into: Path) -> Path:
    repo = into / "repo"
    shutil.copytree(baseline, repo, symlinks=True, ignore=shutil.ignore_patterns("tmp"))  # .dvc/tmp: per repo
    return repo


def start_queue(repo: Path, env: dict) -> None:
    """`dvc queue start --jobs 2`. It exits at once, but its workers inherit its stdout and stderr and live on
    until `dvc queue stop`: read through pipes (`run`), the call would wait for them, not for the command."""
    with tempfile.TemporaryFile("w+") as output:
        result = subprocess.run([*DVC, "queue", "start", "--jobs", "2"], cwd=repo, env=env, stdout=output,
                                stderr=subprocess.STDOUT, check=False, timeout=120)
        output.seek(0)
        if result.returncode != 0:
            raise AssertionError(f"dvc queue start failed ({result.returncode}):\n{output.read()}")


def _statuses(repo: Path, env: dict, grid: dict) -> dict[str, str]:
    """{experiment name: Queued | Running | Success | Failed …} from `dvc queue status`."""
    rows = [line.split() for line in run([*DVC, "queue", "status"], repo, env).stdout.splitlines()[1:]]
    return {row[1]: row[-1] for row in rows if len(row) >= 3 and row[1] in grid}


def sweep(repo: Path, env: dict, grid: dict = GRID) -> dict[str, str]:
    """Queue the grid, run it two at a time and wait (bounded) until every variant has ended; return
    {name: its `dvc queue logs`}. `env` reaches the queue's workers: the tracking URI, the credentials."""
    for name, (rate, seed) in grid.items():
        run([*DVC, "exp", "run", "--queue", "-n", name, "-S", f"train.g_learning_rate={rate}",
             "-S", f"train.seed={seed}"], repo, env)
    start_queue(repo, env)
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    try:
        # Until every variant is listed and none is Queued or Running (an empty listing is not an end).
        while len(statuses := _statuses(repo, env, grid)) < len(grid) or {"Queued", "Running"} & set(statuses.values()):
            assert time.monotonic() < deadline, f"queue still busy after {QUEUE_TIMEOUT_S} s: {statuses}"
            time.sleep(POLL_S)
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):  # never hide the error that got us here
            run([*DVC, "queue", "stop", "--kill"], repo, env, check=False, timeout=120)
    logs = {name: run([*DVC, "queue", "logs", name], repo, env, check=False).stdout for name in grid}
    assert statuses == dict.fromkeys(grid, "Success"), "\n\n".join(f"--- {n}\n{t[-3000:]}" for n, t in logs.items())
    return logs


def check_records(client: MlflowClient, logs: dict[str, str], experiment: str = "ganops",
                  model: str = "gan-generator") -> None:
    """One record and one version per variant (the variants `logs` names), each naming the other; the candidate on
    the newest version and the champion crowned once, on the first."""
    grid = {name: GRID[name] for name in logs}
    for name, log in logs.items():
        for sign in FAILURE_SIGNS:
            assert sign not in log, f"{name}: {sign!r} in its queue log:\n{log[-3000:]}"

    found = client.get_experiment_by_name(experiment)
    assert found is not None
    records = {run.info.run_name: run for run in client.search_runs([found.experiment_id], max_results=100)}
    assert set(records) == set(grid)  # one record per variant, nothing else, nothing lost
    for name, record in records.items():
        rate, seed = grid[name]
        assert record.data.tags["dvc.experiment"] == name
        assert float(record.data.params["train.g_learning_rate"]) == float(rate)
        assert int(record.data.params["train.seed"]) == seed

    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{model}'")}
    by_run = {v.run_id: number for number, v in versions.items()}
    assert len(versions) == len(grid) and set(by_run) == {r.info.run_id for r in records.values()}
    for name, record in records.items():  # versions ↔ records one to one, each naming the other
        number = by_run[record.info.run_id]
        assert record.data.tags["ganops.registered_version"] == f"{model}/{number}"
        assert versions[number].tags["dvc_experiment"] == name

    aliases = {alias: str(v) for alias, v in client.get_registered_model(model).aliases.items()}
    numbers = sorted(versions, key=int)
    assert aliases == {"candidate": numbers[-1], "champion": numbers[0]}
    crowned = [n for n, v in versions.items() if "promotion.decision" in v.tags]
    assert crowned == [numbers[0]]  # only the first version was ever made champion


def check_exp_show(repo: Path, env: dict, client: MlflowClient, names: Iterable[str],
                   model: str = "gan-generator") -> None:
    """`dvc exp show` lists each swept variant (`names`: the keys of `sweep`'s logs) with its own record and
    version."""
    shown = json.loads(run([*DVC, "exp", "show", "--json"], repo, env).stdout)
    rows = {rev["name"]: rev["data"]["metrics"]["reports/registered.json"]["data"]
            for commit in shown for experiment in commit.get("experiments") or [] for rev in experiment["revs"]}
    assert set(names) <= set(rows)
    for name in names:
        assert client.get_run(rows[name]["run_id"]).info.run_name == name
        assert client.get_model_version(model, rows[name]["version"]).run_id == rows[name]["run_id"]
