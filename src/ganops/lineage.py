"""The MLflow record of one pipeline execution: one run per `dvc repro` or `dvc exp run`, whatever subset of
stages it ran.

Every stage that logs (train, evaluate, register) opens the record of the execution it belongs to, found
by an execution key tagged on the run, rather than a run id passed along in a DVC output. A run id in an
output is wrong as soon as DVC restores that output from its cache: `dvc exp run -S evaluate.x=…` reuses the
trained model, and its evaluation and registered version would land in the baseline's run. The key:

- `dvc exp run` (workspace, `--temp` or queued): DVC gives every stage the experiment's name and baseline
  commit (`DVC_EXP_NAME`, `DVC_EXP_BASELINE_REV`); the record is named after the experiment.
- `dvc repro`: DVC gives the stages nothing shared, so the key is the `dvc` process that runs them (pid and
  start time); the record is named `repro-<commit>`.
- a stage run by hand, outside DVC: its own record.

The stage that creates the record logs what the whole execution stands on: every params section,
`params.yaml`, `dvc.yaml`, the three prepared splits as MLflow datasets (digest: the prepared data's hash;
Great Expectations' verdict as dataset tags) and the DVC experiment's tags. Each stage then re-logs
`dvc.lock` as it found it, which pins the hashes of everything upstream of it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import psutil
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]  # added at import time
from mlflow.exceptions import MlflowException
from mlflow.types.schema import ColSpec, Schema, TensorSpec

from ganops import artifacts, tracking
from ganops.config import load_params

EXECUTION_TAG = "ganops.execution"
EXPERIMENT_TAG = "dvc.experiment"
BASELINE_TAG = "dvc.baseline_rev"
DATA_HASH_TAG = "ganops.data_hash"
COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's own: the UI links it
TRAINED_IN_TAG = "ganops.trained_in_run"  # set when the generator comes from another execution's training
LINEAGE_ARTIFACTS = "lineage"  # artifact folder of params.yaml, dvc.yaml, dvc.lock
# MLflow's conventional dataset contexts, per prepared split.
CONTEXTS = {"train": "training", "validation": "validation", "test": "test"}
DIGEST_LENGTH = 16  # MLflow stores dataset digests in a 36-character column


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What an execution stands on, as the stage sees it: the prepared data, its params file and the validate
    stage's verdict (each None where a stage runs without one, e.g. called as a library in a test)."""

    prepared: Path
    params: Path | None = None
    validation: Path | None = None


def execution_key() -> str:
    name = os.environ.get("DVC_EXP_NAME")
    if name:
        return f"exp:{name}@{os.environ.get('DVC_EXP_BASELINE_REV', '')}"
    dvc = _dvc_process()
    if dvc is not None:
        return f"repro:{socket.gethostname()}:{dvc.pid}:{dvc.create_time():.3f}"
    me = psutil.Process()
    return f"process:{socket.gethostname()}:{me.pid}:{me.create_time():.3f}"


def _dvc_process() -> psutil.Process | None:
    """The nearest ancestor running DVC (`dvc …` or `python -m dvc …`), which runs every stage of a repro."""
    for process in psutil.Process().parents():
        try:
            command = process.cmdline()
        except psutil.Error:
            continue
        if any(Path(part).name in ("dvc", "dvc.exe") for part in command[:2]) or command[1:3] == ["-m", "dvc"]:
            return process
    return None


def record_name(commit: str | None) -> str:
    name = os.environ.get("DVC_EXP_NAME")
    if name:
        return name
    return f"repro-{commit[:7]}" if commit else "repro"


def _record_tags(key: str, data_hash: str | None, commit: str | None) -> dict[str, str]:
    tags = {EXECUTION_TAG: key, EXPERIMENT_TAG: os.environ.get("DVC_EXP_NAME", ""),
            BASELINE_TAG: os.environ.get("DVC_EXP_BASELINE_REV", ""), DATA_HASH_TAG: data_hash or "",
            COMMIT_TAG: commit or ""}
    return {k: v for k, v in tags.items() if v}


def find_record(key: str) -> str | None:
    """The run id of the record tagged with `key` in the current experiment, if any."""
    runs = mlflow.search_runs(filter_string=f"tags.`{EXECUTION_TAG}` = '{key}'", output_format="list",
                              max_results=1)
    return runs[0].info.run_id if runs else None


