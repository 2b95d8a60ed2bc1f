"""A sweep spread over several machines comes together: two clones of one git remote (standing in for two CI
jobs) each run one `dvc exp run` against one `mlflow server`, push it with `dvc exp push` (the experiment's
git commit to the git remote, its cached outputs to the DVC remote), and either clone can then list, pull and
apply the other's experiment without recomputing it.

What travels where: `dvc.lock`, `params.yaml` and the `cache: false` metrics (`reports/metrics.json`,
`reports/registered.json`) are in the experiment's git commit; every cached output (the generator, the
checkpoints, the figures) goes to the DVC remote named as `core.remote` in the committed `.dvc/config`.

The shared stages (prepare, validate, featurize) are reproduced once by the clone that creates the project and
pushed like any baseline; each job pulls them and reruns only what its param changes."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import VENV_BIN, clean_env, free_port, server, write_shrunk_params

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # one shared fixture; ~2–3 min on 2 cores (make test-slow)

MODEL = "gan-generator"
SEEDS = {"job-a-seed1": 1, "job-b-seed2": 2}  # experiment name: train.seed, one per clone
DVC = [sys.executable, "-m", "dvc"]
# Both metrics files live in the experiment's git commit; the rest of each list comes from the DVC remote.
GIT_CARRIED = ("reports/metrics.json", "reports/registered.json")
RECORD_IDS = ("run_id", "version")  # what reports/registered.json names in MLflow
CACHE_CARRIED = ("models/gan", "models/checkpoints", "reports/paired.json", "reports/samples.png")


def _run(args, cwd, env, timeout=300):
    result = subprocess.run(args, cwd=cwd, env=env, check=False, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", output))


def _digest(path: Path) -> dict[str, str]:
    """Every file under `path` (or the file itself) by its relative name → sha256."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@dataclass(frozen=True)
class Sweep:
    url: str
    env: dict
    job_a: Path
    job_b: Path
    job_a_outputs: dict[str, dict[str, str]]  # what job A computed, before anything was shared
    job_a_run: str  # `dvc exp run` output of each job
    job_b_run: str
    registered: dict[str, dict]  # experiment name: its reports/registered.json, as its job wrote it


def _create_project(clone: Path, repo_root: Path, dvc_remote: Path, env: dict) -> None:
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(repo_root / name, clone / name)
    for name in ("pipeline", "src", "data/raw"):
        shutil.copytree(repo_root / name, clone / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # Seconds per stage: two epochs, no training monitor, few samples to evaluate.
    write_shrunk_params(clone / "params.yaml", train={"monitor_every_epochs": None}, evaluate={"num_samples": 40})
    _run([*DVC, "init", "-q"], clone, env)
    _run([*DVC, "config", "core.analytics", "false"], clone, env)
    _run([*DVC, "remote", "add", "-d", "storage", str(dvc_remote)], clone, env)  # committed: every clone has it
    _run([*DVC, "repro", "featurize"], clone, env)  # the stages every variant shares
    _run([*DVC, "push"], clone, env)
    _run(["git", "add", "-A"], clone, env)
    _run(["git", "commit", "-qm", "pipeline, shared stages reproduced"], clone, env)
    _run(["git", "push", "-q", "origin", "main"], clone, env)


def _run_and_push(clone: Path, name: str, env: dict) -> str:
    ran = _run([*DVC, "exp", "run", "-n", name, "-S", f"train.seed={SEEDS[name]}"], clone, env, timeout=600)
    pushed = _run([*DVC, "exp", "push", "origin", name], clone, env)
    assert f"Pushed experiment {name}" in pushed.stdout, pushed.stdout
    return ran.stdout


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, repo_root):
    root = tmp_path_factory.mktemp("sweep")
    origin, dvc_remote, job_a, job_b = root / "origin.git", root / "dvc-remote", root / "job-a", root / "job-b"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'backend.db'}",
               "--artifacts-destination", (root / "artifacts").as_uri(), "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    with server(command, f"{url}/health", clean_env(), root / "server.log", timeout=120):
        env = clean_env(MLFLOW_TRACKING_URI=url, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
                        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
        _run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], root, env)
        _run(["git", "clone", "-q", str(origin), str(job_a)], root, env)
        _create_project(job_a, repo_root, dvc_remote, env)

        # Job A: a fresh workspace straight after creating the project.
        job_a_run = _run_and_push(job_a, "job-a-seed1", env)
        job_a_outputs = {path: _digest(job_a / path) for path in (*GIT_CARRIED, *CACHE_CARRIED)}
        registered = {"job-a-seed1": json.loads((job_a / "reports/registered.json").read_text())}

        # Job B: another machine, with only the git remote, the DVC remote and the tracking server in common.
        _run(["git", "clone", "-q", str(origin), str(job_b)], root, env)
        # The shared stages' outputs, so the experiment reruns none of them (--allow-missing: the stages after
        # featurize have no outputs on main yet, which a plain `dvc pull` reports as a failed checkout).
        _run([*DVC, "pull", "--allow-missing"], job_b, env)
        job_b_run = _run_and_push(job_b, "job-b-seed2", env)
        registered["job-b-seed2"] = json.loads((job_b / "reports/registered.json").read_text())
        yield Sweep(url, env, job_a, job_b, job_a_outputs, job_a_run, job_b_run, registered)


