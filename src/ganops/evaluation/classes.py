"""The classifier's view of an evaluation (labelled data): class score, coverage and entropy of the generated
and real sets, and, for conditional generators, accuracy on the requested classes, with the per-class table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ganops import metric_specs
from ganops.features import metrics

CONDITIONAL_METRICS = tuple(spec.name for spec in metric_specs.SPECS if spec.conditional)


def merge_into(results: dict, class_results: dict) -> None:
    """The classifier's metrics into metrics.json: `*_real` ones into the real floor's section."""
    omitted = class_results.pop("omitted", None)
    for name, value in class_results.items():
        if name.endswith("_real"):
            results[metric_specs.REAL][name.removesuffix("_real")] = value
        else:
            results[name] = value
    if omitted:
        results["omitted"] = omitted


def class_metrics(classes: int, generated_probs: np.ndarray, real_probs: np.ndarray, reference_probs: np.ndarray,
                  generated_labels: np.ndarray | None,
                  reference_labels: np.ndarray | None) -> tuple[dict[str, Any], pd.DataFrame]:
    """The classifier's view: score, coverage and entropy of generated vs real samples against the reference's
    class histogram, and (conditional generators) accuracy on the requested classes. Returns the metrics
    and the per-class table."""
    predicted = generated_probs.argmax(axis=1)
    histogram = metrics.class_histogram(predicted, classes)
    real_histogram = metrics.class_histogram(real_probs.argmax(axis=1), classes)
    reference_histogram = metrics.class_histogram(reference_probs.argmax(axis=1), classes)
    results: dict[str, Any] = {
        "classifier_score": metrics.classifier_score(generated_probs),
        "classifier_score_real": metrics.classifier_score(real_probs),
        "class_coverage": metrics.class_coverage(histogram, reference_histogram),
        "class_coverage_real": metrics.class_coverage(real_histogram, reference_histogram),
        "class_entropy": metrics.class_entropy(histogram),
        "class_entropy_real": metrics.class_entropy(real_histogram),
    }
    table = pd.DataFrame({"class": np.arange(classes), "generated": histogram, "real": real_histogram,
                          "test": reference_histogram})
    if generated_labels is None or reference_labels is None:
        results["omitted"] = dict.fromkeys(CONDITIONAL_METRICS, "unconditional generator")
        return results, table
    reference_predicted = reference_probs.argmax(axis=1)
    results["conditional_accuracy"] = float(np.mean(predicted == generated_labels))
    results["conditional_accuracy_real"] = float(np.mean(reference_predicted == reference_labels))
    table["accuracy"] = metrics.per_class_accuracy(predicted, generated_labels, classes)
    table["accuracy_real"] = metrics.per_class_accuracy(reference_predicted, reference_labels, classes)
    return results, table
