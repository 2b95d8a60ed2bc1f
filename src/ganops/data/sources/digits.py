"""scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes, pixels 0–16): no download."""

from __future__ import annotations

import numpy as np

from ganops.config import DataConfig
from ganops.data.sources.common import LoadedImages, finish, uniform_shapes


def load(cfg: DataConfig) -> LoadedImages:
    from sklearn.datasets import (
        load_digits,  # only this source needs scikit-learn's datasets
    )

    bunch = load_digits()
    images01 = (bunch.images.astype(np.float32) / 16.0)[..., None]
    return LoadedImages(
        images=finish(images01, cfg, "digits"),
        labels=bunch.target.astype(np.int64),
        sources=[f"sklearn-digits:{i}" for i in range(len(images01))],
        orig_shapes=uniform_shapes(len(images01), images01.shape[1:]),
    )
