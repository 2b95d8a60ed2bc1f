"""Image sources: each format in its own module behind one interface, `load(cfg) -> LoadedImages`.

Every source returns pixels already resized to `cfg.image_size` with `cfg.channels` channels and scaled
to [0, 1], so everything after this package sees one layout whatever the input was. Resizing happens in
one place, `resize_to`, with one filter (PIL bicubic): metrics computed on images resized two different
ways are not comparable.
"""

from __future__ import annotations

from collections.abc import Callable

from ganops.config import DataConfig
from ganops.data.sources import csv, digits, folder, idx, npz
from ganops.data.sources.common import (
    RESIZE_FILTER,
    LoadedImages,
    all_loaded,
    match_channels,
    resize_to,
)
from ganops.errors import GanopsError

__all__ = ["RESIZE_FILTER", "SOURCES", "LoadedImages", "all_loaded", "load", "match_channels", "resize_to"]

SOURCES: dict[str, Callable[[DataConfig], LoadedImages]] = {
    "digits": digits.load,
    "idx": idx.load,
    "npz": npz.load,
    "folder": folder.load,
    "csv": csv.load,
}


def load(cfg: DataConfig, in_background: bool = False) -> LoadedImages:
    """The configured source's images. `in_background`: the source may return while it still fills
    `images` (idx does); the caller then calls `wait_for` before it reads them."""
    try:
        loader = SOURCES[cfg.source]
    except KeyError:
        raise GanopsError(f"data.source: {cfg.source!r} is not one of {sorted(SOURCES)}") from None
    try:
        loaded = loader(cfg)
    except MemoryError:  # a size the file's bytes allowed (a gzip claim within 1,032×) that memory does not
        raise GanopsError(f"{cfg.path or cfg.source}: not enough memory to load these images "
                          f"(data.max_images subsamples only after loading)") from None
    if len(loaded) == 0:
        raise GanopsError(f"{cfg.path or cfg.source}: no images found")
    if not in_background:
        loaded.wait_for(len(loaded))
    return loaded
