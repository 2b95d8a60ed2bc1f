"""A folder of PNG, JPEG or BMP images: class sub-folders become labels, a flat folder is unlabelled.

Labels: when every class folder's name is a non-negative integer ("0", "1", …) that number is the
label; otherwise the sorted names are numbered 0, 1, … (`ImageStream.classes` keeps the names).
Images may differ in size (each is resized). Grayscale-like modes (1, L, LA, 16-bit) count as one
channel, colour modes (RGB, RGBA, P, CMYK, YCbCr) as three; an alpha channel is dropped. Inputs of
mixed channel counts are an error unless `data.convert_mixed_channels` is true. Files that cannot be
decoded fail the stage unless `data.skip_unreadable` is true, which skips and reports each one.
Decoding runs in a process pool, a bounded number of tasks ahead of the pieces asked for: PIL's per-file
work is mostly Python, so threads do not speed it up.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NoReturn, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from ganops.config import DataConfig
from ganops.data.sources.common import (
    CHUNK_IMAGES,
    ImageStream,
    UnreadableFile,
    existing,
    finish,
    unit_from_integers,
)
from ganops.errors import GanopsError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
PARALLEL_FROM = 2000  # fewer files decode faster in-process than a pool starts
_CHUNK = 1000  # files per pool task
_GRAY, _COLOUR = "grayscale", "RGB"
_T = TypeVar("_T")


def _decode(path: str) -> tuple[np.ndarray | None, str]:
    """(pixels as uint8/uint16 HWC, its kind) or (None, the problem).

    PIL checks the size a file's header claims when it opens it, before decoding: over
    `Image.MAX_IMAGE_PIXELS` it only warns (a multi-line warning, then hundreds of MB decoded), over twice
    that it raises. Both are errors here, reported like any unreadable file. (`catch_warnings` changes
    process-wide state: fine, since files are decoded one at a time per process, never in parallel threads.)"""
    try:
        with warnings.catch_warnings(action="error", category=Image.DecompressionBombWarning), \
                Image.open(path) as opened:
            opened.load()
            image: Image.Image = opened
            mode = _decoded_mode(image.mode)
            if mode != image.mode:
                image = image.convert(mode)
            pixels = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        return None, f"cannot read image ({exc})"
    if mode.startswith("I;16"):
        pixels = pixels.astype(np.uint16, copy=False)
    kind = _COLOUR if pixels.ndim == 3 else _GRAY
    return (pixels if pixels.ndim == 3 else pixels[..., None]), kind


def _decoded_mode(mode: str) -> str:
    """The mode a file of `mode` is decoded in: L, RGB or 16-bit grayscale as they are, else L or RGB."""
    if mode in ("1", "LA"):
        return "L"
    return mode if mode in ("L", "RGB") or mode.startswith("I;16") else "RGB"


def _decode_many(paths: list[str]) -> list[tuple[np.ndarray | None, str]]:
    return [_decode(p) for p in paths]


def decode_all(paths: list[str], workers: int | None = None) -> list[tuple[np.ndarray | None, str]]:
    """Decode `paths` in order; in a process pool of `workers` (default: the CPUs this process may use)."""
    return list(_in_order(_decode_many, paths, workers))


def _in_order(work: Callable[[list[str]], list[_T]], paths: list[str], workers: int | None) -> Iterator[_T]:
    """`work` over `paths` in tasks of `_CHUNK`, results in order, in a process pool of `workers` (default: the
    CPUs this process may use) with at most two tasks a worker ahead of the consumer: memory stays bounded."""
    if workers is None:
        workers = 1 if len(paths) < PARALLEL_FROM else len(os.sched_getaffinity(0))
    if workers < 2:
        for start in range(0, len(paths), _CHUNK):
            yield from work(paths[start:start + _CHUNK])
        return
    tasks = iter(range(0, len(paths), _CHUNK))
    # forkserver: forking a parent that already runs library threads (pyarrow, BLAS) can deadlock.
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(min(workers, -(-len(paths) // _CHUNK)), mp_context=context) as pool:
        pending = collections.deque(pool.submit(work, paths[start:start + _CHUNK])
                                    for start in itertools.islice(tasks, 2 * workers))
        while pending:
            done = pending.popleft().result()
            for start in itertools.islice(tasks, 1):
                pending.append(pool.submit(work, paths[start:start + _CHUNK]))
            yield from done


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."))


def _list(root: Path) -> tuple[list[Path], list[int] | None, dict[int, str] | None]:
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    class_dirs = sorted(p for p in entries if p.is_dir())
    flat_images = sorted(p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if class_dirs and flat_images:
        raise GanopsError(f"{root}: holds both images ({flat_images[0].name}, …) and class sub-folders "
                          f"({class_dirs[0].name}, …); use one layout")
    if not class_dirs:
        if not flat_images:
            raise GanopsError(f"{root}: no PNG, JPEG or BMP images found")
        return flat_images, None, None
    names = [d.name for d in class_dirs]
    numeric = all(name.isdigit() for name in names)
    numbers = [int(name) for name in names] if numeric else list(range(len(names)))
    files, labels = [], []
    for number, class_dir in sorted(zip(numbers, class_dirs, strict=True)):
        found = _images_under(class_dir)
        if not found:
            raise GanopsError(f"{class_dir}: class folder has no PNG, JPEG or BMP images")
        files += found
        labels += [number] * len(found)
    return files, labels, dict(sorted(zip(numbers, names, strict=True)))


def open_stream(cfg: DataConfig, chunk_images: int = CHUNK_IMAGES, workers: int | None = None,
                unreadable: Mapping[str, str] | None = None) -> ImageStream:
    """The listing up front (files, labels, classes); the pixels decoded as they are asked for, every file
    counted as readable. When one is not, the rest are decoded to find every such file and the stream fails:
    with `data.skip_unreadable`, with `UnreadableFile`, and the caller opens the folder again with them in
    `unreadable` (the counts and splits made up front included them); else with an error naming the first.
    `orig_shapes` is filled as the pieces are decoded: complete once the stream has ended."""
    root = existing(cfg.path, "folder")
    files, labels, classes = _list(root)
    unreadable = unreadable or {}
    keep = [i for i, f in enumerate(files) if str(f) not in unreadable]
    if not keep:
        raise GanopsError(f"{root}: none of the {len(files)} images could be read")
    orig_shapes = np.zeros((len(keep), 3), dtype=np.int64)
    return ImageStream(
        count=len(keep),
        labels=np.array([labels[i] for i in keep], dtype=np.int64) if labels is not None else None,
        sources=[str(files[i].relative_to(root)) for i in keep],
        orig_shapes=orig_shapes,
        chunks=_decoded_chunks([str(files[i]) for i in keep], cfg, chunk_images, workers, root, orig_shapes),
        classes=classes,
        skipped=[(str(f), unreadable[str(f)]) for f in files if str(f) in unreadable],
    )


def _decoded_chunks(files: list[str], cfg: DataConfig, chunk_images: int, workers: int | None, root: Path,
                    orig_shapes: np.ndarray) -> Iterator[np.ndarray]:
    """The files' pixels, `chunk_images` at a time, decoded in bounded parallel pieces. Each piece is resized in
    groups of one original shape and dtype, each group one batched matrix product (`common.RESIZE_CHUNK`: a piece
    of images all of one shape is cut where a whole-folder resize would cut it)."""
    decoded = _in_order(_decode_many, files, workers)
    first_of_kind: dict[str, str] = {}
    for start in range(0, len(files), chunk_images):
        piece = list(itertools.islice(decoded, chunk_images))
        problems = {f: problem for f, (pixels, problem) in zip(files[start:], piece, strict=False) if pixels is None}
        if problems:
            _fail(cfg, problems | {f: problem for f, (pixels, problem)
                                   in zip(files[start + len(piece):], decoded, strict=True) if pixels is None})
        for file, (_, kind) in zip(files[start:], piece, strict=False):
            first_of_kind.setdefault(kind, file)
        if len(first_of_kind) > 1 and not cfg.convert_mixed_channels:
            raise GanopsError(f"{root}: mixed channel counts: {first_of_kind[_GRAY]} is grayscale, "
                              f"{first_of_kind[_COLOUR]} is RGB; set data.convert_mixed_channels: true to "
                              f"convert all to data.channels ({cfg.channels})")
        images01 = np.empty((len(piece), cfg.image_size, cfg.image_size, cfg.channels), dtype=np.float32)
        groups: dict[tuple, list[int]] = {}
        for position, (pixels, _) in enumerate(piece):
            assert pixels is not None
            orig_shapes[start + position] = pixels.shape
            groups.setdefault((pixels.shape, pixels.dtype.str), []).append(position)
        for positions in groups.values():
            batch = np.stack([piece[p][0] for p in positions])  # type: ignore[misc]  # none is None here
            images01[positions] = finish(unit_from_integers(batch), cfg, str(root))
        yield images01


def _fail(cfg: DataConfig, problems: dict[str, str]) -> NoReturn:
    """Every unreadable file (path → problem): to skip (`UnreadableFile`), or an error naming the first."""
    if cfg.skip_unreadable:
        raise UnreadableFile(problems)
    first_file, problem = next(iter(problems.items()))
    more = f" ({len(problems) - 1} more unreadable files)" if len(problems) > 1 else ""
    raise GanopsError(f"{first_file}: {problem}{more}; set data.skip_unreadable: true to skip them")
