"""Checkpoints of the whole training state, so a killed train stage resumes where it stopped.

A checkpoint folder `step-000001200/` holds
- `state.npz`: every variable that training changes — generator, discriminator (SpectralNorm's
  `u` vectors and Dropout seed states included), EMA generator, both optimizers (iteration counts, moments,
  loss scale), the GAN's seed generators (latents, augmentation), its step counter and the running means
  of the epoch in progress;
- `history.csv`: the completed epochs' losses;
- `meta.json`: step, completed epochs, training seconds so far, the fingerprint it was made under and the
  variables' names and shapes.

Variables are saved and restored by position within named groups and checked shape by shape, rather
than through `Model.load_weights`, which silently skips optimizer variables when the fresh optimizers have
not been built yet (the caller builds them: `GAN.build_optimizers`).

Writes are atomic: a new folder is written under a temporary name and renamed into place, then
`latest.json` is replaced to point at it, and only then are older folders removed. A process killed at any
moment leaves the previous checkpoint usable.

`mlflow_run.json` beside them remembers the MLflow run of the pipeline execution in progress, so a resumed
stage logs into the same run.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ganops import artifacts
from ganops.config import TrainConfig

POINTER_FILE = "latest.json"
RUN_FILE = "mlflow_run.json"
STATE_FILE = "state.npz"
META_FILE = "meta.json"
HISTORY_FILE = "history.csv"
FOLDER_PATTERN = re.compile(r"^step-(\d{9})$")
# Keys that may change between the run that wrote a checkpoint and the run that resumes it: they say how
# long to train or what to watch, not what is trained.
RESUMABLE_CHANGES = ("epochs", "max_seconds", "monitor_every_epochs", "monitor_samples")


def fingerprint(cfg: TrainConfig, data_hash: str) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed."""
    return {"train": cfg.model_dump(exclude=set(RESUMABLE_CHANGES), mode="json"), "data_hash": data_hash}


