"""A prepared split on disk: a folder of uint8 `.npy` shards and an `index.json`, written and opened only through
`artifacts` (which owns every cross-stage format); here is the layout and the pixel scale.

    <split>/index.json          format, count, shape, dtype, labelled, shards: [{images, labels, count}]
    <split>/images-00000.npy    uint8 NHWC, at most `shard_capacity` images
    <split>/labels-00000.npy    int64, present when the data is labelled

Why `.npy` and not TFRecord (or PNG in zip): a `.npy` shard opens with `np.load(mmap_mode="r")`, so any image is
one slice of the page cache away: no decoding, no parse, random access. That lets training read each epoch in a
full seeded permutation (exact resume at any step, no shuffle buffer to replay) and lets consumers read bounded
chunks. Measured on 8,192 random 64×64×3 images (2 CPU cores, warm page cache, batches of 64 mapped to float32
[-1, 1] in tf.data): `.npy` mmap with a batch gather 72,000–126,000 images/s, TFRecord with a 4,096-image shuffle
buffer and `parse_example` 25,000–42,000 images/s; both files are the same size (uint8 pixels, no compression).

Pixels are stored as uint8 on the 0–255 scale: `quantize` rounds [0, 1] values to it, `to_signed` maps it to the
[-1, 1] float32 that every network sees. Those two functions (and `SIGNED_SCALE` for tf.data pipelines, which
must compute the same float32 arithmetic) are the only definition of the scale.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ganops.errors import GanopsError

PIXEL_LEVELS = 255  # uint8 full scale: unit value u is stored as round(u × 255)
SIGNED_SCALE = np.float32(PIXEL_LEVELS / 2)  # stored v is v / 127.5 − 1 in [-1, 1], in float32
# Bytes of pixels per shard: large enough that opening a shard (a file and an mmap) costs nothing next to
# reading it, small enough that many shards let readers spread over workers and a write is redone in small
# pieces. 64 MiB is 5,461 images at 64×64×3, 85,598 at 28×28×1; the digits fit in one.
SHARD_BYTES = 64 * 2**20
INDEX_FILE = "index.json"
FORMAT = 1


def quantize(unit: np.ndarray) -> np.ndarray:
    """[0, 1] pixels (any float) → uint8, round(u × 255); uint8 input is returned as it is."""
    if unit.dtype == np.uint8:
        return unit
    scaled = np.multiply(unit, np.float32(PIXEL_LEVELS), dtype=np.float32)
    return np.clip(np.rint(scaled), 0, PIXEL_LEVELS, out=scaled).astype(np.uint8)


def to_signed(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels → float32 in [-1, 1] (v / 127.5 − 1, the same arithmetic as the tf.data pipelines)."""
    signed = np.divide(pixels, SIGNED_SCALE, dtype=np.float32)
    signed -= np.float32(1)
    return signed


def from_signed(signed: np.ndarray) -> np.ndarray:
    """float [-1, 1] pixels → uint8; the inverse of `to_signed` on its values."""
    return quantize((np.asarray(signed, np.float32) + np.float32(1)) / np.float32(2))


