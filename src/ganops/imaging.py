"""Turning model outputs into pictures: [-1, 1] floats → uint8, grids, PNG files and base64 PNG text."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from ganops import artifacts, shards


def grid(images: np.ndarray, columns: int | None = None, pad: int = 1, upscale: int = 1) -> np.ndarray:
    """Tile NHWC [-1, 1] images into one uint8 HWC picture (`upscale` repeats pixels for tiny images)."""
    pixels = shards.from_signed(images)
    if upscale > 1:
        pixels = pixels.repeat(upscale, axis=1).repeat(upscale, axis=2)
    count, height, width, channels = pixels.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    canvas = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, channels), 255, np.uint8)
    for i, image in enumerate(pixels):
        top, left = pad + (i // columns) * (height + pad), pad + (i % columns) * (width + pad)
        canvas[top:top + height, left:left + width] = image
    return canvas


def upscale_for_display(side: int, target: int = 224) -> int:
    """Integer pixel repeat so an image of `side` pixels shows at roughly `target` pixels across a grid cell."""
    return max(1, target // (side * 8))


def _image(picture: np.ndarray) -> Image.Image:
    """A uint8 HWC picture as a PIL image (one channel → greyscale)."""
    return Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture)


def save_png(path: str | Path, picture: np.ndarray) -> None:
    with artifacts.atomic_path(path) as tmp:
        _image(picture).save(tmp, format="PNG")


def png_base64(picture: np.ndarray) -> str:
    """A uint8 HWC picture as base64 PNG text (how the served model returns images)."""
    buffer = io.BytesIO()
    _image(picture).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
