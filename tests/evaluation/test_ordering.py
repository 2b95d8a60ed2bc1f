"""The metrics order known cases correctly on the built-in digits, in a featurizer trained on them, and every
number comes with its interval, its floor and the baselines."""

from __future__ import annotations

import numpy as np
import pytest

from ganops import metric_specs
from ganops.evaluation import evaluate
from tests.helpers import shrunk_params

EVALUATE = shrunk_params(evaluate={"bootstrap_replicates": 50, "kid_subsets": 20}).evaluate


def _draw(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    return images[np.random.default_rng(seed).choice(len(images), count, replace=len(images) < count)]


def _compute(splits, images, featurizer) -> evaluate.Evaluation:
    return evaluate.compute(EVALUATE, images, splits["train"], splits["test"], splits["validation"], featurizer)


@pytest.fixture(scope="module")
def cases(digits_splits, digits_featurizer):
    """Evaluations of stand-in "generators" against the test split: real images plus Gaussian noise (σ 0.5),
    only half the classes, a single class, and verbatim copies of training images."""
    train = digits_splits["train"]
    count = len(digits_splits["test"])
    noise = np.random.default_rng(1).normal(0.0, 0.5, (count, *train.images.shape[1:])).astype(np.float32)
    generators = {
        "noisy": np.clip(_draw(train.images, count, 2) + noise, -1.0, 1.0),
        "half_classes": _draw(train.images[train.labels < 5], count, 3),
        "one_class": _draw(train.images[train.labels == 0], count, 4),
        "copies": train.images[:count],
    }
    return {name: _compute(digits_splits, images, digits_featurizer) for name, images in generators.items()}


def test_distances_order_real_noise_half_classes_one_class(cases):
    metrics = {name: case.metrics for name, case in cases.items()}
    floor = metrics["noisy"]["real"]["fd"]  # real-vs-real, the same in every case
    fds = [floor, metrics["noisy"]["fd"], metrics["half_classes"]["fd"], metrics["one_class"]["fd"]]
    assert fds == sorted(fds) and len(set(fds)) == 4, fds
    kids = [metrics["noisy"]["real"]["kid"], metrics["half_classes"]["kid"], metrics["one_class"]["kid"]]
    assert kids == sorted(kids), kids


def test_recall_and_mode_metrics_fall_when_classes_are_dropped(cases):
    half, one = cases["half_classes"].metrics, cases["one_class"].metrics
    real = half["real"]
    assert one["recall"] < half["recall"] < real["recall"]
    assert one["class_coverage"] < half["class_coverage"] < real["class_coverage"]
    assert one["class_entropy"] < half["class_entropy"] < real["class_entropy"]
    assert one["classifier_score"] < real["classifier_score"]


def test_copying_flags_a_generator_that_returns_training_images(cases):
    copies = cases["copies"].metrics
    assert copies["copying"] == 1.0  # every sample *is* a training image
    assert copies["copying"] > copies["real"]["copying_high"]  # above the interval of new real images
    assert copies["fd_ratio_low"] < 3.0  # which a distance alone would not have caught
    assert cases["noisy"].paired["copying_floor_high"] == copies["real"]["copying_high"]


def test_every_set_carries_each_metric_with_an_interval_around_it(cases, digits_featurizer):
    metrics = cases["noisy"].metrics
    assert metrics["featurizer_hash"] == digits_featurizer.hash and metrics["featurizer"] == "classifier"
    assert metrics["omitted"] == {"conditional_accuracy": "unconditional generator", "cas": "unconditional generator"}
    assert metrics["num_samples"] == 60 and metrics["bootstrap_replicates"] == 50
    for name in metric_specs.SETS:
        section = metrics if name == metric_specs.MODEL else metrics[name]
        for key in ("fd", "fd_ratio", "kid", "precision", "recall"):
            low, high = metric_specs.interval_keys(key)
            assert section[low] <= section[key] <= section[high], (name, key, section)
    for baseline in metric_specs.BASELINES:  # known-bad sets lie above the floor (its interval: at n = 360)
        assert metrics[baseline]["fd"] > metrics["real"]["fd"], baseline
    assert metrics["real"]["fd_ratio"] == pytest.approx(1.0)


def test_paired_evidence_shares_draws_between_versions(cases):
    noisy, copies = cases["noisy"].paired, cases["copies"].paired
    for key in ("num_samples", "bootstrap_replicates", "seed", "featurizer_hash"):
        assert noisy[key] == copies[key]
    for metric in metric_specs.GATE_METRICS:
        assert len(noisy[metric]) == 50


def test_evaluation_is_repeatable(digits_splits, digits_featurizer, cases):
    again = _compute(digits_splits, digits_splits["train"].images[:len(digits_splits["test"])], digits_featurizer)
    assert again.metrics == cases["copies"].metrics and again.paired == cases["copies"].paired
