"""The one reader and writer of each on-disk format that crosses a stage boundary.

Every write is atomic: it goes to a temporary sibling and is renamed into place, so a failed stage
leaves its previous output or nothing, never half a file.

Formats:
- prepared split (folders `train/`, `validation/`, `test/`): uint8 NHWC pixels in `.npy` shards of at most
  `shards.SHARD_BYTES` each, int64 labels beside them (absent for unlabelled data), an `index.json` (the layout,
  the choice of `.npy` and the pixel scale are in `ganops.shards`). `read_split` gives a whole split as float32
  in [-1, 1]; `PreparedData.open_split` reads it in bounded pieces (chunks, rows, shards for tf.data).
- dataset info (`dataset.json`): shape, class count, split sizes and the content hash of the data.
- summary table (`summary.parquet`): one row per image, the columns in `SUMMARY_COLUMNS`.
- JSON documents: `write_json` / `read_json`; the typed ones (the training run, the registered version, the
  validation verdict) as dataclasses through `write_record` / `read_record`.
- stage folders: `PreparedData` and `ModelFolder` name the files inside, so a reader never imports the stage
  that wrote them to learn a name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from ganops import shards
from ganops.errors import GanopsError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

RecordT = TypeVar("RecordT", bound="DataclassInstance")  # one of the record dataclasses below

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
    """Images as float32 NHWC in [-1, 1] or uint8 pixels (`signed` reads either as float32 in [-1, 1]); labels
    int64 or None when the data is unlabelled."""

    images: np.ndarray
    labels: np.ndarray | None

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be NHWC, got shape {self.images.shape}")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    # What `shards.ShardedSplit` offers too, so the readers (tf.data, chunks) take either.
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.images.dtype

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.images[rows], None if self.labels is None else self.labels[rows]

    def signed(self, rows: np.ndarray) -> np.ndarray:
        images = self.images[rows]
        return shards.to_signed(images) if images.dtype == np.uint8 else images


def write_split(path: str | Path, split: Split, shard_bytes: int | None = None) -> None:
    """The split as a folder of uint8 shards at `path`, swapped in whole. Float images ([-1, 1]) are quantised
    to the uint8 scale (`shards.from_signed`); uint8 images are written as they are."""
    pixels = split.images if split.images.dtype == np.uint8 else shards.from_signed(split.images)
    with atomic_path(path) as tmp:
        tmp.mkdir()
        shards.write(tmp, pixels, split.labels, shard_bytes)


def split_writer(path: str | Path, shape: tuple[int, ...], count: int, labelled: bool) -> shards.ShardWriter:
    """A split of `count` uint8 images of `shape` written at `path` as it arrives, in pieces (`append`), the index
    on `close`. `path` must not exist; the caller makes the folder atomic, as prepare does with its whole output."""
    Path(path).mkdir()
    return shards.ShardWriter(Path(path), shape, count, labelled)


def read_split(path: str | Path) -> Split:
    """A whole split in memory as float32 [-1, 1]: for the small consumers that need all of it at once."""
    pixels, labels = shards.ShardedSplit.open(path).read_all()
    return Split(images=shards.to_signed(pixels), labels=labels)


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
    data_hash: str  # sha1 over every split's uint8 pixels and labels: the same pixels from any source, the same hash

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


def write_record(path: str | Path, record: Any) -> None:
    """A typed record (a dataclass below) as JSON."""
    write_json(path, dataclasses.asdict(record))


def read_record(path: str | Path, kind: type[RecordT]) -> RecordT:
    """A typed record back from JSON; a missing field is an error naming the file and the field."""
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise GanopsError(f"{path}: expected a JSON object ({kind.__name__})")
    fields = {field.name: field for field in dataclasses.fields(kind)}
    missing = [name for name, field in fields.items() if name not in raw
               and field.default is dataclasses.MISSING]
    if missing:
        raise GanopsError(f"{path}: lacks {', '.join(missing)} (rerun the stage that writes it)")
    return kind(**{name: raw[name] for name in fields if name in raw})


# --- Stage folders: the names of the files one stage writes and another reads, each written once -----------

SPLITS = ("train", "validation", "test")  # what the GAN learns from; what tuning measures on; what evaluate reports


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """The prepare stage's folder (`data/prepared`): a folder of shards per split, the per-image summary table,
    the dataset info and the provenance of the images (source, path, class names, skipped files)."""

    root: Path
    SPLIT_FILES: ClassVar[dict[str, str]] = {split: split for split in SPLITS}  # folders (see `shards`)
    SUMMARY_FILE: ClassVar[str] = "summary.parquet"
    INFO_FILE: ClassVar[str] = "dataset.json"
    SOURCE_FILE: ClassVar[str] = "source.json"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def split_path(self, split: str) -> Path:
        return self.root / self.SPLIT_FILES[split]

    @property
    def summary_path(self) -> Path:
        return self.root / self.SUMMARY_FILE

    @property
    def info_path(self) -> Path:
        return self.root / self.INFO_FILE

    @property
    def source_path(self) -> Path:
        return self.root / self.SOURCE_FILE

    def read_split(self, split: str) -> Split:
        return read_split(self.split_path(split))

    def open_split(self, split: str) -> shards.ShardedSplit:
        """The split's shards, read on demand: `chunks`, `gather(rows)`, the shard files for tf.data."""
        return shards.ShardedSplit.open(self.split_path(split))

    def read_splits(self) -> dict[str, Split]:
        return {split: self.read_split(split) for split in SPLITS}

    def read_info(self) -> DatasetInfo:
        return read_dataset_info(self.info_path)


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """`run.json` in the model folder: which MLflow run trained the generator beside it (a later execution may
    reuse the folder from DVC's cache) and how the training went."""

    run_id: str
    steps: int
    seconds: float
    stopped_by_budget: bool
    resumed_from: int | None = None


@dataclasses.dataclass(frozen=True)
class ModelFolder:
    """The train stage's folder (`models/gan`): the EMA generator (what evaluate, register and serving use), the
    per-epoch history (losses, the monitor's distances; DVC plots) and the training run record."""

    root: Path
    GENERATOR_FILE: ClassVar[str] = "generator.keras"
    HISTORY_FILE: ClassVar[str] = "history.csv"
    RUN_FILE: ClassVar[str] = "run.json"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def generator_path(self) -> Path:
        return self.root / self.GENERATOR_FILE

    @property
    def history_path(self) -> Path:
        return self.root / self.HISTORY_FILE

    @property
    def run_path(self) -> Path:
        return self.root / self.RUN_FILE

    def read_run(self) -> TrainingRun:
        return read_record(self.run_path, TrainingRun)


@dataclasses.dataclass(frozen=True)
class RegisteredVersion:
    """`registered.json`, written by register (a DVC metric: `dvc exp show` lists it) and read by promote."""

    name: str
    version: str
    alias: str
    run_id: str  # the execution's MLflow record the version was logged in
    model_uri: str
    model_id: str
    champion: str | None = None  # set when this version also became the champion (the first one)


@dataclasses.dataclass(frozen=True)
class ValidationVerdict:
    """`reports/validation.json`, written by validate (a DVC metric), logged with the datasets' MLflow records."""

    success: bool
    rows: int
    checks: int
    failed: int
    failed_checks: str  # comma-separated names; empty when every check passed
