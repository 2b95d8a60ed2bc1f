"""The metrics order known cases correctly on the built-in digits, in a featurizer trained on them."""

from __future__ import annotations

import numpy as np
import pytest

from ganops.config import EvaluateConfig
from ganops.evaluation import evaluate

CFG = EvaluateConfig()


def _draw(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    return images[np.random.default_rng(seed).choice(len(images), count, replace=len(images) < count)]


@pytest.fixture(scope="module")
def cases(digits_splits, digits_featurizer):
    """Metrics of stand-in "generators" against the holdout: real images (train), real plus small Gaussian
    noise, only half the classes, a single class, and verbatim copies of training images."""
    train, holdout = digits_splits
    count = len(holdout)
    noise = np.random.default_rng(1).normal(0.0, 0.2, (count, *train.images.shape[1:])).astype(np.float32)
    generators = {
        "noisy": np.clip(_draw(train.images, count, 2) + noise, -1.0, 1.0),
        "half_classes": _draw(train.images[train.labels < 5], count, 3),
        "one_class": _draw(train.images[train.labels == 0], count, 4),
        "copies": train.images[:count],
    }
    return {name: evaluate.compute(CFG, images, train, holdout, digits_featurizer).metrics
            for name, images in generators.items()}


def test_distances_order_real_noise_half_classes_one_class(cases):
    floor = cases["noisy"]["fd_real"]  # real-vs-real, the same in every case
    fds = [floor, cases["noisy"]["fd"], cases["half_classes"]["fd"], cases["one_class"]["fd"]]
    assert fds == sorted(fds) and len(set(fds)) == 4, fds
    kids = [cases["noisy"]["kid_real"], cases["half_classes"]["kid"], cases["one_class"]["kid"]]
    assert kids == sorted(kids), kids


def test_recall_and_mode_metrics_fall_when_classes_are_dropped(cases):
    real = cases["half_classes"]
    assert cases["one_class"]["recall"] < real["recall"] < real["recall_real"]
    assert cases["one_class"]["class_coverage"] < real["class_coverage"] < real["class_coverage_real"]
    assert cases["one_class"]["class_entropy"] < real["class_entropy"] < real["class_entropy_real"]
    assert cases["one_class"]["classifier_score"] < real["classifier_score_real"]


def test_memorisation_flags_a_generator_that_returns_training_images(cases):
    copies = cases["copies"]
    assert copies["memorisation"] == 1.0  # every sample *is* a training image
    assert 0.2 < copies["memorisation_real"] < 0.8  # new real images: about the median quantile
    assert copies["fd_ratio"] < 2.0  # which a distance alone would not have caught


def test_metrics_record_their_featurizer_and_omit_nothing_for_labelled_data(cases, digits_featurizer):
    metrics = cases["noisy"]
    assert metrics["featurizer_hash"] == digits_featurizer.hash and metrics["featurizer"] == "classifier"
    assert metrics["omitted"] == {"conditional_accuracy": "unconditional generator"}
    for key in ("fd", "kid", "precision", "recall", "memorisation", "classifier_score", "class_coverage"):
        assert f"{key}_real" in metrics


def test_evaluation_is_repeatable(digits_splits, digits_featurizer, cases):
    train, holdout = digits_splits
    again = evaluate.compute(CFG, train.images[:len(holdout)], train, holdout, digits_featurizer).metrics
    assert again == cases["copies"]
