"""What every source shares: the opened-stream record, the one resize filter, pixel and label checks.

Every source hands back pixels already resized to `cfg.image_size` with `cfg.channels` channels, so
everything after `sources.open` sees one layout whatever the input was: float32 in [0, 1], or the
source's own uint8 pixels (full scale 255) when they needed no resizing. Prepare scales both kinds with
the same float32 arithmetic, so the same image from any source gives the same prepared bytes; keeping
uint8 saves a 4× larger intermediate on the common path (IDX and NPZ files at their own size).

A source is opened, not loaded: `ImageStream` holds the small per-image facts (count, labels, names, original
shapes) up front, and the pixels arrive as pieces of at most `chunk_images` images, in source order, so memory
stays bounded whatever the dataset's size.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy as np
from PIL import Image

from ganops.config import DataConfig
from ganops.errors import GanopsError

# PIL's bicubic filter (antialiased when shrinking): the one high-quality filter, fixed for all sources.
# Metrics computed on images resized two different ways are not comparable.
RESIZE_FILTER = Image.Resampling.BICUBIC
# ITU-R 601 luma, for RGB → grayscale.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Deflate codes at most 258 bytes in 2 bits (RFC 1951), so no gzip file or zip member inflates past 1032 times
# its compressed size: the bound a decompressed size claimed in a header must fit.
MAX_DEFLATE_RATIO = 1032
# Images per matrix product of a resize. The float rounding of a batched product depends on the batch (its size
# and each image's place in it), so the pieces a source resizes are cut at the same multiples of this count as
# a whole-array resize would be: streamed or not, the same images give the same bytes.
RESIZE_CHUNK = 4096
# Default images per streamed piece: a multiple of RESIZE_CHUNK (see above). A piece holds its images at their
# original size, as float32 when they are resized: 13 MB of 28×28, 50 MB of 64×64×3 uint8, but ~1.9 GB of
# 178×218×3 photos being resized. Smaller pieces bound that too, at the price of resized bytes that differ in
# the last rounding from the whole-array resize (not offered as a param yet: prepare.run takes chunk_images).
CHUNK_IMAGES = RESIZE_CHUNK


@dataclasses.dataclass(frozen=True)
class NumberedNames(Sequence[str]):
    """The names "file:row" of an array source's images, made when asked (300,000 strings cost ~25 MB)."""

    prefix: str
    size: int
    first: int = 0  # the number of the first image (a CSV table's first row is line 2)

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [f"{self.prefix}{i + self.first}" for i in range(*index.indices(self.size))]
        if not -self.size <= index < self.size:
            raise IndexError(index)
        return f"{self.prefix}{index % self.size + self.first}"

    def at(self, rows: list[int]) -> list[str]:
        """The names of images `rows` (each in range), in one comprehension: no call per name."""
        prefix, first = self.prefix, self.first
        return [f"{prefix}{row + first}" for row in rows]


@dataclasses.dataclass(frozen=True)
class ImageStream:
    """An opened source: the per-image facts up front, the pixels once, in bounded pieces, in source order."""

    count: int
    labels: np.ndarray | None  # int64 (N,), or None when the source is unlabelled
    sources: Sequence[str]  # where each image came from: a file name or "file:row"
    orig_shapes: np.ndarray  # int64 (N, 3): height, width, channels before resizing
    # (n, S, S, C) pieces, float32 in [0, 1] or uint8 0–255, n summing to `count`; iterating to the end checks
    # the end of the input too (a truncated or overlong file raises there).
    chunks: Iterator[np.ndarray]
    classes: dict[int, str] | None = None  # label → class name, where the source names its classes
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (file, problem)

    def __len__(self) -> int:
        return self.count

    def names_at(self, rows: np.ndarray) -> list[str]:
        """`sources` of the images at `rows`."""
        positions = rows.tolist()
        if isinstance(self.sources, NumberedNames):
            return self.sources.at(positions)
        return [self.sources[row] for row in positions]


