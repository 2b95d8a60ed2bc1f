"""The whole pipeline, for real: `dvc repro` in a temporary git repository with a shrunken params.yaml,
the default SQLite MLflow store at that repository's root."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import write_shrunk_params


def _run(args, cwd, env, check=True):
    result = subprocess.run(args, cwd=cwd, env=env, check=False, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory, repo_root):
    repo = tmp_path_factory.mktemp("repo")
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(repo_root / name, repo / name)
    for name in ("pipeline", "src", "data/raw"):
        shutil.copytree(repo_root / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # train.epochs stays 2: test_param_typo_fails_before_any_work misspells that line.
    write_shrunk_params(repo / "params.yaml", featurize={"epochs": 5}, train={"epochs": 2, "sample_every_epochs": 1})

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the stages' `python`
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q", "-b", "main"], repo, env)
    _run([*dvc, "init", "-q"], repo, env)
    _run([*dvc, "config", "core.analytics", "false"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "init"], repo, env)
    first = _run([*dvc, "repro"], repo, env)
    return repo, env, dvc, first


def test_repro_produces_metrics_samples_and_candidate(pipeline_repo):
    repo, _, _, first = pipeline_repo
    for stage in ("prepare", "validate", "featurize", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" in first.stdout
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["fd"] > 0 and metrics["real"]["fd"] > 0 and metrics["num_samples"] == 60
    assert (repo / "reports/samples.png").stat().st_size > 0
    assert (repo / "reports/validation/docs/index.html").exists()
    registered = json.loads((repo / "reports/registered.json").read_text())
    assert registered["alias"] == "candidate"

    # The default store is the repository's own mlflow.db, with artifacts beside it.
    with sqlite3.connect(repo / "mlflow.db") as db:
        aliases = db.execute("select name, alias, version from registered_model_aliases order by alias").fetchall()
        runs = db.execute("select count(*) from runs").fetchone()[0]
    # The first registered version is also the champion, so serving has something to load from day one.
    version = int(registered["version"])
    assert aliases == [("gan-generator", "candidate", version), ("gan-generator", "champion", version)]
    assert runs == 1  # one MLflow run per pipeline execution
    assert (repo / "mlruns").is_dir()


def test_second_repro_does_nothing(pipeline_repo):
    repo, env, dvc, _ = pipeline_repo
    again = _run([*dvc, "repro"], repo, env)
    assert "Running stage" not in again.stdout


def _history_lengths(client, run_id: str, prefix: str) -> dict[str, int]:
    run = client.get_run(run_id)
    return {key: len(client.get_metric_history(run_id, key)) for key in run.data.metrics if key.startswith(prefix)}


def test_experiment_changing_evaluate_gets_its_own_record(pipeline_repo):
    """`dvc exp run -S evaluate.…` reuses the trained model from DVC's cache; its evaluation and registered
    version must land in a record of its own, not in the baseline's run."""
    import mlflow

    repo, env, dvc, _ = pipeline_repo
    baseline = json.loads((repo / "reports/registered.json").read_text())
    _run([*dvc, "exp", "run", "-n", "fewer-samples", "-S", "evaluate.num_samples=50"], repo, env)
    registered = json.loads((repo / "reports/registered.json").read_text())
    assert json.loads((repo / "reports/metrics.json").read_text())["num_samples"] == 50

    store = f"sqlite:///{repo / 'mlflow.db'}"
    # Both URIs: the registry one would otherwise be whatever an earlier test in this process set globally.
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    record = client.get_run(registered["run_id"])
    assert registered["run_id"] != baseline["run_id"]
    assert record.info.run_name == "fewer-samples" and record.data.tags["dvc.experiment"] == "fewer-samples"
    assert record.data.tags["ganops.trained_in_run"] == baseline["run_id"]  # the cached model's training
    assert record.data.params["evaluate.num_samples"] == "50" and "featurize.feature_dim" in record.data.params
    inputs = {i.dataset.name: {t.key: t.value for t in i.tags} for i in record.inputs.dataset_inputs}
    assert {name: tags["mlflow.data.context"] for name, tags in inputs.items()} == {
        "digits-train": "training", "digits-validation": "validation", "digits-test": "test"}
    assert {tags["ganops.validation.success"] for tags in inputs.values()} == {"true"}
    assert {a.path for a in client.list_artifacts(record.info.run_id, "lineage")} == {
        "lineage/params.yaml", "lineage/dvc.yaml", "lineage/dvc.lock"}
    assert not any(k.startswith(("train_", "d_loss")) for k in record.data.metrics)  # train did not run here

    # Each record holds its own evaluation, every metric logged once.
    ours, theirs = (_history_lengths(client, r, "eval.") for r in (registered["run_id"], baseline["run_id"]))
    assert ours and set(ours.values()) == {1} and set(theirs.values()) == {1}
    assert client.get_run(baseline["run_id"]).data.metrics["eval.num_samples"] == 60

    # The new version points at the new record and says which experiment made it.
    version = client.get_model_version(registered["name"], registered["version"])
    assert version.run_id == registered["run_id"]
    assert version.tags["dvc_experiment"] == "fewer-samples" and "param.train.arch" not in version.tags
    assert client.get_model_version(baseline["name"], baseline["version"]).run_id == baseline["run_id"]

    # `dvc exp show` lists each experiment's record and version.
    shown = json.loads(_run([*dvc, "exp", "show", "--json"], repo, env).stdout)
    rows = {rev["name"]: rev["data"]["metrics"]["reports/registered.json"]["data"]
            for commit in shown for experiment in commit.get("experiments") or [] for rev in experiment["revs"]}
    assert {k: rows["fewer-samples"][k] for k in ("run_id", "version")} == {
        "run_id": registered["run_id"], "version": registered["version"]}