def shard_capacity(image_shape: tuple[int, ...], shard_bytes: int | None = None) -> int:
    """Images per shard: as many as fit in `shard_bytes` (default `SHARD_BYTES`) of uint8 pixels, at least one."""
    return max(1, (shard_bytes or SHARD_BYTES) // max(1, int(np.prod(image_shape))))


def write(folder: Path, images: np.ndarray, labels: np.ndarray | None, shard_bytes: int | None = None) -> None:
    """uint8 NHWC `images` (and int64 labels) as shards into the existing, empty `folder`; the index last.

    The caller makes it atomic (`artifacts.atomic_path`): the folder appears whole or not at all."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"shards hold uint8 NHWC images, got {images.dtype} {images.shape}")
    with ShardWriter(folder, images.shape[1:], len(images), labels is not None, shard_bytes) as writer:
        writer.append(images, labels)


class ShardWriter:
    """A split of a known size written as it arrives, in pieces of any length: each shard's .npy header
    goes out first (its count is known from the split's size), then its pixels straight from each piece,
    so nothing is buffered but a shard's labels (8 bytes an image). The bytes are those `np.save` writes.
    `close` checks that exactly `count` images came and writes the index last."""

    def __init__(self, folder: Path, shape: tuple[int, ...], count: int, labelled: bool,
                 shard_bytes: int | None = None) -> None:
        self.folder, self.shape, self.count, self.labelled = folder, tuple(shape), count, labelled
        self.capacity = shard_capacity(self.shape, shard_bytes or SHARD_BYTES)
        self.entries: list[dict[str, str | int]] = []
        self.written = 0  # images appended so far
        self._file: BinaryIO | None = None
        self._labels: list[np.ndarray] = []

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.close()
        elif self._file is not None:
            self._file.close()

    def append(self, images: np.ndarray, labels: np.ndarray | None) -> None:
        if images.dtype != np.uint8 or images.shape[1:] != self.shape:
            raise ValueError(f"shards of {self.shape} uint8 images, got {images.dtype} {images.shape}")
        if self.written + len(images) > self.count:
            raise ValueError(f"{self.written + len(images)} images for a split of {self.count}")
        start = 0
        while start < len(images):
            if self._file is None:
                self._open_shard()
            assert self._file is not None
            room = int(self.entries[-1]["count"]) - self.written % self.capacity
            piece = np.ascontiguousarray(images[start:start + room])
            self._file.write(piece.data)
            if self.labelled:
                assert labels is not None
                self._labels.append(np.asarray(labels[start:start + room], np.int64))
            start, self.written = start + len(piece), self.written + len(piece)
            if self.written % self.capacity == 0 or self.written == self.count:
                self._close_shard()

    def _open_shard(self) -> None:
        number = len(self.entries)
        count = min(self.capacity, self.count - self.written)
        self.entries.append({"images": f"images-{number:05d}.npy", "count": count})
        if self.labelled:
            self.entries[-1]["labels"] = f"labels-{number:05d}.npy"
        self._file = open(self.folder / f"images-{number:05d}.npy", "wb")  # noqa: SIM115 - closed per shard
        # What np.save writes before the data of a C-ordered uint8 array of this shape (format 1.0).
        np.lib.format.write_array_header_1_0(
            self._file, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                         "shape": (count, *self.shape)})

    def _close_shard(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        if self.labelled:
            np.save(self.folder / str(self.entries[-1]["labels"]), np.concatenate(self._labels))
            self._labels = []

    def close(self) -> None:
        if self.written != self.count:
            raise ValueError(f"{self.written} images written of a split of {self.count}")
        index = {"format": FORMAT, "count": self.count, "shape": list(self.shape), "dtype": "uint8",
                 "labelled": self.labelled, "shards": self.entries}
        (self.folder / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")


@dataclasses.dataclass(frozen=True)
class ShardedSplit:
    """An opened split folder: counts and shape from its index, pixels read on demand through mmap."""

    folder: Path
    shape: tuple[int, int, int]
    counts: tuple[int, ...]  # images per shard, in order
    image_files: tuple[str, ...]
    label_files: tuple[str, ...] | None  # None when unlabelled

    @classmethod
    def open(cls, folder: str | Path) -> ShardedSplit:
        folder = Path(folder)
        index_path = folder / INDEX_FILE
        if not index_path.is_file():
            old = folder.with_name(folder.name + ".npz")
            hint = (f" ({old.name} is the old float32 format: rerun prepare)" if old.exists()
                    else " (run the prepare stage first)")
            raise GanopsError(f"{folder}: prepared split not found{hint}")
        try:
            index = json.loads(index_path.read_text())
            entries = index["shards"]
            split = cls(folder, tuple(index["shape"]), tuple(int(e["count"]) for e in entries),
                        tuple(e["images"] for e in entries),
                        tuple(e["labels"] for e in entries) if index["labelled"] else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise GanopsError(f"{index_path}: not a prepared split index ({exc!r})") from None
        if index.get("format") != FORMAT or index.get("dtype") != "uint8" or sum(split.counts) != index["count"]:
            raise GanopsError(f"{index_path}: unsupported prepared split (format {index.get('format')}, "
                              f"dtype {index.get('dtype')}); rerun prepare")
        return split

    def __len__(self) -> int:
        return sum(self.counts)

    @property
    def labelled(self) -> bool:
        return self.label_files is not None

    @property
    def starts(self) -> np.ndarray:
        """The first row of each shard within the split, and the split's length last."""
        return np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])

    dtype = np.dtype(np.uint8)  # of what `gather` returns; `signed` gives float32 in [-1, 1]

    @functools.cached_property
    def _mapped(self) -> tuple[np.ndarray, ...]:
        """Every shard's pixels, memory-mapped once (read from disk as they are touched) and checked."""
        mapped = []
        for name, count in zip(self.image_files, self.counts, strict=True):
            pixels = np.load(self.folder / name, mmap_mode="r")
            if pixels.dtype != np.uint8 or pixels.shape != (count, *self.shape):
                raise GanopsError(f"{self.folder / name}: {pixels.dtype} {pixels.shape} does not match the index "
                                  f"({count} uint8 images of {self.shape}); rerun prepare")
            mapped.append(pixels)
        return tuple(mapped)

    def shard_images(self, shard: int) -> np.ndarray:
        return self._mapped[shard]

    def _read_rows(self, shard: int, local: np.ndarray, out: np.ndarray) -> None:
        """Rows `local` (ascending) of one shard into `out`, by positioned reads of each run of consecutive rows.

        Not through the mmap: every page a process touches in a file mapping stays in its resident memory
        until the mapping goes, so an epoch over a 300,000-image split (3.7 GB) would leave all of it
        resident. Read into our own buffers, the pages stay in the page cache, shared and reclaimable,
        and the process holds only the batch (measured: featurize at 100,000 64×64×3 images, 1.2 GB of
        its 1.8 GB resident memory was mapped shard pages)."""
        row_bytes = int(np.prod(self.shape))
        mapped = self._mapped[shard]
        assert isinstance(mapped, np.memmap)  # np.load(mmap_mode="r") of a .npy: its header's length is `offset`
        header = mapped.offset
        runs = np.flatnonzero(np.diff(local) != 1) + 1  # where a run of consecutive rows breaks
        fd = os.open(self.folder / self.image_files[shard], os.O_RDONLY)
        try:
            for first, stop in zip(np.concatenate([[0], runs]), np.concatenate([runs, [len(local)]]), strict=True):
                target = out[first:stop].data.cast("B")
                offset = header + int(local[first]) * row_bytes
                while len(target):  # a regular file returns short reads only at its end: a truncated shard
                    got = os.preadv(fd, [target], offset)
                    if got == 0:
                        raise GanopsError(f"{self.folder / self.image_files[shard]}: shorter than its header says; "
                                          "rerun prepare")
                    target, offset = target[got:], offset + got
        finally:
            os.close(fd)

    def shard_labels(self, shard: int) -> np.ndarray | None:
        if self.label_files is None:
            return None
        return np.load(self.folder / self.label_files[shard], mmap_mode="r")

    @functools.cached_property
    def labels(self) -> np.ndarray | None:
        """Every label of the split (int64, 8 bytes an image: small next to the pixels), or None."""
        if self.label_files is None:
            return None
        return np.concatenate([np.asarray(self.shard_labels(shard)) for shard in range(len(self.counts))])

    def chunks(self, max_images: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """The split in order as (uint8 images, labels) pieces of at most `max_images` (copies, not mmaps)."""
        for shard in range(len(self.counts)):
            labels = self.shard_labels(shard)
            for start in range(0, self.counts[shard], max_images):
                rows = np.arange(start, min(start + max_images, self.counts[shard]))
                pixels = np.empty((len(rows), *self.shape), np.uint8)
                self._read_rows(shard, rows, pixels)
                yield pixels, None if labels is None else np.array(labels[start:start + max_images])

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The uint8 images (and labels) at split positions `rows`, in that order; reads only those rows."""
        rows = np.asarray(rows, np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows outside 0…{len(self) - 1}")
        starts = self.starts
        shard_of = np.searchsorted(starts, rows, side="right") - 1
        images = np.empty((len(rows), *self.shape), np.uint8)
        for shard in np.unique(shard_of):
            where = np.flatnonzero(shard_of == shard)
            local = rows[where] - starts[shard]
            order = np.argsort(local, kind="stable")  # ascending reads within the shard
            picked = np.empty((len(local), *self.shape), np.uint8)
            self._read_rows(int(shard), local[order], picked)
            images[where[order]] = picked
        return images, None if self.labels is None else self.labels[rows]

    def signed(self, rows: np.ndarray) -> np.ndarray:
        """The images at `rows` as float32 in [-1, 1]."""
        return to_signed(self.gather(rows)[0])

    def read_all(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Every image (uint8) and label of the split, in order."""
        return self.gather(np.arange(len(self)))
