"""The Classification Accuracy Score on the prepared digits: labelled real images score near the floor, the same
images with their labels permuted score near chance, and a conditional evaluation reports both in metrics.json."""

from __future__ import annotations

import numpy as np

from ganops import artifacts
from ganops.config import EvaluateConfig
from ganops.evaluation import cas, evaluate

STEPS = 200  # ~0.8 accuracy on the 60 test digits, in seconds


def test_true_labels_score_near_the_floor_and_permuted_ones_near_chance(digits_splits):
    cfg = EvaluateConfig(cas_steps=STEPS, bootstrap_replicates=50)
    train, test = digits_splits["train"], digits_splits["test"]
    # Half the train images stand in for generated ones and the other half train the floor: 97 images make two
    # steps an epoch, where the 45 validation images made one (the steps are the same; Keras's per-epoch set-up
    # is what a classifier on a few dozen images spends its seconds on).
    half = len(train) // 2
    generated = artifacts.Split(images=train.images[:half], labels=train.labels[:half])
    real_index = np.arange(half, 2 * half)
    labelled = cas.scores(cfg, generated.images, generated.labels, train, real_index, test, 10)
    assert set(labelled) == {"cas", "cas_low", "cas_high", "cas_real", "cas_low_real", "cas_high_real"}
    assert labelled["cas_low"] <= labelled["cas"] <= labelled["cas_high"]
    assert labelled["cas_low_real"] <= labelled["cas_real"] <= labelled["cas_high_real"]
    assert labelled["cas_real"] > 0.6 and labelled["cas"] > 0.6
    # The same images with their labels shuffled teach nothing: near chance (0.1), far below.
    permuted_labels = np.random.default_rng(0).permutation(generated.labels)
    permuted = cas.correct_on_test(cfg, artifacts.Split(images=generated.images, labels=permuted_labels), test, 10)
    assert set(np.unique(permuted)) <= {0.0, 1.0} and len(permuted) == len(test)
    assert permuted.mean() < 0.35 < labelled["cas_low"]


def test_a_conditional_evaluation_reports_cas_beside_its_floor(digits_splits, digits_featurizer):
    cfg = EvaluateConfig(num_samples=45, cas_steps=STEPS, bootstrap_replicates=20, kid_subsets=5)
    validation = digits_splits["validation"]
    evaluation = evaluate.compute(cfg, validation.images, digits_splits["train"], digits_splits["test"], validation,
                                  digits_featurizer, generated_labels=validation.labels)
    results = evaluation.metrics
    assert 0.6 < results["cas"] <= 1.0 and 0.6 < results["real"]["cas"] <= 1.0
    assert results["cas_low"] <= results["cas"] <= results["cas_high"]
    assert "cas" not in results["pixel_gaussian"] and "cas" not in results.get("omitted", {})
    assert f"cas {results['cas']:.3f} (real {results['real']['cas']:.3f})" in evaluate.summary_line(
        results, digits_featurizer)


def test_cas_steps_0_leaves_the_score_out_and_says_why(digits_splits):
    validation = digits_splits["validation"]
    off = cas.scores(EvaluateConfig(cas_steps=0), validation.images, validation.labels, digits_splits["train"],
                     np.arange(len(validation)), digits_splits["test"], 10)
    assert off == {"omitted": {"cas": "evaluate.cas_steps is 0"}}
