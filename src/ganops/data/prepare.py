"""Prepare: load a source, subsample, split train/holdout (seeded, stratified when labelled), scale to
[-1, 1], and summarise every image in a table that the validate stage checks."""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ganops import artifacts
from ganops.config import DataConfig
from ganops.data import sources
from ganops.errors import GanopsError

TRAIN_FILE = "train.npz"
HOLDOUT_FILE = "holdout.npz"
SUMMARY_FILE = "summary.parquet"
INFO_FILE = "dataset.json"
SOURCE_FILE = "source.json"  # where the images came from: source, path, class names, skipped files
_CHUNK_IMAGES = 1024  # images per task: a chunk's float32 pixels stay in cache while scaled, summarised, hashed


def image_hashes(images: np.ndarray) -> list[str]:
    """sha1 of each image's bytes: equal images (duplicates, train/holdout leaks) share a hash."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return [hashlib.sha1(row).hexdigest() for row in flat]  # rows are contiguous buffers: no copies


def scale_signed(images: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """`images[rows]` (uint8 0–255 or float32 [0, 1]) scaled to [-1, 1] into float32 `out`.

    uint8 pixels go through `sources.unit_from_integers`' float32 division first, so an image read as
    uint8 and the same image read as floats prepare to identical bytes, hence identical hashes.
    """
    if images.dtype == np.uint8:
        np.divide(images[rows], np.float32(255), out=out, dtype=np.float32)
    else:
        np.take(images, rows, axis=0, out=out)
    out *= np.float32(2.0)
    out -= np.float32(1.0)


def _scale_chunk(images: np.ndarray, rows: np.ndarray, out: np.ndarray, wait_for: Callable[[int], None]) -> tuple:
    if len(rows):
        wait_for(int(rows.max()) + 1)
    scale_signed(images, rows, out)
    flat = out.reshape(len(out), -1)
    with np.errstate(invalid="ignore"):
        mean = flat.mean(axis=1, dtype=np.float64)  # NaN or inf exactly where a row holds one
        centred = flat - mean.astype(np.float32)[:, None]
        std = np.sqrt(np.einsum("ij,ij->i", centred, centred) / np.float32(flat.shape[1]))
    nonfinite = np.zeros(len(flat), dtype=np.int64)
    for row in np.flatnonzero(~np.isfinite(mean)):
        nonfinite[row] = np.count_nonzero(~np.isfinite(flat[row]))
    return flat.min(axis=1), flat.max(axis=1), mean, std, nonfinite, image_hashes(flat)


def scale_and_summarise(images: np.ndarray, rows: np.ndarray, wait_for: Callable[[int], None] = sources.all_loaded
                        ) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """`images[rows]` scaled to [-1, 1] (float32), each image's pixel statistics and its content hash.

    One pass over the data in chunks of `_CHUNK_IMAGES`, in order, on every core (numpy and sha1 of
    buffers over 2 KB release the GIL); each chunk first waits for its images (`LoadedImages.wait_for`),
    so the work overlaps a source still reading. Only the result array is allocated at full size.
    """
    scaled = np.empty((len(rows),) + images.shape[1:], dtype=np.float32)
    starts = range(0, len(rows), _CHUNK_IMAGES)
    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        parts = list(pool.map(
            lambda s: _scale_chunk(images, rows[s:s + _CHUNK_IMAGES], scaled[s:s + _CHUNK_IMAGES], wait_for), starts))
    columns = [np.concatenate([part[i] for part in parts]) if parts else np.empty(0) for i in range(5)]
    statistics = {
        "min": columns[0].astype(np.float32),
        "max": columns[1].astype(np.float32),
        "mean": columns[2].astype(np.float32),
        "std": columns[3].astype(np.float32),
        "nonfinite": columns[4].astype(np.int64),
    }
    return scaled, statistics, [digest for part in parts for digest in part[5]]


def summary_table(split: str, labels: np.ndarray | None, source_names: list[str], orig_shapes: np.ndarray,
                  statistics: dict[str, np.ndarray], hashes: list[str]) -> pd.DataFrame:
    count = len(hashes)
    return pd.DataFrame({
        "index": np.arange(count, dtype=np.int64),
        "split": split,
        "source": source_names,
        "label": labels if labels is not None else np.full(count, -1, dtype=np.int64),
        "orig_height": orig_shapes[:, 0],
        "orig_width": orig_shapes[:, 1],
        "orig_channels": orig_shapes[:, 2],
        **statistics,
        "hash": hashes,
    })


def _approximate_mode(class_counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Per-class draw counts summing to `draws`, proportional to `class_counts`, ties broken by `rng`."""
    continuous = class_counts / class_counts.sum() * draws
    floored = np.floor(continuous)
    need_to_add = int(draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            add_now = min(len(tied), need_to_add)
            floored[rng.choice(tied, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def split_indices(count: int, labels: np.ndarray | None, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, holdout) positions: seeded, stratified when every class has two images or more.

    The same draws, in the same order, as scikit-learn's `train_test_split(test_size=holdout_fraction,
    random_state=seed, stratify=labels)` (tests/data/test_prepare.py compares them), without the
    second of start-up that importing scikit-learn costs every prepare run.
    """
    holdout_count = math.ceil(cfg.holdout_fraction * count)
    train_count = count - holdout_count
    if train_count <= 0 or holdout_count >= count:
        raise GanopsError(f"data.holdout_fraction: cannot split {count} images "
                          f"({holdout_count} for the holdout would leave no training images)")
    rng = np.random.RandomState(cfg.seed)
    classes = np.unique(labels, return_inverse=True, return_counts=True) if labels is not None else None
    if classes is None or classes[2].min() < 2:  # a class with one image cannot be split both ways
        permutation = rng.permutation(count)
        return np.sort(permutation[holdout_count:]), np.sort(permutation[:holdout_count])
    _, class_of, class_counts = classes
    if min(train_count, holdout_count) < len(class_counts):
        raise GanopsError(f"data.holdout_fraction: cannot split {count} images of {len(class_counts)} classes "
                          f"into {train_count} train and {holdout_count} holdout images with every class in both")
    members = np.split(np.argsort(class_of, kind="stable"), np.cumsum(class_counts)[:-1])
    train_per_class = _approximate_mode(class_counts, train_count, rng)
    holdout_per_class = _approximate_mode(class_counts - train_per_class, holdout_count, rng)
    train, holdout = [], []
    for class_members, n_train, n_holdout in zip(members, train_per_class, holdout_per_class):
        shuffled = class_members[rng.permutation(len(class_members))]
        train.append(shuffled[:n_train])
        holdout.append(shuffled[n_train:n_train + n_holdout])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(holdout))


def run(cfg: DataConfig, out_dir: str | Path) -> artifacts.DatasetInfo:
    """Load, split, scale and summarise; write everything into `out_dir` in one atomic swap."""
    loaded = sources.load(cfg, in_background=True)
    for skipped_file, problem in loaded.skipped:
        print(f"skipped {skipped_file}: {problem}", file=sys.stderr, flush=True)
    count = len(loaded)
    keep = np.arange(count)
    if cfg.max_images is not None and count > cfg.max_images:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(count, cfg.max_images, replace=False))
    labels = loaded.labels[keep] if loaded.labels is not None else None

    train_idx, holdout_idx = split_indices(len(keep), labels, cfg)
    _, height, width, channels = loaded.images.shape
    provenance = {
        "source": cfg.source,
        "path": cfg.path,
        "labels_path": cfg.labels_path,
        "images_read": count,
        "classes": {str(k): v for k, v in loaded.classes.items()} if loaded.classes else None,
        "skipped": [{"file": f, "problem": p} for f, p in loaded.skipped],
    }
    tables, labels_of, hashes, writes = [], {}, {}, []
    # One writer thread: a split's file is written (its CRC and the copy into the page cache release the
    # GIL) while the next split is scaled and the summary table is built.
    with artifacts.atomic_path(out_dir) as tmp, ThreadPoolExecutor(max_workers=1) as writer:
        tmp.mkdir()
        for name, file_name, idx in (("train", TRAIN_FILE, train_idx), ("holdout", HOLDOUT_FILE, holdout_idx)):
            rows = keep[idx]
            images, statistics, hashes[name] = scale_and_summarise(loaded.images, rows, loaded.wait_for)
            loaded.wait_for(count)  # the whole input read and its end checked before anything is written
            labels_of[name] = loaded.labels[rows] if loaded.labels is not None else None
            writes.append(writer.submit(artifacts.write_split, tmp / file_name,
                                        artifacts.Split(images=images, labels=labels_of[name])))
            tables.append(summary_table(name, labels_of[name], [loaded.sources[r] for r in rows],
                                        loaded.orig_shapes[rows], statistics, hashes[name]))
            del images  # the writer holds the only reference: freed once written
        artifacts.write_summary(tmp / SUMMARY_FILE, pd.concat(tables, ignore_index=True))

        data_hash = hashlib.sha1()
        for name in ("train", "holdout"):
            data_hash.update("".join(hashes[name]).encode())
            if labels_of[name] is not None:
                data_hash.update(labels_of[name].tobytes())
        info = artifacts.DatasetInfo(
            source=cfg.source, height=height, width=width, channels=channels,
            num_classes=int(loaded.labels.max()) + 1 if loaded.labels is not None else 0,
            train_count=len(train_idx), holdout_count=len(holdout_idx), data_hash=data_hash.hexdigest())
        artifacts.write_dataset_info(tmp / INFO_FILE, info)
        artifacts.write_json(tmp / SOURCE_FILE, provenance)
        for write in writes:
            write.result()
    return info