def test_each_job_reruns_only_what_its_param_changes(sweep):
    assert _stages_run(sweep.job_a_run) == _stages_run(sweep.job_b_run) == {"train", "evaluate", "register"}


def test_a_job_pulls_the_other_jobs_experiment_and_lists_both(sweep):
    pulled = _run([*DVC, "exp", "pull", "origin", "job-a-seed1"], sweep.job_b, sweep.env)
    assert "job-a-seed1" in pulled.stdout, pulled.stdout
    shown = json.loads(_run([*DVC, "exp", "show", "--json"], sweep.job_b, sweep.env).stdout)
    rows = {rev["name"]: rev["data"] for commit in shown for experiment in commit.get("experiments") or []
            for rev in experiment["revs"]}
    assert set(SEEDS) <= set(rows)
    for name, seed in SEEDS.items():
        assert rows[name]["params"]["params.yaml"]["data"]["train"]["seed"] == seed
    for name, registered in sweep.registered.items():  # `dvc exp show` drops null fields: compare the ids
        shown_ids = {key: rows[name]["metrics"]["reports/registered.json"]["data"][key] for key in RECORD_IDS}
        assert shown_ids == {key: registered[key] for key in RECORD_IDS}


def test_applying_the_other_jobs_experiment_restores_its_outputs_without_recomputing(sweep):
    job_b, env = sweep.job_b, sweep.env
    _run([*DVC, "exp", "pull", "origin", "job-a-seed1"], job_b, env)  # a no-op if the test above ran
    _run([*DVC, "exp", "apply", "job-a-seed1"], job_b, env)
    _run([*DVC, "pull"], job_b, env)  # apply already checked out what exp pull fetched: nothing left to get
    assert json.loads(_run([*DVC, "status", "--json"], job_b, env).stdout) == {}
    assert _stages_run(_run([*DVC, "repro"], job_b, env).stdout) == set()
    assert {path: _digest(job_b / path) for path in sweep.job_a_outputs} == sweep.job_a_outputs
    # Ready to commit as it is: the cached outputs are ignored (DVC's .gitignore entries travelled in the
    # commits), so the only new files are the metrics that git carries.
    status = _run(["git", "status", "--porcelain", "--untracked-files=all"], job_b, env).stdout
    assert {line[3:] for line in status.splitlines() if line.startswith("??")} == set(GIT_CARRIED), status


def test_each_experiment_has_one_record_and_one_version_naming_it(sweep):
    client = MlflowClient(tracking_uri=sweep.url, registry_uri=sweep.url)
    experiment = client.get_experiment_by_name("ganops")
    assert experiment is not None
    records = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id], max_results=100)}
    assert set(records) == set(SEEDS)  # the shared stages log nothing; one record per job, nothing else
    versions = {v.run_id: v for v in client.search_model_versions(f"name = '{MODEL}'")}
    assert set(versions) == {run.info.run_id for run in records.values()}  # one version per record
    for name, run in records.items():
        assert run.data.tags["dvc.experiment"] == name
        assert int(run.data.params["train.seed"]) == SEEDS[name]
        version = versions[run.info.run_id]
        assert version.tags["dvc_experiment"] == name
        assert run.data.tags["ganops.registered_version"] == f"{MODEL}/{version.version}"
        assert (sweep.registered[name]["run_id"], sweep.registered[name]["version"]) == (
            run.info.run_id, str(version.version))
