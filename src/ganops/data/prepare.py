"""Prepare: load a source, subsample, split train/holdout (seeded, stratified when labelled), scale to
[-1, 1], and summarise every image in a table that the validate stage checks."""

from __future__ import annotations

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from ganops import artifacts
from ganops.config import DataConfig
from ganops.data import sources
from ganops.errors import GanopsError

TRAIN_FILE = "train.npz"
HOLDOUT_FILE = "holdout.npz"
SUMMARY_FILE = "summary.parquet"
INFO_FILE = "dataset.json"
SOURCE_FILE = "source.json"  # where the images came from: source, path, class names, skipped files
_SUMMARY_CHUNK = 8192  # images per statistics pass: bounds the temporaries of std() and isfinite()


def image_hashes(images: np.ndarray) -> list[str]:
    """sha1 of each image's bytes: equal images (duplicates, train/holdout leaks) share a hash."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return [hashlib.sha1(row).hexdigest() for row in flat]  # rows are contiguous buffers: no copies


def _chunk_statistics(chunk: np.ndarray) -> tuple:
    with np.errstate(invalid="ignore"):
        return (chunk.min(axis=1), chunk.max(axis=1), chunk.mean(axis=1), chunk.std(axis=1),
                (~np.isfinite(chunk)).sum(axis=1), image_hashes(chunk))


def summarise(images: np.ndarray, labels: np.ndarray | None, split: str,
              source_names: list[str], orig_shapes: np.ndarray) -> pd.DataFrame:
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    chunks = [flat[start:start + _SUMMARY_CHUNK] for start in range(0, len(flat), _SUMMARY_CHUNK)]
    # numpy reductions and sha1 of buffers over 2 KB release the GIL: threads use every core.
    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        parts = list(pool.map(_chunk_statistics, chunks))
    columns = [np.concatenate([part[i] for part in parts]) if parts else np.empty(0) for i in range(5)]
    return pd.DataFrame({
        "index": np.arange(len(images), dtype=np.int64),
        "split": split,
        "source": source_names,
        "label": labels if labels is not None else np.full(len(images), -1, dtype=np.int64),
        "orig_height": orig_shapes[:, 0],
        "orig_width": orig_shapes[:, 1],
        "orig_channels": orig_shapes[:, 2],
        "min": columns[0].astype(np.float32),
        "max": columns[1].astype(np.float32),
        "mean": columns[2].astype(np.float32),
        "std": columns[3].astype(np.float32),
        "nonfinite": columns[4].astype(np.int64),
        "hash": [digest for part in parts for digest in part[5]],
    })


def split_indices(count: int, labels: np.ndarray | None, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    indices = np.arange(count)
    stratify = labels
    if labels is not None and np.bincount(labels - labels.min()).min(initial=count) < 2:
        stratify = None  # a class with one image cannot be split both ways
    try:
        train_idx, holdout_idx = train_test_split(
            indices, test_size=cfg.holdout_fraction, random_state=cfg.seed, stratify=stratify)
    except ValueError as exc:
        raise GanopsError(f"data.holdout_fraction: cannot split {count} images ({exc})") from None
    return np.sort(train_idx), np.sort(holdout_idx)


def run(cfg: DataConfig, out_dir: str | Path) -> artifacts.DatasetInfo:
    """Load, split, scale and summarise; write everything into `out_dir` in one atomic swap."""
    loaded = sources.load(cfg)
    for skipped_file, problem in loaded.skipped:
        print(f"skipped {skipped_file}: {problem}", file=sys.stderr, flush=True)
    count = len(loaded)
    keep = np.arange(count)
    if cfg.max_images is not None and count > cfg.max_images:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(count, cfg.max_images, replace=False))
    labels = loaded.labels[keep] if loaded.labels is not None else None

    train_idx, holdout_idx = split_indices(len(keep), labels, cfg)
    tables, splits, hashes = [], {}, {}
    for name, idx in (("train", train_idx), ("holdout", holdout_idx)):
        rows = keep[idx]
        images = np.take(loaded.images, rows, axis=0)
        images *= np.float32(2.0)  # in place: a 70,000-image split is 220 MB per copy
        images -= np.float32(1.0)
        split_labels = loaded.labels[rows] if loaded.labels is not None else None
        splits[name] = artifacts.Split(images=images, labels=split_labels)
        tables.append(summarise(images, split_labels, name,
                                [loaded.sources[r] for r in rows], loaded.orig_shapes[rows]))
        hashes[name] = tables[-1]["hash"].tolist()
    summary = pd.concat(tables, ignore_index=True)

    data_hash = hashlib.sha1()
    for name in ("train", "holdout"):
        data_hash.update("".join(hashes[name]).encode())
        if splits[name].labels is not None:
            data_hash.update(splits[name].labels.tobytes())
    _, height, width, channels = loaded.images.shape
    info = artifacts.DatasetInfo(
        source=cfg.source, height=height, width=width, channels=channels,
        num_classes=int(loaded.labels.max()) + 1 if loaded.labels is not None else 0,
        train_count=len(train_idx), holdout_count=len(holdout_idx), data_hash=data_hash.hexdigest())
    provenance = {
        "source": cfg.source,
        "path": cfg.path,
        "labels_path": cfg.labels_path,
        "images_read": count,
        "classes": {str(k): v for k, v in loaded.classes.items()} if loaded.classes else None,
        "skipped": [{"file": f, "problem": p} for f, p in loaded.skipped],
    }

    with artifacts.atomic_path(out_dir) as tmp:
        tmp.mkdir()
        artifacts.write_split(tmp / TRAIN_FILE, splits["train"])
        artifacts.write_split(tmp / HOLDOUT_FILE, splits["holdout"])
        artifacts.write_summary(tmp / SUMMARY_FILE, summary)
        artifacts.write_dataset_info(tmp / INFO_FILE, info)
        artifacts.write_json(tmp / SOURCE_FILE, provenance)
    return info
