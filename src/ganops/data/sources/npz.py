"""NumPy `.npz` archives: array `x` of images, optional array `y` of integer labels.

`x` is (N, H, W) or (N, H, W, C) with C 1 or 3, pixels 0–255 (any integer dtype) or 0–1 (floats);
any other array in the archive is an error, so a misnamed label array is never silently ignored.
Each array's .npy header is checked against the bytes its member holds before numpy takes memory for it.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from ganops.config import DataConfig
from ganops.data.sources.common import (
    MAX_DEFLATE_RATIO,
    LoadedImages,
    existing,
    finish,
    finish_integers,
    integer_labels,
    uniform_shapes,
    unit_from_numbers,
)
from ganops.errors import GanopsError


def _check_member(path: Path, archive: zipfile.ZipFile, key: str, archive_size: int) -> None:
    """Raise unless array `key`'s .npy header agrees with the bytes its member holds. np.load takes the
    whole array at the header's shape before it reads any data, so a header claiming 10⁹ images over a few
    kilobytes would ask for hundreds of GB. The member's size comes from the zip directory, which bounds
    what zipfile returns; that size is itself checked against the archive's bytes first."""
    name = key if key in archive.namelist() else f"{key}.npy"  # np.load's own lookup order
    info, where = archive.getinfo(name), f"{path}: member {name}"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise GanopsError(f"{where}: zip compression method {info.compress_type}, whose inflated size cannot "
                          "be bounded before reading; write the archive with np.savez or np.savez_compressed")
    most = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else MAX_DEFLATE_RATIO)
    if info.compress_size > archive_size or info.file_size > most:
        raise GanopsError(f"{where}: the zip directory says {info.file_size:,} bytes ({info.compress_size:,} "
                          f"compressed), more than this {archive_size:,}-byte archive can hold")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0  # 3.0 differs from 2.0 only in the header text's encoding
        shape, _, dtype = read_header(member)
        header_size = member.tell()
    if dtype.hasobject:  # pickled: np.load refuses it (allow_pickle=False) with its own message
        return
    body_bytes, have = math.prod(shape) * dtype.itemsize, info.file_size - header_size
    if body_bytes != have:
        problem = "truncated array" if have < body_bytes else "trailing bytes after the array"
        raise GanopsError(f"{where}: {problem}: header says {'×'.join(f'{d:,}' for d in shape)} {dtype} values "
                          f"= {body_bytes:,} bytes, but the member holds {have:,} bytes after its "
                          f"{header_size}-byte header")


def load(cfg: DataConfig) -> LoadedImages:
    path = existing(cfg.path, "file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            unexpected = sorted(names - {"x", "y"})
            if unexpected or "x" not in names:
                raise GanopsError(f"{path}: expected arrays 'x' and optionally 'y', found {sorted(names)}")
            with zipfile.ZipFile(path) as members:
                archive_size = os.stat(path).st_size
                for key in sorted(names):
                    _check_member(path, members, key, archive_size)
            pixels = archive["x"]
            raw_labels = archive["y"] if "y" in names else None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise GanopsError(f"{path}: not a readable .npz archive ({exc})") from None
    if pixels.ndim == 3:
        pixels = pixels[..., None]
    if pixels.ndim != 4 or pixels.shape[-1] not in (1, 3):
        raise GanopsError(f"{path}: key 'x' has shape {pixels.shape}, expected (N, H, W) or (N, H, W, C) "
                          f"with C 1 or 3")
    if pixels.dtype == np.uint8:  # every value is a valid pixel: nothing to check, no float copy yet
        images = finish_integers(pixels, cfg, str(path))
    else:
        per_image = int(np.prod(pixels.shape[1:]))
        images = finish(unit_from_numbers(pixels, f"{path}: key 'x'", lambda flat: f"image {flat // per_image}"),
                        cfg, str(path))
    labels = None
    if raw_labels is not None:
        if raw_labels.ndim != 1 or len(raw_labels) != len(pixels):
            raise GanopsError(f"{path}: key 'y' has shape {raw_labels.shape} for {len(pixels):,} images "
                              f"(expected ({len(pixels)},))")
        labels = integer_labels(raw_labels, f"{path}: key 'y'", lambda i: f"index {i}")
    return LoadedImages(
        images=images,
        labels=labels,
        sources=[f"{path.name}:{i}" for i in range(len(pixels))],
        orig_shapes=uniform_shapes(len(pixels), pixels.shape[1:]),
    )