def test_changing_train_epochs_reruns_only_train_and_downstream(pipeline_repo):
    repo, env, dvc, _ = pipeline_repo
    status = _run([*dvc, "status", "--json"], repo, env)
    assert json.loads(status.stdout) == {}
    params = yaml.safe_load((repo / "params.yaml").read_text())
    original = (repo / "params.yaml").read_text()
    params["train"]["epochs"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        # `dvc status` names only the stage whose own deps changed; repro shows what really reruns.
        assert set(json.loads(_run([*dvc, "status", "--json"], repo, env).stdout)) == {"train"}
        rerun = _run([*dvc, "repro"], repo, env)
        ran = set(re.findall(r"Running stage '(\w+)'", rerun.stdout))
        assert ran == {"train", "evaluate", "register"}
        assert "Stage 'prepare' didn't change" in rerun.stdout
    finally:
        (repo / "params.yaml").write_text(original)


def test_param_typo_fails_before_any_work(pipeline_repo):
    repo, env, dvc, _ = pipeline_repo
    original = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(original.replace("  epochs: 2\n", "  epcohs: 2\n"))
    try:
        failed = _run([*dvc, "repro"], repo, env, check=False)
        assert failed.returncode != 0
        assert "train.epcohs: unknown key" in failed.stderr + failed.stdout
    finally:
        (repo / "params.yaml").write_text(original)


def test_experiment_run_with_override_is_listed(pipeline_repo):
    repo, env, dvc, _ = pipeline_repo
    _run([*dvc, "exp", "run", "-S", "train.epochs=1"], repo, env)
    shown = json.loads(_run([*dvc, "exp", "show", "--json"], repo, env).stdout)
    text = json.dumps(shown)
    assert '"fd"' in text and '"fd_ratio"' in text and '"real"' in text
    registered = json.loads((repo / "reports/registered.json").read_text())
    with sqlite3.connect(repo / "mlflow.db") as db:
        tags = db.execute("select value from tags where key = 'dvc.experiment' and run_uuid = ?",
                          (registered["run_id"],)).fetchall()
    assert len(tags) == 1  # the experiment's run is tagged with its DVC name
