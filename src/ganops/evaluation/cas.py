"""Classification Accuracy Score (Ravuri & Vinyals 2019): how well a classifier trained on a conditional
generator's labelled samples alone classifies the real test split — whether the samples could stand in for
labelled data, the use that enlarging a dataset with a GAN promises. Its floor is the same classifier, trained
the same way on as many real training images.

Both classifiers are the featurize stage's classifier network, trained by `featurizer.train` with the
featurize defaults (`FeaturizeConfig()`: not the project's featurize section, so scores compare across
projects' settings) for at least `evaluate.cas_steps` steps. Each is scored on every test image; the interval
resamples the test images (the same draws for both), so the two scores compare pairwise.
"""

from __future__ import annotations

import numpy as np

from ganops import artifacts, streams
from ganops.config import EvaluateConfig, FeaturizeConfig
from ganops.features import featurizer as featurizer_lib
from ganops.features import metrics

NAME = "cas"  # the metric_specs name


def _test_correct(classifier: featurizer_lib.Featurizer, test_split: streams.Rows) -> np.ndarray:
    """1 for each test image the classifier labels right, else 0, the split read a piece at a time."""
    assert test_split.labels is not None
    _, probabilities = classifier.measure_pieces(featurizer_lib.split_pieces(test_split))
    assert probabilities is not None  # a classifier's
    return (probabilities.argmax(axis=1) == test_split.labels).astype(np.float64)


def correct_on_test(cfg: EvaluateConfig, training: streams.Rows, test_split: streams.Rows,
                    num_classes: int) -> np.ndarray:
    """Train the classifier on the labelled `training` rows and return its per-test-image correctness."""
    recipe = FeaturizeConfig(min_steps=cfg.cas_steps, seed=cfg.seed)
    classifier, _ = featurizer_lib.train(recipe, training, test_split, num_classes)
    return _test_correct(classifier, test_split)


def scores(cfg: EvaluateConfig, generated: np.ndarray, generated_labels: np.ndarray, train_split: streams.Rows,
           real_index: np.ndarray, test_split: streams.Rows, num_classes: int) -> dict:
    """CAS of the generated set and its floor (a classifier trained on the train images at `real_index`, as
    many as generated), with intervals over bootstrap resamples of the test images: `cas`, `cas_low`,
    `cas_high` and the same keys suffixed `_real`; with `evaluate.cas_steps` 0, only why it is omitted."""
    if not cfg.cas_steps:
        return {"omitted": {NAME: "evaluate.cas_steps is 0"}}
    generated_split = artifacts.Split(images=generated, labels=np.asarray(generated_labels, np.int64))
    # The floor's images are read from the shards as its classifier trains, not held.
    correct = {"": correct_on_test(cfg, generated_split, test_split, num_classes),
               "_real": correct_on_test(cfg, streams.RowSubset(train_split, real_index), test_split, num_classes)}
    # One resample of the test images at a time (a whole draw matrix is replicates × test images), the same
    # rows for both scores, so they compare pairwise.
    rng = np.random.default_rng([cfg.seed, len(test_split), cfg.bootstrap_replicates])
    replicates: dict[str, list[float]] = {suffix: [] for suffix in correct}
    for _ in range(cfg.bootstrap_replicates):
        rows = rng.integers(0, len(test_split), len(test_split))
        for suffix, indicators in correct.items():
            replicates[suffix].append(float(indicators[rows].mean()))
    results: dict[str, float] = {}
    for suffix, indicators in correct.items():
        estimate = float(indicators.mean())
        low, high = metrics.percentile_interval(metrics.centred_replicates(np.array(replicates[suffix]), estimate),
                                                cfg.confidence)
        results.update({f"{NAME}{suffix}": estimate, f"{NAME}_low{suffix}": low, f"{NAME}_high{suffix}": high})
    return results
