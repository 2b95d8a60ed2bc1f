"""NumPy `.npz` archives: array `x` of images, optional array `y` of integer labels.

`x` is (N, H, W) or (N, H, W, C) with C 1 or 3, pixels 0–255 (any integer dtype) or 0–1 (floats);
any other array in the archive is an error, so a misnamed label array is never silently ignored.
Each array's .npy header is checked against the bytes its member holds before numpy takes memory for it.
`x` is then read (inflated, for np.savez_compressed) a piece of images at a time; `y` whole.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ganops.config import DataConfig
from ganops.data.sources.common import (
    CHUNK_IMAGES,
    MAX_DEFLATE_RATIO,
    ImageStream,
    NumberedNames,
    array_chunks,
    check_numbers,
    existing,
    finish,
    finish_integers,
    integer_labels,
    numbers_scale,
    scale_numbers,
    uniform_shapes,
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


def _read_header(member) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from a .npy stream, leaving it at the first data byte."""
    version = np.lib.format.read_magic(member)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
        np.lib.format.read_array_header_2_0  # 3.0 differs from 2.0 only in the header text's encoding
    return read_header(member)


def _members(path: Path) -> tuple[dict[str, str], tuple[int, ...], np.dtype, np.ndarray | None]:
    """(array name → member name, shape and dtype of `x`, the labels array or None), every member checked."""
    with zipfile.ZipFile(path) as archive:
        members = {name.removesuffix(".npy"): name for name in archive.namelist()}  # np.load's names
        unexpected = sorted(set(members) - {"x", "y"})
        if unexpected or "x" not in members:
            raise GanopsError(f"{path}: expected arrays 'x' and optionally 'y', found {sorted(members)}")
        archive_size = os.stat(path).st_size
        for key in sorted(members):
            _check_member(path, archive, key, archive_size)
        with archive.open(members["x"]) as member:
            shape, _, dtype = _read_header(member)
        if dtype.hasobject:
            raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
        raw_labels = None
        if "y" in members:
            with archive.open(members["y"]) as member:
                raw_labels = np.lib.format.read_array(member, allow_pickle=False)
    return members, shape, dtype, raw_labels


def _pixel_chunks(path: Path, member_name: str, chunk_images: int) -> Iterator[np.ndarray]:
    """Array `x` in pieces of `chunk_images` images, native byte order, read (and inflated) as they are asked for."""
    with zipfile.ZipFile(path) as archive, archive.open(member_name) as member:
        shape, fortran_order, dtype = _read_header(member)
        if fortran_order:  # an image's values are not contiguous: read the array whole (rare; np.savez of x.T)
            pixels = np.lib.format.read_array(member, allow_pickle=False)
            yield from array_chunks(len(pixels), chunk_images, lambda a, b: np.ascontiguousarray(pixels[a:b]))
            return
        image_bytes = math.prod(shape[1:]) * dtype.itemsize
        for start in range(0, shape[0], chunk_images):
            count = min(chunk_images, shape[0] - start)
            data = member.read(count * image_bytes)  # the header was checked against the member's size
            yield np.frombuffer(data, dtype).reshape(count, *shape[1:]).astype(dtype.newbyteorder("="), copy=False)


def open_stream(cfg: DataConfig, chunk_images: int = CHUNK_IMAGES) -> ImageStream:
    path = existing(cfg.path, "file")
    try:
        members, shape, dtype, raw_labels = _members(path)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise GanopsError(f"{path}: not a readable .npz archive ({exc})") from None
    if len(shape) == 3:
        shape = (*shape, 1)
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise GanopsError(f"{path}: key 'x' has shape {shape}, "
                          f"expected (N, H, W) or (N, H, W, C) with C 1 or 3")
    count = shape[0]
    labels = None
    if raw_labels is not None:
        if raw_labels.ndim != 1 or len(raw_labels) != count:
            raise GanopsError(f"{path}: key 'y' has shape {raw_labels.shape} for {count:,} images "
                              f"(expected ({count},))")
        labels = integer_labels(raw_labels, f"{path}: key 'y'", lambda i: f"index {i}")
    return ImageStream(
        count=count,
        labels=labels,
        sources=NumberedNames(f"{path.name}:", count),
        orig_shapes=uniform_shapes(count, shape[1:]),
        chunks=_finished_chunks(path, members["x"], shape, dtype, cfg, chunk_images),
    )


def _finished_chunks(path: Path, member_name: str, shape: tuple[int, ...], dtype: np.dtype, cfg: DataConfig,
                     chunk_images: int) -> Iterator[np.ndarray]:
    """The pixels of `x` as the source's result, piece by piece. Floats are 0–1 or 0–255 by their largest value
    over the whole array (`common.numbers_scale`), so they are checked in a first pass and scaled in a
    second; integers have one scale, and each piece is checked as it comes."""
    where, per_image = f"{path}: key 'x'", math.prod(shape[1:])

    def checked(start: int, pixels: np.ndarray) -> float:
        return check_numbers(pixels, where, lambda flat: f"image {start + flat // per_image}")

    def pieces() -> Iterator[tuple[int, np.ndarray]]:
        for start_of, pixels in zip(range(0, shape[0], chunk_images),
                                    _pixel_chunks(path, member_name, chunk_images), strict=False):
            yield start_of, pixels.reshape(len(pixels), *shape[1:])

    try:
        if dtype == np.uint8:  # every value is a valid pixel: nothing to check, no float copy
            for _, pixels in pieces():
                yield finish_integers(pixels, cfg, str(path))
            return
        high = max((checked(start, pixels) for start, pixels in pieces()), default=0.0) \
            if dtype.kind == "f" else 255.0
        scale = numbers_scale(dtype, high)
        for start, pixels in pieces():
            checked(start, pixels)
            yield finish(scale_numbers(pixels, scale), cfg, str(path))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise GanopsError(f"{path}: not a readable .npz archive ({exc})") from None