@contextmanager
def open_record(inputs: Inputs, resume_run_id: str | None = None) -> Iterator[mlflow.ActiveRun]:
    """Open this execution's record (creating it and logging its lineage when it is the first stage to
    log), log `dvc.lock` as the stage found it, and yield the active run.

    `resume_run_id`: the train stage continuing an interrupted execution's run adopts it as this
    execution's record (MLflow keeps one run for one training)."""
    tracking.configure()
    key = execution_key()
    info = artifacts.PreparedData(inputs.prepared).read_info()
    run_id = resume_run_id or find_record(key)
    commit = tracking.git_commit() if run_id is None or resume_run_id is not None else None  # one git call
    if run_id is not None:
        active = mlflow.start_run(run_id=run_id)
        if resume_run_id is not None:
            mlflow.set_tags(_record_tags(key, info.data_hash, commit))
            _log_lineage(inputs, info, skip_existing_params=True)
    else:
        active = mlflow.start_run(run_name=record_name(commit), tags=_record_tags(key, info.data_hash, commit))
        _log_lineage(inputs, info, skip_existing_params=False)
    with active:
        _log_if_present(Path("dvc.lock"))
        yield active


def _log_lineage(inputs: Inputs, info: artifacts.DatasetInfo, skip_existing_params: bool) -> None:
    params = flat_params(inputs.params) if inputs.params is not None else {}
    if skip_existing_params:  # MLflow refuses to change a logged param: a resumed run keeps its values
        existing = mlflow.get_run(tracking.active_run_id()).data.params
        params = {k: v for k, v in params.items() if k not in existing}
    if params:
        mlflow.log_params(params)
    for path in (inputs.params, Path("dvc.yaml")):
        if path is not None:
            _log_if_present(path)
    verdict = validation_tags(inputs.validation)
    for split in artifacts.SPLITS:
        _log_input(dataset(inputs.prepared, info, split), context=CONTEXTS[split],
                   tags={"ganops.rows": str(_split_count(info, split)), **verdict})


# MLflow's SQL store looks a dataset up, then inserts it, in two statements: when two runs log the same dataset
# at once (a queued sweep's variants against PostgreSQL), the second insert breaks the unique key. The dataset
# then exists, and logging again links it to the run.
_DATASET_RACE = ("dataset_pk", "UNIQUE constraint failed: datasets")
_DATASET_ATTEMPTS = 3


def _log_input(logged: MetaDataset, context: str, tags: dict[str, str]) -> None:
    for attempt in range(1, _DATASET_ATTEMPTS + 1):
        try:
            mlflow.log_input(logged, context=context, tags=tags)
            return
        except MlflowException as exc:
            if attempt == _DATASET_ATTEMPTS or not any(sign in exc.message for sign in _DATASET_RACE):
                raise


def _log_if_present(path: Path) -> None:
    if path.is_file():
        mlflow.log_artifact(str(path), artifact_path=LINEAGE_ARTIFACTS)


def flat_params(params_path: Path) -> dict[str, Any]:
    """Every params section as `section.key` (lists and nested values as JSON text)."""
    sections = load_params(params_path).model_dump(mode="json", by_alias=True)
    return {f"{section}.{key}": value if isinstance(value, str | int | float | bool | None) else
            json.dumps(value)
            for section, values in sections.items() for key, value in values.items()}


def validation_tags(path: Path | None) -> dict[str, str]:
    """Great Expectations' verdict on the prepared data, as tags of each dataset input."""
    if path is None:
        return {}
    verdict = artifacts.read_record(path, artifacts.ValidationVerdict)
    return {"ganops.validation.success": str(verdict.success).lower(),
            "ganops.validation.checks": str(verdict.checks),
            "ganops.validation.failed_checks": verdict.failed_checks or "none"}


def dataset(prepared_dir: Path, info: artifacts.DatasetInfo, split: str) -> MetaDataset:
    """A prepared split as an MLflow dataset: named after the source and split, digest the data hash, source
    the split's folder in the user's repository (not DVC's temp copy of it)."""
    path = artifacts.PreparedData(prepared_dir).split_path(split)
    source = path if path.is_absolute() else tracking.project_root() / path
    # The stored pixels (uint8 shards, see `ganops.shards`), which consumers read as float32 in [-1, 1].
    specs: list[ColSpec | TensorSpec] = [TensorSpec(np.dtype(np.uint8), (-1, *info.image_shape), "images")]
    if info.labelled:
        specs.append(TensorSpec(np.dtype(np.int64), (-1,), "labels"))
    # MetaDataset leaves Dataset's abstract `profile` unimplemented; Dataset is no ABC, so it instantiates.
    return MetaDataset(LocalArtifactDatasetSource(str(source)), name=f"{info.source}-{split}",  # type: ignore[abstract]
                       digest=info.data_hash[:DIGEST_LENGTH], schema=Schema(specs))


def _split_count(info: artifacts.DatasetInfo, split: str) -> int:
    return {"train": info.train_count, "validation": info.validation_count, "test": info.test_count}[split]


def note_training_run(trained_in: str | None) -> None:
    """Point this record at the run that trained its generator when that is another execution's (DVC
    restored the trained model from its cache)."""
    active = mlflow.active_run()
    if trained_in and active is not None and trained_in != active.info.run_id:
        mlflow.set_tag(TRAINED_IN_TAG, trained_in)
