"""The one reader and writer of each on-disk format that crosses a stage boundary.

Every write is atomic: it goes to a temporary sibling and is renamed into place, so a failed stage
leaves its previous output or nothing, never half a file.

Formats:
- prepared split (`train.npz`, `validation.npz`, `test.npz`): `images` float32 NHWC scaled to [-1, 1];
  `labels` int64 (absent for unlabelled data).
- dataset info (`dataset.json`): shape, class count, split sizes and the content hash of the data.
- summary table (`summary.parquet`): one row per image, the columns in `SUMMARY_COLUMNS`.
- JSON documents (metrics, run ids, registered versions): `write_json` / `read_json`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ganops.errors import GanopsError

# Columns of the per-image summary table, in order. Validation runs over this table rather than
# over raw pixels (784 expectations per image would be far too slow).
SUMMARY_COLUMNS = (
    "index",  # position within its split
    "split",  # "train", "validation" or "test"
    "source",  # file name or "file:row" the image came from
    "label",  # int class, -1 when unlabelled
    "orig_height",
    "orig_width",
    "orig_channels",
    "min",  # pixel statistics after scaling to [-1, 1]
    "max",
    "mean",
    "std",
    "nonfinite",  # count of NaN/inf pixels
    "hash",  # sha1 of the prepared pixels, to find duplicates and leaks between splits
)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; rename it onto `target` only if the block succeeds.

    Works for files and folders: a folder target is swapped in whole, the old one removed after.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp = tmp_dir / target.name
    try:
        yield tmp
        if tmp.is_dir() and target.exists():
            old = tmp_dir / (target.name + ".old")
            os.replace(target, old)
            os.replace(tmp, target)
        elif tmp.exists():
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_json(path: str | Path, payload: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise GanopsError(f"{path}: file not found (did the stage that writes it run?)") from None
    except json.JSONDecodeError as exc:
        raise GanopsError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclasses.dataclass(frozen=True)
class Split:
    """Images as float32 NHWC in [-1, 1]; labels int64 or None when the data is unlabelled."""

    images: np.ndarray
    labels: np.ndarray | None

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be NHWC, got shape {self.images.shape}")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)


def write_split(path: str | Path, split: Split) -> None:
    arrays = {"images": split.images.astype(np.float32, copy=False)}
    if split.labels is not None:
        arrays["labels"] = split.labels.astype(np.int64, copy=False)
    # The layout np.savez writes (stored members "images.npy", "labels.npy"), without its copy of every
    # 16 MB block: each array's buffer goes to the zip member as it is.
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            array = np.ascontiguousarray(array)
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, np.lib.format.header_data_from_array_1_0(array))
                member.write(memoryview(array.reshape(-1)).cast("B"))


def read_split(path: str | Path) -> Split:
    path = Path(path)
    try:
        with np.load(path) as archive:
            labels = archive["labels"] if "labels" in archive.files else None
            return Split(images=archive["images"], labels=labels)
    except FileNotFoundError:
        raise GanopsError(f"{path}: file not found (run the prepare stage first)") from None


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    source: str
    height: int
    width: int
    channels: int
    num_classes: int  # 0 when unlabelled
    train_count: int
    validation_count: int
    test_count: int
    data_hash: str  # sha1 over every split's pixels and labels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def labelled(self) -> bool:
        return self.num_classes > 0


def write_dataset_info(path: str | Path, info: DatasetInfo) -> None:
    write_json(path, dataclasses.asdict(info))


def read_dataset_info(path: str | Path) -> DatasetInfo:
    raw = read_json(path)
    try:
        return DatasetInfo(**raw)
    except TypeError as exc:
        raise GanopsError(f"{path}: unexpected dataset info ({exc})") from None


def write_summary(path: str | Path, summary: pd.DataFrame) -> None:
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"summary table lacks columns {missing}")
    with atomic_path(path) as tmp:
        summary.loc[:, list(SUMMARY_COLUMNS)].to_parquet(tmp, index=False)


def read_summary(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise GanopsError(f"{path}: file not found (run the prepare stage first)")
    return pd.read_parquet(path)
