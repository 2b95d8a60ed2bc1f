"""The real MNIST test set through the idx source, checked against its published statistics."""

from __future__ import annotations

import numpy as np
import pytest

from ganops import artifacts
from ganops.config import DataConfig
from ganops.data import prepare
from tests.helpers import MNIST_DIR

IMAGES = MNIST_DIR / "t10k-images-idx3-ubyte.gz"
LABELS = MNIST_DIR / "t10k-labels-idx1-ubyte.gz"


@pytest.mark.skipif(not (IMAGES.exists() and LABELS.exists()), reason=f"{MNIST_DIR} is absent")
def test_mnist_t10k_through_the_idx_source(tmp_path):
    cfg = DataConfig(source="idx", path=str(IMAGES), labels_path=str(LABELS), image_size=28)
    info = prepare.run(cfg, tmp_path / "prepared")
    splits = [artifacts.read_split(tmp_path / "prepared" / artifacts.PreparedData.SPLIT_FILES[name]) for name in artifacts.SPLITS]
    images = np.concatenate([s.images for s in splits])
    labels = np.concatenate([s.labels for s in splits])

    assert (info.train_count, info.validation_count, info.test_count, info.num_classes) == (6500, 1500, 2000, 10)
    assert [len(s) for s in splits] == [6500, 1500, 2000]
    assert images.shape == (10_000, 28, 28, 1)
    assert ((images.astype(np.float64) + 1.0) / 2.0).mean() == pytest.approx(0.13251, abs=5e-6)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
