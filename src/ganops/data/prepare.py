"""Prepare: open a source, subsample, split train/validation/test (seeded, stratified when labelled), quantise to
uint8 shards (`artifacts.split_writer`), and summarise every image in a table that the validate stage checks.

The source is read once, in order, in pieces (`sources.open_stream`): its labels and count come first, so the
splits are drawn before any pixel is read, and each piece's images go to their split's shards as they pass.
Memory holds a few pieces and each split's labels, whatever the size of the data."""

from __future__ import annotations

import hashlib
import math
import os
import queue
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ganops import artifacts, shards
from ganops.config import DataConfig
from ganops.data import sources
from ganops.data.splits import split_indices
from ganops.errors import GanopsError

# Images per task: at most 1,024 and 1 MiB of uint8 pixels, so a task's pixels (and their 4× larger float32
# statistics temporaries) stay in cache while quantised, summarised and hashed, and bounded for large images.
_TASK_IMAGES, _TASK_BYTES = 1024, 1 << 20


def image_hashes(images: np.ndarray) -> list[str]:
    """sha1 of each image's bytes: equal images (duplicates, leaks between splits) share a hash."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return [hashlib.sha1(row.data).hexdigest() for row in flat]  # rows are contiguous buffers: no copies


def quantize_rows(images: np.ndarray, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`images[rows]` (uint8 0–255 or float32 [0, 1]) as uint8 into `out`; returns each row's count of
    non-finite input pixels (stored as whatever the cast makes of them: validate rejects such images).

    uint8 pixels are copied as they are and float ones rounded to the same scale (`shards.quantize`), so an
    image read as uint8 and the same image read as floats prepare to identical bytes, hence identical hashes."""
    if images.dtype == np.uint8:
        np.take(images, rows, axis=0, out=out)
        return np.zeros(len(rows), np.int64)
    chunk = images[rows]
    nonfinite = np.count_nonzero(~np.isfinite(chunk.reshape(len(rows), -1)), axis=1).astype(np.int64)
    with np.errstate(invalid="ignore"):
        out[...] = shards.quantize(chunk)
    return nonfinite


