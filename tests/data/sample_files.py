"""Writers of small input files in every format the sources read, for the data tests and the benchmark."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def sample_images(count: int = 60, side: int = 12, classes: int = 3, seed: int = 0):
    """uint8 (count, side, side) images with distinct content and labels cycling 0..classes-1."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, side, side), dtype=np.uint8)
    return images, np.arange(count, dtype=np.int64) % classes


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    body = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(body) if compress else body)
    return path


def write_csv(path: Path, images: np.ndarray, labels: np.ndarray | None, scale: float = 1.0) -> Path:
    flat = images.reshape(len(images), -1)
    table = pd.DataFrame(flat / scale if scale != 1.0 else flat,
                         columns=[f"p{i}" for i in range(flat.shape[1])])
    if labels is not None:
        table.insert(0, "label", labels)
    table.to_csv(path, index=False)
    return path


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray | None, suffix: str = ".png") -> Path:
    """One file per image, named by index; in sub-folders named by label when labelled."""
    for i, image in enumerate(images):
        folder = root / str(labels[i]) if labels is not None else root
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:05d}{suffix}")
    return root
