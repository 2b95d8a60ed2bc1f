"""scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes, pixels 0–16): no download."""

from __future__ import annotations

import numpy as np

from ganops.config import DataConfig
from ganops.data.sources.common import CHUNK_IMAGES, ImageStream, NumberedNames, array_chunks, finish, uniform_shapes


def open_stream(cfg: DataConfig, chunk_images: int = CHUNK_IMAGES) -> ImageStream:
    from sklearn.datasets import (
        load_digits,  # only this source needs scikit-learn's datasets
    )

    bunch = load_digits()  # 1,797 tiny images: the pieces are cut from them in memory
    images01 = (bunch.images.astype(np.float32) / 16.0)[..., None]
    return ImageStream(
        count=len(images01),
        labels=bunch.target.astype(np.int64),
        sources=NumberedNames("sklearn-digits:", len(images01)),
        orig_shapes=uniform_shapes(len(images01), images01.shape[1:]),
        chunks=array_chunks(len(images01), chunk_images, lambda a, b: finish(images01[a:b], cfg, "digits")),
    )