class UnreadableFile(Exception):
    """Files that could not be decoded (path → problem), found while streaming with unreadable files skipped:
    the counts and splits made up front included them, so the caller opens the source again without them."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(f"{len(problems)} unreadable files")
        self.problems = problems


@dataclasses.dataclass(frozen=True)
class LoadedImages:
    """A whole source in memory (`sources.load`): for tests and small data; prepare streams instead."""

    images: np.ndarray  # (N, S, S, C): float32 in [0, 1], or uint8 0–255 (see the module docstring)
    labels: np.ndarray | None
    sources: Sequence[str]
    orig_shapes: np.ndarray
    classes: dict[int, str] | None = None
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def unit_images(self) -> np.ndarray:
        """The images as float32 in [0, 1], whichever kind the source returned."""
        return unit_from_integers(self.images) if self.images.dtype == np.uint8 else self.images


@functools.lru_cache(maxsize=32)
def resize_matrix(src: int, dst: int) -> np.ndarray:
    """(src, dst) float32 weights of PIL's bicubic resize along one axis: `row @ M` resizes a row.

    PIL resizes separably and linearly in float mode "F", so resizing the identity gives its exact
    weights; applying them as a matrix product resizes a whole batch at once instead of looping in Python.
    """
    identity = Image.fromarray(np.eye(src, dtype=np.float32))  # mode "F"
    return np.asarray(identity.resize((dst, src), RESIZE_FILTER), dtype=np.float32)


def resize_to(images01: np.ndarray, size: int) -> np.ndarray:
    """Resize float [0, 1] NHWC images to size×size with `RESIZE_FILTER`; a no-op when already there."""
    n, height, width, channels = images01.shape
    if (height, width) == (size, size):
        return images01.astype(np.float32, copy=False)
    rows, cols = resize_matrix(height, size), resize_matrix(width, size)
    out = np.empty((n, size, size, channels), dtype=np.float32)
    for start in range(0, n, RESIZE_CHUNK):
        chunk = images01[start:start + RESIZE_CHUNK].astype(np.float32, copy=False)
        out[start:start + RESIZE_CHUNK] = np.einsum("hy,nhwc,wx->nyxc", rows, chunk, cols, optimize=True)
    # Bicubic overshoots at edges; clip back into the pixel range.
    return np.clip(out, 0.0, 1.0, out=out)


def match_channels(images01: np.ndarray, channels: int, where: str) -> np.ndarray:
    """Convert NHWC images between grayscale and RGB (ITU-R 601 luma for RGB → gray)."""
    have = images01.shape[-1]
    if have == channels:
        return images01
    if have == 1 and channels == 3:
        return np.repeat(images01, 3, axis=-1)
    if have == 3 and channels == 1:
        return (images01 @ LUMA)[..., None].astype(np.float32, copy=False)
    raise GanopsError(f"{where}: images have {have} channels, cannot convert to {channels}")


def finish(images01: np.ndarray, cfg: DataConfig, where: str) -> np.ndarray:
    """Bring float [0, 1] NHWC images to `cfg.channels` and `cfg.image_size`, resizing the fewer channels."""
    if images01.shape[-1] > cfg.channels:
        return resize_to(match_channels(images01, cfg.channels, where), cfg.image_size)
    return match_channels(resize_to(images01, cfg.image_size), cfg.channels, where)


def finish_integers(pixels: np.ndarray, cfg: DataConfig, where: str) -> np.ndarray:
    """Integer NHWC pixels → the source's result: uint8 as they are when neither size nor channels change
    (gray → RGB repeats the channel, exact in uint8 too), else float [0, 1] through `finish`."""
    _, height, width, have = pixels.shape
    if pixels.dtype == np.uint8 and (height, width) == (cfg.image_size, cfg.image_size):
        if have == cfg.channels:
            return pixels
        if have == 1 and cfg.channels == 3:
            return np.repeat(pixels, 3, axis=-1)
    return finish(unit_from_integers(pixels), cfg, where)


def unit_from_integers(pixels: np.ndarray) -> np.ndarray:
    """uint8 (or uint16) pixels → float32 [0, 1], the same arithmetic for every source."""
    full_scale = np.float32(np.iinfo(pixels.dtype).max)
    return np.divide(pixels, full_scale, dtype=np.float32)


def check_numbers(pixels: np.ndarray, where: str, describe: Callable[[int], str]) -> float:
    """Raise on pixels that are not numbers, not finite or outside 0–255; else the largest one (0 if none).
    `describe(flat_index)` names the position of a bad value (row, column or index) in the message."""
    if pixels.dtype.kind == "b" or pixels.dtype.kind not in "iuf":
        raise GanopsError(f"{where}: pixels must be numbers, got dtype {pixels.dtype}")
    if pixels.dtype == np.uint8:
        return float(pixels.max(initial=0))
    if pixels.dtype.kind == "f":
        bad = ~np.isfinite(pixels)
        if bad.any():
            first = int(np.flatnonzero(bad.reshape(-1))[0])
            raise GanopsError(f"{where}: {describe(first)}: missing or non-finite pixel value")
    low, high = pixels.min(initial=0), pixels.max(initial=0)
    if low < 0 or high > 255:
        flat = pixels.reshape(-1)
        first = int(np.flatnonzero((flat < 0) | (flat > 255))[0])
        raise GanopsError(f"{where}: {describe(first)}: pixel value {flat[first].item()} is outside 0–255 and 0–1")
    return float(high)


def numbers_scale(dtype: np.dtype, high: float) -> float:
    """The full scale of numeric pixels of `dtype` whose largest value over the whole input is `high`.

    Integers are 0–255. Floats are 0–1 when none exceeds 1, else 0–255: a 0–255 image whose every pixel
    is 0 or 1 would be read as 0–1, which only happens for images that are black anyway. The scale is one
    for the whole input, so a source streaming floats finds `high` over all of them before scaling any."""
    return 1.0 if dtype.kind == "f" and high <= 1.0 else 255.0


def scale_numbers(pixels: np.ndarray, scale: float) -> np.ndarray:
    """Checked pixels divided by their full scale, as float32."""
    if pixels.dtype == np.uint8:
        return unit_from_integers(pixels)
    if pixels.dtype == np.float32 and pixels.flags.writeable:  # ours to reuse: no second 220 MB array
        return np.divide(pixels, np.float32(scale), out=pixels)
    return np.divide(pixels, np.float32(scale), dtype=np.float32)


def integer_labels(values: np.ndarray, where: str, describe: Callable[[int], str]) -> np.ndarray:
    """Labels as int64 ≥ 0; floats are accepted only when they hold whole numbers."""
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        labels = values.astype(np.int64)
    elif values.dtype.kind == "f":
        whole = np.isfinite(values) & (values == np.round(values))
        if not whole.all():
            first = int(np.flatnonzero(~whole)[0])
            raise GanopsError(f"{where}: {describe(first)}: label {float(values[first])} is not an integer")
        labels = values.astype(np.int64)
    else:
        for i, value in enumerate(values):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            if not (np.isfinite(number) and number == int(number)):
                raise GanopsError(f"{where}: {describe(i)}: label {value!r} is not an integer")
        labels = values.astype(np.float64).astype(np.int64)
    if labels.size and labels.min() < 0:
        first = int(np.flatnonzero(labels < 0)[0])
        raise GanopsError(f"{where}: {describe(first)}: label {labels[first].item()} is negative")
    return labels


def existing(path: str | None, kind: str, key: str = "data.path") -> Path:
    """`path` (the value of param `key`) as an existing file or folder (`kind`), else a clear error."""
    if not path:
        raise GanopsError(f"{key}: required for this data.source")
    resolved = Path(path)
    if not resolved.exists():
        raise GanopsError(f"{resolved}: not found ({key})")
    if kind == "folder" and not resolved.is_dir():
        raise GanopsError(f"{resolved}: is a file, the folder source needs a folder ({key})")
    if kind == "file" and resolved.is_dir():
        raise GanopsError(f"{resolved}: is a folder, this source needs a file ({key})")
    return resolved


def uniform_shapes(count: int, shape: tuple[int, ...]) -> np.ndarray:
    """`count` rows of one original (height, width, channels)."""
    return np.tile(np.array(shape, dtype=np.int64), (count, 1))


def array_chunks(count: int, chunk_images: int, read: Callable[[int, int], np.ndarray]) -> Iterator[np.ndarray]:
    """`read(start, stop)` for consecutive ranges of `chunk_images` covering `count` images."""
    for start in range(0, count, chunk_images):
        yield read(start, min(start + chunk_images, count))
