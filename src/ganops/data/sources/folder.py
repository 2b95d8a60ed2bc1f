"""A folder of PNG, JPEG or BMP images: class sub-folders become labels, a flat folder is unlabelled.

Labels: when every class folder's name is a non-negative integer ("0", "1", …) that number is the
label; otherwise the sorted names are numbered 0, 1, … (`LoadedImages.classes` keeps the names).
Images may differ in size (each is resized). Grayscale-like modes (1, L, LA, 16-bit) count as one
channel, colour modes (RGB, RGBA, P, CMYK, YCbCr) as three; an alpha channel is dropped. Inputs of
mixed channel counts are an error unless `data.convert_mixed_channels` is true. Files that cannot be
decoded fail the stage unless `data.skip_unreadable` is true, which skips and reports each one.
Decoding runs in a process pool: PIL's per-file work is mostly Python, so threads do not speed it up.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ganops.config import DataConfig
from ganops.data.sources.common import (
    LoadedImages,
    existing,
    finish,
    unit_from_integers,
)
from ganops.errors import GanopsError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
PARALLEL_FROM = 2000  # fewer files decode faster in-process than a pool starts
_CHUNK = 1000  # files per pool task
_GRAY, _COLOUR = "grayscale", "RGB"


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
            mode = image.mode
            if mode in ("1", "LA"):
                image, mode = image.convert("L"), "L"
            elif mode not in ("L", "RGB") and not mode.startswith("I;16"):
                image, mode = image.convert("RGB"), "RGB"
            pixels = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        return None, f"cannot read image ({exc})"
    if mode.startswith("I;16"):
        pixels = pixels.astype(np.uint16, copy=False)
    kind = _COLOUR if pixels.ndim == 3 else _GRAY
    return (pixels if pixels.ndim == 3 else pixels[..., None]), kind


def _decode_many(paths: list[str]) -> list[tuple[np.ndarray | None, str]]:
    return [_decode(p) for p in paths]


def decode_all(paths: list[str], workers: int | None = None) -> list[tuple[np.ndarray | None, str]]:
    """Decode `paths` in order; in a process pool of `workers` (default: the CPUs this process may use)."""
    if workers is None:
        workers = 1 if len(paths) < PARALLEL_FROM else len(os.sched_getaffinity(0))
    if workers < 2:
        return _decode_many(paths)
    chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    # forkserver: forking a parent that already runs library threads (pyarrow, BLAS) can deadlock.
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context) as pool:
        return [result for chunk in pool.map(_decode_many, chunks) for result in chunk]


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


def load(cfg: DataConfig, workers: int | None = None) -> LoadedImages:
    root = existing(cfg.path, "folder")
    files, labels, classes = _list(root)
    decoded = decode_all([str(p) for p in files], workers)

    unreadable = [(str(f), problem) for f, (pixels, problem) in zip(files, decoded, strict=True) if pixels is None]
    if unreadable and not cfg.skip_unreadable:
        first_file, problem = unreadable[0]
        more = f" ({len(unreadable) - 1} more unreadable files)" if len(unreadable) > 1 else ""
        raise GanopsError(f"{first_file}: {problem}{more}; set data.skip_unreadable: true to skip them")
    kept = [(i, pixels) for i, (pixels, _) in enumerate(decoded) if pixels is not None]
    keep = [i for i, _ in kept]
    kept_pixels = [pixels for _, pixels in kept]
    if not keep:
        raise GanopsError(f"{root}: none of the {len(files)} images could be read")

    first_of_kind: dict[str, Path] = {}
    for i in keep:
        first_of_kind.setdefault(decoded[i][1], files[i])
    if len(first_of_kind) > 1 and not cfg.convert_mixed_channels:
        raise GanopsError(f"{root}: mixed channel counts: {first_of_kind[_GRAY]} is grayscale, "
                          f"{first_of_kind[_COLOUR]} is RGB; set data.convert_mixed_channels: true to "
                          f"convert all to data.channels ({cfg.channels})")

    # Resize in groups of one original shape and dtype: each group is one batched matrix product.
    images01 = np.empty((len(keep), cfg.image_size, cfg.image_size, cfg.channels), dtype=np.float32)
    groups: dict[tuple, list[int]] = {}
    for position, pixels in enumerate(kept_pixels):
        groups.setdefault((pixels.shape, pixels.dtype.str), []).append(position)
    for positions in groups.values():
        batch = np.stack([kept_pixels[p] for p in positions])
        images01[positions] = finish(unit_from_integers(batch), cfg, str(root))
    orig_shapes = np.array([pixels.shape for pixels in kept_pixels], dtype=np.int64)
    return LoadedImages(
        images=images01,
        labels=np.array([labels[i] for i in keep], dtype=np.int64) if labels is not None else None,
        sources=[str(files[i].relative_to(root)) for i in keep],
        orig_shapes=orig_shapes,
        classes=classes,
        skipped=[(f, problem) for f, problem in unreadable],
    )
