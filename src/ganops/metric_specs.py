"""The metric registry: every evaluation metric named once, with its direction, how its floor and its
interval are computed, and what it means.

The evaluate stage writes exactly these keys, the report shows them with these descriptions, the
registry gate decides on one of them (`promote.metric` is checked against `GATE_METRICS` when params
load), and the training monitor logs the first of them. This module holds data only, so the config layer
can check names against it without importing the numerical code (`features/metrics.py` computes them).

Every metric is measured on several image sets of the same size n against one reference sample of the
test split, in the featurizer's space (`SETS`):
- `model`: the EMA generator's samples (the headline, top-level keys of metrics.json);
- `real`: a train sample — real images the reference has never met: the floor, what "as good as real data"
  scores at this n (distances are biased upwards with small n, so a distance means little without it);
- `pixel_gaussian` and `noisy_train`: known-bad generators (`evaluation/baselines.py`), so a reader sees where
  the model sits between "real" and "blobs".
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Direction = Literal["lower", "higher"]


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    name: str
    direction: Direction  # which way is better
    interval: Literal["bootstrap", "subsets", "none"]  # how its 95% interval is computed (see INTERVALS)
    description: str
    gate: bool = False  # bootstrap replicates are kept, so the gate can compare two versions pairwise
    classes: bool = False  # needs a classifier featurizer (labelled data)
    conditional: bool = False  # needs a conditional generator as well


INTERVALS = {
    "bootstrap": "2.5–97.5 percentiles over bootstrap replicates that resample the generated set and the "
                 "reference sample with replacement (the same draws for every set, so sets compare pairwise)",
    "subsets": "2.5–97.5 percentiles of single-subset estimates: a conservative interval, wider than the mean's",
    "none": "no interval",
}

SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("fd", "lower", "bootstrap", gate=True, description=(
        "Fréchet distance between Gaussians fitted to the features of the set and of the reference sample "
        "(the FID formula in this featurizer's space; only comparable at the same n and featurizer).")),
    MetricSpec("fd_ratio", "lower", "bootstrap", description=(
        "Fréchet distance ÷ the real floor's at the same n: 1 is as close as real images come.")),
    MetricSpec("fd_infinity", "lower", "none", description=(
        "Fréchet distance extrapolated to infinitely many samples (Chong & Forsyth 2020): a line through the "
        "distance at several subset sizes against 1/size, read at 0; removes most of the 1/n bias.")),
    MetricSpec("kid", "lower", "subsets", description=(
        "Kernel distance (unbiased MMD², cubic polynomial kernel), mean over random subsets; unbiased, so a "
        "set from the reference's distribution scores about 0 at any n.")),
    MetricSpec("precision", "higher", "bootstrap", gate=True, description=(
        "Share of the set's samples inside the reference's k-NN manifold (realism); interval resamples the "
        "samples with both manifolds held fixed.")),
    MetricSpec("recall", "higher", "bootstrap", gate=True, description=(
        "Share of reference samples inside the set's k-NN manifold (coverage); interval resamples the "
        "reference samples with both manifolds held fixed.")),
    MetricSpec("copying", "lower", "bootstrap", description=(
        "Share of samples whose nearest train image is nearer than their nearest reference image. New real "
        "images (the floor: a validation sample) score the train/reference size imbalance alone; a "
        "generator that copies training images scores up to 1.")),
    MetricSpec("classifier_score", "higher", "none", classes=True, description=(
        "exp(E KL(p(y|x) ‖ p(y))) with the featurizer's classifier (the Inception Score formula): confident "
        "and varied classes score high, at most the class count.")),
    MetricSpec("class_coverage", "higher", "none", classes=True, description=(
        "Share of classes generated at least half as often as in the reference (missing modes lower it).")),
    MetricSpec("class_entropy", "higher", "none", classes=True, description=(
        "Entropy of the predicted-class histogram ÷ log(classes): 1 when all classes are equally frequent.")),
    MetricSpec("conditional_accuracy", "higher", "none", classes=True, conditional=True, description=(
        "Conditional generators: classifier accuracy on samples of the requested class (floor: the "
        "reference with its true labels).")),
    MetricSpec("cas", "higher", "bootstrap", classes=True, conditional=True, description=(
        "Conditional generators: Classification Accuracy Score (Ravuri & Vinyals 2019), the real test "
        "accuracy of a classifier trained on the generated labelled samples alone (floor: the same "
        "classifier trained on as many real train images); interval resamples the test images.")),
)
BY_NAME = {spec.name: spec for spec in SPECS}
GATE_METRICS = tuple(spec.name for spec in SPECS if spec.gate)
MONITOR_METRICS = ("fd", "fd_ratio")  # what the training monitor logs, on the validation split

# The sets each metric is measured on: the model, the real floor and the known-bad baselines.
MODEL, REAL = "model", "real"
BASELINES = ("pixel_gaussian", "noisy_train")
SETS = (MODEL, REAL, *BASELINES)
SET_DESCRIPTIONS = {
    MODEL: "the EMA generator's samples",
    REAL: "a train sample (real images the reference has not met): the floor",
    "pixel_gaussian": "a Gaussian fitted to the train pixels, clipped to the pixel range: blobs, no digits",
    "noisy_train": "train images plus N(0, 0.3²) pixel noise, clipped: right shapes, wrong texture",
}
# Metrics not measured on the baselines: copying needs images not drawn from train (the floor is a
# validation sample), the ratio is the model's and the floor's only, and CAS trains a classifier per set.
MODEL_AND_FLOOR_ONLY = ("copying", "fd_infinity", "cas")


def interval_keys(name: str) -> tuple[str, str]:
    """metrics.json keys of a metric's 95% interval."""
    return f"{name}_low", f"{name}_high"


def check_gate_metric(name: str) -> str:
    """`name` when the gate can decide on it, else a ValueError naming the choices."""
    if name not in GATE_METRICS:
        raise ValueError(f"promote.metric: {name!r} is not a metric the gate can decide on "
                         f"(one of {', '.join(GATE_METRICS)}: those with paired bootstrap replicates)")
    return name
