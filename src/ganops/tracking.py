"""MLflow wiring: where the store is and which experiment runs go to (`lineage` decides which run).

Tracking URI: `MLFLOW_TRACKING_URI` when set (a team's server); otherwise a SQLite store `mlflow.db` with
artifacts in `mlruns/`, both at the repository root as absolute paths, so stages that DVC runs in a temp
copy (`dvc exp run --temp`, queued experiments) log into the user's store, not a throwaway one. Parallel
stages may share that file: its tables are created once, under a lock (`prepare_local_store`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

EXPERIMENT_NAME = "ganops"
# Opens the MLflow UI on its model-training view (runs, models, charts) rather than the GenAI one.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def project_root() -> Path:
    """The user's repository: DVC's `DVC_ROOT` (set in every stage, the parent repo for temp experiments),
    else the enclosing git work tree, else the current folder."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                             check=True).stdout.strip()
        return Path(top).resolve()
    except (OSError, subprocess.CalledProcessError):
        return Path.cwd().resolve()


def local_store_uri(root: Path | None = None) -> str:
    return f"sqlite:///{(root or project_root()) / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or local_store_uri()


def local_artifact_root(uri: str) -> str | None:
    """`mlruns/` beside a SQLite store's file. Without it MLflow puts artifacts under ./mlruns of whatever
    folder the process runs in, scattering them across DVC's temp copies."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None  # a tracking server decides where its artifacts go
    return (Path(uri[len(prefix):]).resolve().parent / "mlruns").as_uri()


_PREPARED_STORES: set[str] = set()  # set up by this process already: configure() runs once per MLflow call site


def prepare_local_store(uri: str) -> None:
    """Create or migrate a SQLite store's tables one process at a time. Parallel stages (`dvc queue start
    --jobs N`) that find a new `mlflow.db` would otherwise each run MLflow's migrations on it, and all but
    one fail ("duplicate column name: step"). Nothing to do for a server, or for a store already set up."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri in _PREPARED_STORES:
        return
    digest = hashlib.sha256(str(Path(uri[len(prefix):]).resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"ganops-store-{digest}.lock", "a") as lock:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        # Opening each store (tracking, registry) creates and migrates the tables it finds missing.
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments(max_results=1)
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models(max_results=1)
    _PREPARED_STORES.add(uri)


def configure() -> str:
    """Point MLflow at the project's store and experiment; return the tracking URI."""
    uri = tracking_uri()
    registry = os.environ.get("MLFLOW_REGISTRY_URI") or uri
    for store in {uri, registry}:
        prepare_local_store(store)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT_NAME)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        with contextlib.suppress(MlflowException):  # created concurrently by another stage
            mlflow.create_experiment(name, artifact_location=local_artifact_root(uri), tags=EXPERIMENT_KIND)
    elif any(experiment.tags.get(k) != v for k, v in EXPERIMENT_KIND.items()):  # made by an older ganops
        for key, value in EXPERIMENT_KIND.items():
            MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
    mlflow.set_experiment(name)
    return uri


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=project_root()).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def client() -> MlflowClient:
    configure()
    return MlflowClient()


def active_run_id() -> str:
    """The id of the active MLflow run (a stage inside `lineage.pipeline_run`); an error outside one."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run (start the stage's record first)")
    return run.info.run_id
