"""NumPy `.npz` archives: array `x` of images, optional array `y` of integer labels.

`x` is (N, H, W) or (N, H, W, C) with C 1 or 3, pixels 0–255 (any integer dtype) or 0–1 (floats);
any other array in the archive is an error, so a misnamed label array is never silently ignored.
"""

from __future__ import annotations

import zipfile

import numpy as np

from ganops.config import DataConfig
from ganops.data.sources.common import (
    LoadedImages,
    existing,
    finish,
    finish_integers,
    integer_labels,
    uniform_shapes,
    unit_from_numbers,
)
from ganops.errors import GanopsError


def load(cfg: DataConfig) -> LoadedImages:
    path = existing(cfg.path, "file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            unexpected = sorted(names - {"x", "y"})
            if unexpected or "x" not in names:
                raise GanopsError(f"{path}: expected arrays 'x' and optionally 'y', found {sorted(names)}")
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