def mismatch(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The first difference between two fingerprints, in words; None when they match."""
    if saved.get("data_hash") != current.get("data_hash"):
        return (f"the training data changed (hash {str(saved.get('data_hash'))[:12]} → "
                f"{str(current.get('data_hash'))[:12]})")
    old, new = saved.get("train", {}), current.get("train", {})
    for key in sorted(set(old) | set(new)):
        if old.get(key, "<unset>") != new.get(key, "<unset>"):
            return f"train.{key} changed ({old.get(key, '<unset>')!r} → {new.get(key, '<unset>')!r})"
    return None


def state_groups(gan) -> dict[str, list]:
    """Every variable of the training state, grouped and in a fixed order."""
    return {
        "generator": list(gan.generator.variables),
        "discriminator": list(gan.discriminator.variables),
        "ema_generator": list(gan.ema_generator.variables),
        "g_optimizer": list(gan.g_optimizer.variables),
        "d_optimizer": list(gan.d_optimizer.variables),
        "gan": [gan.latent_seeds.state, gan.augment_seeds.state, gan.steps_done, gan.nonfinite_step],
        "metrics": [variable for metric in gan.metrics for variable in metric.variables],
    }


def _flat(gan) -> dict[str, Any]:
    return {f"{group}.{i:04d}": variable
            for group, variables in state_groups(gan).items() for i, variable in enumerate(variables)}


def state_variables(gan) -> list:
    """Every variable of the training state, in the checkpoint's order."""
    return list(_flat(gan).values())


class IncompatibleCheckpoint(Exception):
    """The checkpoint's variables do not fit the model built now (the code changed)."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    folder: Path
    step: int
    epochs_done: int
    seconds: float  # training seconds up to this checkpoint, over all resumes
    fingerprint: dict[str, Any]

    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / HISTORY_FILE)

    def check(self, gan) -> list[str]:
        """The saved variables' keys in `state_variables`' order, once their count and shapes fit `gan`'s."""
        variables = _flat(gan)
        meta = json.loads((self.folder / META_FILE).read_text())
        saved_names = meta["variables"]
        if list(saved_names) != list(variables):
            raise IncompatibleCheckpoint(f"{len(saved_names)} saved variables, the model has {len(variables)}")
        for key, variable in variables.items():
            # Shapes, not names: Keras numbers auto-named layers per process (dense_3 vs dense_7).
            name, shape = saved_names[key]
            if tuple(shape) != tuple(variable.shape):
                raise IncompatibleCheckpoint(f"{key}: saved {name} {tuple(shape)}, model has "
                                             f"{variable.path} {tuple(variable.shape)}")
        return list(variables)

    def values(self, gan) -> Iterator[np.ndarray]:
        """The saved values in `state_variables`' order, checked against `gan` first and read one at a time (the
        whole state at once would be a second copy of the model, its EMA and both optimizers)."""
        keys = self.check(gan)
        with np.load(self.folder / STATE_FILE) as state:
            for key in keys:
                yield state[key]

    def restore(self, gan) -> None:
        """Assign the saved values to `gan`'s variables (its optimizers must be built)."""
        for variable, value in zip(state_variables(gan), self.values(gan), strict=True):
            variable.assign(value)


def save(checkpoint_dir: str | Path, gan, *, step: int, epochs_done: int, seconds: float,
         history: pd.DataFrame, run_fingerprint: dict[str, Any]) -> Checkpoint:
    checkpoint_dir = Path(checkpoint_dir)
    variables = _flat(gan)
    folder = checkpoint_dir / f"step-{step:09d}"
    with artifacts.atomic_path(folder) as tmp:
        tmp.mkdir()
        _write_state(tmp / STATE_FILE, variables)
        history.to_csv(tmp / HISTORY_FILE, index=False)
        meta = {"step": step, "epochs_done": epochs_done, "seconds": seconds, "fingerprint": run_fingerprint,
                "variables": {key: [variable.path, list(variable.shape)] for key, variable in variables.items()}}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    artifacts.write_json(checkpoint_dir / POINTER_FILE, {"folder": folder.name, "step": step})
    for other in checkpoint_dir.iterdir():
        if other.is_dir() and other.name != folder.name and (
                FOLDER_PATTERN.match(other.name) or other.name.startswith(".step-")):
            shutil.rmtree(other, ignore_errors=True)
    return Checkpoint(folder, step, epochs_done, seconds, run_fingerprint)


def _write_state(path: Path, variables: dict[str, Any]) -> None:
    """The variables as an uncompressed `.npz` (what `np.load` reads), one variable in memory at a time: `np.savez`
    takes every array at once, a second copy of the model, its EMA and both optimizers' moments (about 350 MB
    for the 64×64 dcgan)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, variable in variables.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(variable.numpy()), allow_pickle=False)


def latest(checkpoint_dir: str | Path) -> Checkpoint | None:
    """The checkpoint `latest.json` points at; without a pointer, the highest complete step folder."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return None
    folder = None
    pointer = checkpoint_dir / POINTER_FILE
    if pointer.exists():
        folder = checkpoint_dir / artifacts.read_json(pointer)["folder"]
    else:
        complete = sorted(p for p in checkpoint_dir.iterdir()
                          if FOLDER_PATTERN.match(p.name) and (p / META_FILE).exists())
        folder = complete[-1] if complete else None
    if folder is None or not (folder / META_FILE).exists():
        return None
    meta = json.loads((folder / META_FILE).read_text())
    return Checkpoint(folder, int(meta["step"]), int(meta["epochs_done"]), float(meta["seconds"]),
                      meta["fingerprint"])


def write_run(checkpoint_dir: str | Path, run_id: str, run_fingerprint: dict[str, Any], finished: bool) -> None:
    artifacts.write_json(Path(checkpoint_dir) / RUN_FILE,
                         {"run_id": run_id, "fingerprint": run_fingerprint, "finished": finished})


def unfinished_run(checkpoint_dir: str | Path, run_fingerprint: dict[str, Any]) -> str | None:
    """The MLflow run id of an interrupted stage with the same fingerprint, else None."""
    path = Path(checkpoint_dir) / RUN_FILE
    if not path.exists():
        return None
    record = artifacts.read_json(path)
    if record.get("finished") or mismatch(record.get("fingerprint", {}), run_fingerprint):
        return None
    return record.get("run_id")
