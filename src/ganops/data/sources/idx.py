"""IDX files (the MNIST format), raw or gzip-compressed, with an optional IDX label file.

Header: two zero bytes, a type code, the number of dimensions, then each dimension as a big-endian
uint32; the body is the values in C order. Images are uint8 with 3 dimensions (N, H, W; magic 2051)
or 4 (N, H, W, C with C 1 or 3; magic 2052); labels are integers with 1 dimension (magic 2049 for uint8).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ganops.config import DataConfig
from ganops.data.sources.common import (
    LoadedImages, existing, finish, integer_labels, uniform_shapes, unit_from_integers)
from ganops.errors import GanopsError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGE_MAGIC = 0x0803  # uint8, 3 dimensions
LABEL_MAGIC = 0x0801  # uint8, 1 dimension


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it starts with the gzip signature (whatever its name)."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise GanopsError(f"{path}: truncated gzip stream (the file ends before its compressed data does)") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise GanopsError(f"{path}: corrupt gzip stream ({exc})") from None


def read_idx(path: Path, kind: str, allowed_dims: tuple[int, ...], integer_only: bool) -> np.ndarray:
    data = read_bytes(path)
    expected = "2051 (uint8 images, N×H×W)" if kind == "image" else "2049 (uint8 labels, N)"
    if len(data) < 4:
        raise GanopsError(f"{path}: too short to be an IDX {kind} file ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[:2] != b"\0\0" or type_code not in _TYPES or ndim not in allowed_dims \
            or (kind == "image" and type_code != 0x08) \
            or (integer_only and _TYPES[type_code][1] not in "ui"):
        raise GanopsError(f"{path}: wrong magic number {magic} (0x{magic:08x}) for an IDX {kind} file, "
                          f"expected {expected}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise GanopsError(f"{path}: truncated IDX header ({len(data)} bytes, expected {header_size})")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_TYPES[type_code])
    body = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(data) - header_size
    if have != body:
        shape = "×".join(map(str, dims))
        problem = "truncated body" if have < body else "trailing bytes after the body"
        raise GanopsError(f"{path}: {problem}: header says {shape} values = {body:,} bytes, file has {have:,}")
    values = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(dims)
    return values.astype(dtype.newbyteorder("="), copy=False)


def load(cfg: DataConfig) -> LoadedImages:
    images_path = existing(cfg.path, "file")
    pixels = read_idx(images_path, "image", (3, 4), integer_only=True)
    if pixels.ndim == 3:
        pixels = pixels[..., None]
    if pixels.shape[-1] not in (1, 3):
        raise GanopsError(f"{images_path}: images have {pixels.shape[-1]} channels, expected 1 or 3")
    labels = None
    if cfg.labels_path:
        labels_path = existing(cfg.labels_path, "file", key="data.labels_path")
        raw_labels = read_idx(labels_path, "label", (1,), integer_only=True)
        if len(raw_labels) != len(pixels):
            raise GanopsError(f"{labels_path}: {len(raw_labels):,} labels for {len(pixels):,} images "
                              f"in {images_path}")
        labels = integer_labels(raw_labels, str(labels_path), lambda i: f"label {i}")
    name = images_path.name
    return LoadedImages(
        images=finish(unit_from_integers(pixels), cfg, str(images_path)),
        labels=labels,
        sources=[f"{name}:{i}" for i in range(len(pixels))],
        orig_shapes=uniform_shapes(len(pixels), pixels.shape[1:]),
    )
