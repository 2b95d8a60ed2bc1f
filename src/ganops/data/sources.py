"""Image sources: each format behind one interface, `load(cfg) -> LoadedImages`.

Every source returns pixels already resized to `cfg.image_size` with `cfg.channels` channels and scaled
to [0, 1], so everything after this module sees one layout whatever the input was. Resizing happens in
one place, `resize_to`, with one filter: metrics computed on images resized two different ways are not
comparable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from PIL import Image

from ganops.config import DataConfig
from ganops.errors import GanopsError

# PIL's bicubic filter with antialiasing on downscale: the high-quality default, fixed for all sources.
RESIZE_FILTER = Image.Resampling.BICUBIC


@dataclasses.dataclass(frozen=True)
class LoadedImages:
    images: np.ndarray  # float32 (N, S, S, C) in [0, 1]
    labels: np.ndarray | None  # int64 (N,), or None when the source is unlabelled
    sources: list[str]  # where each image came from: a file name or "file:row"
    orig_shapes: np.ndarray  # int (N, 3): height, width, channels before resizing

    def __len__(self) -> int:
        return len(self.images)


def resize_to(images01: np.ndarray, size: int) -> np.ndarray:
    """Resize float [0, 1] NHWC images to size×size with `RESIZE_FILTER`; a no-op when already there."""
    n, height, width, channels = images01.shape
    if (height, width) == (size, size):
        return images01.astype(np.float32, copy=False)
    out = np.empty((n, size, size, channels), dtype=np.float32)
    for i in range(n):
        for c in range(channels):
            plane = Image.fromarray(images01[i, :, :, c].astype(np.float32), mode="F")
            out[i, :, :, c] = np.asarray(plane.resize((size, size), RESIZE_FILTER))
    # Bicubic overshoots at edges; clip back into the pixel range.
    return np.clip(out, 0.0, 1.0)


def match_channels(images01: np.ndarray, channels: int, where: str) -> np.ndarray:
    """Convert NHWC images between grayscale and RGB (ITU-R 601 luma for RGB → gray)."""
    have = images01.shape[-1]
    if have == channels:
        return images01
    if have == 1 and channels == 3:
        return np.repeat(images01, 3, axis=-1)
    if have == 3 and channels == 1:
        luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return (images01 @ luma)[..., None].astype(np.float32)
    raise GanopsError(f"{where}: images have {have} channels, cannot convert to {channels}")


def load_digits_source(cfg: DataConfig) -> LoadedImages:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes, pixels 0–16)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images01 = (bunch.images.astype(np.float32) / 16.0)[..., None]
    orig_shapes = np.tile(np.array(images01.shape[1:], dtype=np.int64), (len(images01), 1))
    images01 = match_channels(resize_to(images01, cfg.image_size), cfg.channels, "digits")
    return LoadedImages(
        images=images01,
        labels=bunch.target.astype(np.int64),
        sources=[f"sklearn-digits:{i}" for i in range(len(images01))],
        orig_shapes=orig_shapes,
    )


SOURCES: dict[str, Callable[[DataConfig], LoadedImages]] = {
    "digits": load_digits_source,
}


def load(cfg: DataConfig) -> LoadedImages:
    try:
        loader = SOURCES[cfg.source]
    except KeyError:
        raise GanopsError(f"data.source: {cfg.source!r} is not implemented yet") from None
    loaded = loader(cfg)
    if len(loaded) == 0:
        raise GanopsError(f"{cfg.path or cfg.source}: no images found")
    return loaded