def _quantize_chunk(images: np.ndarray, rows: np.ndarray, out: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    nonfinite = quantize_rows(images, rows, out)
    levels = out.reshape(len(out), -1)
    signed = shards.to_signed(levels)  # the statistics of what every consumer reads
    mean = signed.mean(axis=1, dtype=np.float64)
    signed -= mean.astype(np.float32)[:, None]  # centred in place: one float32 copy of the task, not two
    std = np.sqrt(np.einsum("ij,ij->i", signed, signed) / np.float32(levels.shape[1]))
    # to_signed is monotonic and per pixel, so the extremes are those of the levels, mapped: the same values,
    # taken from uint8 (1.4× the images/s of the step, one thread, 85 images of 64×64×3 a task).
    low, high = shards.to_signed(levels.min(axis=1)), shards.to_signed(levels.max(axis=1))
    return low, high, mean, std, nonfinite, image_hashes(out)


def quantize_and_summarise(images: np.ndarray, rows: np.ndarray, pool: Executor | None = None
                           ) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """`images[rows]` as uint8 (the prepared pixels), each image's statistics on the [-1, 1] scale and the
    sha1 of its uint8 bytes.

    In tasks of `_TASK_IMAGES` images or `_TASK_BYTES`, in order, on every core (numpy and sha1 of buffers
    over 2 KB release the GIL): `pool`, or a pool of this process's CPUs made for the call.
    """
    if pool is None:
        with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as own:
            return quantize_and_summarise(images, rows, own)
    quantized = np.empty((len(rows), *images.shape[1:]), dtype=np.uint8)
    step = max(1, min(_TASK_IMAGES, _TASK_BYTES // max(1, math.prod(images.shape[1:]))))
    parts = list(pool.map(lambda s: _quantize_chunk(images, rows[s:s + step], quantized[s:s + step]),
                          range(0, len(rows), step)))
    columns: list[np.ndarray] = [np.concatenate([part[i] for part in parts]) if parts else np.empty(0)
                                 for i in range(5)]
    statistics: dict[str, np.ndarray] = {
        "min": columns[0].astype(np.float32),
        "max": columns[1].astype(np.float32),
        "mean": columns[2].astype(np.float32),
        "std": columns[3].astype(np.float32),
        "nonfinite": columns[4].astype(np.int64),
    }
    return quantized, statistics, [digest for part in parts for digest in part[5]]


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


def untracked_input(cfg: DataConfig, raw_dir: Path) -> str | None:
    """A note when `data.path` (or the label file) lies outside `raw_dir`, the folder the prepare stage
    depends on: DVC then cannot see an edit in place."""
    outside = [path for path in (cfg.path, cfg.labels_path)
               if path is not None and not Path(path).resolve().is_relative_to(raw_dir.resolve())]
    if not outside:
        return None
    return (f"{', '.join(map(str, outside))} is outside {raw_dir}/, which DVC tracks: editing it in place will not "
            f"rerun prepare (copy it there and `dvc add` it; see {raw_dir}/README.md)")


def read_ahead(pieces: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """`pieces` produced in a background thread, one ahead: the source reads and decodes the next piece (zlib,
    file reads and numpy copies release the GIL) while this one is quantised, and no more than those two exist
    at once. The source's error is raised here, in order; leaving early stops the thread and closes `pieces`
    (its files, its worker pool)."""
    ready: queue.Queue[tuple[np.ndarray | None, BaseException | None]] = queue.Queue()
    room, stop = threading.Semaphore(1), threading.Event()  # room: the next piece may be made

    def produce() -> None:
        try:
            while True:
                while not room.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                piece = next(pieces, None)
                ready.put((piece, None))
                if piece is None:
                    return
        except BaseException as exc:  # handed to the consumer
            ready.put((None, exc))
        finally:
            getattr(pieces, "close", lambda: None)()

    producer = threading.Thread(target=produce, name="prepare: read source", daemon=True)
    producer.start()
    try:
        while True:
            piece, error = ready.get()
            room.release()
            if error is not None:
                raise error
            if piece is None:
                return
            yield piece
            del piece  # before the next one is waited for: two pieces at most
    finally:
        stop.set()
        producer.join()


def run(cfg: DataConfig, out_dir: str | Path, raw_dir: str | Path | None = None,
        chunk_images: int = sources.CHUNK_IMAGES) -> artifacts.DatasetInfo:
    """Open, split, quantise and summarise; write everything into `out_dir` in one atomic swap (an interrupted
    run leaves the previous folder, never a half-written shard). `raw_dir`: the folder of the user's
    DVC-tracked images, to note inputs that lie outside it. `chunk_images`: images per piece read."""
    note = untracked_input(cfg, Path(raw_dir)) if raw_dir is not None else None
    if note:
        print(f"prepare: note: {note}", file=sys.stderr, flush=True)
    unreadable: dict[str, str] = {}
    while True:  # again without the files a folder could not decode: the splits had counted them
        stream = sources.open_stream(cfg, chunk_images, unreadable)
        try:
            info = _prepare(cfg, stream, Path(out_dir))
        except sources.UnreadableFile as late:
            unreadable |= late.problems
            continue
        except MemoryError:  # a piece at its original size (large photos being resized) that memory cannot hold
            raise GanopsError(f"{cfg.path or cfg.source}: not enough memory to read pieces of {chunk_images:,} "
                              "images at their original size") from None
        for skipped_file, problem in stream.skipped:
            print(f"skipped {skipped_file}: {problem}", file=sys.stderr, flush=True)
        return info


def _prepare(cfg: DataConfig, stream: sources.ImageStream, out_dir: Path) -> artifacts.DatasetInfo:
    keep = np.arange(stream.count)
    if cfg.max_images is not None and stream.count > cfg.max_images:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(stream.count, cfg.max_images, replace=False))
    kept_labels = stream.labels[keep] if stream.labels is not None else None
    split_of = np.full(stream.count, -1, dtype=np.int8)  # each source image's split (its place in SPLITS), or -1
    counts = []
    for number, positions in enumerate(split_indices(len(keep), kept_labels, cfg)):
        split_of[keep[positions]] = number
        counts.append(len(positions))
    shape = (cfg.image_size, cfg.image_size, cfg.channels)
    with artifacts.atomic_path(out_dir) as tmp:
        tmp.mkdir()
        prepared = artifacts.PreparedData(tmp)
        writers = [artifacts.split_writer(prepared.split_path(name), shape, count, stream.labels is not None)
                   for name, count in zip(artifacts.SPLITS, counts, strict=True)]
        tables, hashes = _write_splits(stream, split_of, writers)
        artifacts.write_summary(prepared.summary_path, pd.concat(tables, ignore_index=True))
        data_hash = hashlib.sha1()
        for table, split_hashes in zip(tables, hashes, strict=True):  # a split's image hashes, then its labels
            data_hash.update("".join(split_hashes).encode())
            if stream.labels is not None:
                data_hash.update(table["label"].to_numpy(np.int64).tobytes())
        info = artifacts.DatasetInfo(
            source=cfg.source, height=shape[0], width=shape[1], channels=shape[2],
            num_classes=int(stream.labels.max()) + 1 if stream.labels is not None else 0,
            train_count=counts[0], validation_count=counts[1], test_count=counts[2],
            data_hash=data_hash.hexdigest())
        artifacts.write_dataset_info(prepared.info_path, info)
        artifacts.write_json(prepared.source_path, {
            "source": cfg.source,
            "path": cfg.path,
            "labels_path": cfg.labels_path,
            "images_read": stream.count,
            "classes": {str(k): v for k, v in stream.classes.items()} if stream.classes else None,
            "skipped": [{"file": f, "problem": p} for f, p in stream.skipped],
        })
    return info


def _write_splits(stream: sources.ImageStream, split_of: np.ndarray, writers: list
                  ) -> tuple[list[pd.DataFrame], list[list[str]]]:
    """One pass over the source's pieces: each piece's kept images quantised and summarised (on every core),
    then appended to their split's shards, in source order. Returns each split's summary table and hashes.

    The shards are written by a thread of their own while the next piece is quantised (file writes release the
    GIL): at 64×64×3 the writes alone took 37% of the stage (2.4 of 6.6 s), since this machine's disk takes
    360–590 MB/s once a gigabyte is waiting to be flushed. At most one piece's pixels wait for their write."""
    parts: list[list[tuple]] = [[] for _ in writers]  # per split: (source rows, statistics, hashes) per piece
    start = 0
    writing: list[Future] = []  # the previous piece's appends, in order on the one writing thread
    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare: write shards") as write:
        for piece in read_ahead(stream.chunks):
            piece_splits = split_of[start:start + len(piece)]
            quantized_piece = []
            for number in range(len(writers)):
                rows = np.flatnonzero(piece_splits == number)
                quantized, statistics, digests = quantize_and_summarise(piece, rows, pool)
                quantized_piece.append((quantized, stream.labels[start + rows] if stream.labels is not None else None))
                parts[number].append((start + rows, statistics, digests))
            for done in writing:
                done.result()  # the previous piece's errors, here and in order
            writing = [write.submit(writer.append, pixels, labels)
                       for writer, (pixels, labels) in zip(writers, quantized_piece, strict=True)]
            start += len(piece)
        for done in writing:
            done.result()
    if start != stream.count:  # a source checks its input's length itself: this would be a source's bug
        raise RuntimeError(f"the source gave {start:,} images of the {stream.count:,} it announced")
    for writer in writers:
        writer.close()
    tables: list[pd.DataFrame] = []
    hashes: list[list[str]] = []
    for name, split_parts in zip(artifacts.SPLITS, parts, strict=True):
        rows = np.concatenate([np.empty(0, np.int64)] + [p[0] for p in split_parts])
        statistics = {k: np.concatenate([np.empty(0, np.int64 if k == "nonfinite" else np.float32)]
                                        + [p[1][k] for p in split_parts])
                      for k in ("min", "max", "mean", "std", "nonfinite")}
        hashes.append([digest for part in split_parts for digest in part[2]])
        tables.append(summary_table(name, stream.labels[rows] if stream.labels is not None else None,
                                    stream.names_at(rows), stream.orig_shapes[rows], statistics, hashes[-1]))
    return tables, hashes
