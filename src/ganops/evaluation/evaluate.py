"""The evaluate stage: generated images vs a holdout sample in the featurizer's space, each metric next to its
real-vs-real floor computed the same way with the same sample count, plus pictures and an HTML report.

Three sets of equal size `n` (the Fréchet distance is biased by sample count): `generated`, a holdout sample
(the reference every metric compares against) and a train sample (the floor: real images the reference has
never met). Memorisation needs images the generator never saw, so its floor splits the holdout sample:
the threshold comes from its first half and the floor is the share of its second half below it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ganops import artifacts, imaging, registry, tracking
from ganops.config import EvaluateConfig, RegisterConfig
from ganops.data import prepare
from ganops.evaluation import featurizer as featurizer_lib
from ganops.evaluation import metrics, report
from ganops.models import sampling
from ganops.training.train import GENERATOR_FILE, HISTORY_FILE, RUN_FILE

GRID_IMAGES = 64
NEIGHBOUR_PAIRS = 10  # generated samples shown beside their nearest training image
CLASS_GRID_COLUMNS = 8
CLASS_HISTOGRAM_FILE = "class_histogram.csv"  # a DVC plot
CLASS_GRID_FILE = "class_grid.png"
NEIGHBOURS_FILE = "neighbours.png"
CLASSIFIER_METRICS = ("classifier_score", "class_coverage", "class_entropy")
CONDITIONAL_METRICS = ("conditional_accuracy",)


@dataclasses.dataclass
class Evaluation:
    metrics: dict  # what metrics.json holds: numbers, the featurizer's hash and kind, omitted metrics and why
    class_table: pd.DataFrame | None  # one row per class: shares (and accuracy, conditional); None unlabelled
    neighbours: tuple[np.ndarray, np.ndarray, np.ndarray]  # generated, nearest train image, feature distance
    generated: np.ndarray  # the n generated images evaluated
    generated_classes: np.ndarray | None  # conditioning labels, else the classifier's predictions, else None


def compute(cfg: EvaluateConfig, generated: np.ndarray, train_split: artifacts.Split,
            holdout_split: artifacts.Split, featurizer: featurizer_lib.Featurizer,
            generated_labels: np.ndarray | None = None) -> Evaluation:
    """Every metric for `generated` (with its conditioning labels, for a conditional generator)."""
    count = min(len(generated), len(train_split), len(holdout_split))
    holdout_index, real_index = metrics.reference_indices(count, len(holdout_split), len(train_split), cfg.seed)
    generated = generated[:count]
    if generated_labels is not None:
        generated_labels = np.asarray(generated_labels[:count])

    generated_features, generated_probs = featurizer.features_and_probabilities(generated)
    holdout_features, holdout_probs = featurizer.features_and_probabilities(holdout_split.images[holdout_index])
    train_features, train_probs = featurizer.features_and_probabilities(train_split.images)
    real_features = train_features[real_index]

    fd = metrics.frechet_distance(generated_features, holdout_features)
    fd_real = metrics.frechet_distance(real_features, holdout_features)
    results: dict = {"fd": fd, "fd_real": fd_real, "fd_ratio": metrics.floor_ratio(fd, fd_real),
                     "num_samples": count, "featurizer_hash": featurizer.hash, "featurizer": featurizer.kind}

    # At most half the samples per subset, so subsets differ and their spread measures KID's error.
    subset = max(min(cfg.kid_subset_size, count // 2), 2)
    results["kid"], results["kid_std"] = metrics.kernel_inception_distance(
        generated_features, holdout_features, subset, cfg.kid_subsets, cfg.seed)
    results["kid_real"], results["kid_real_std"] = metrics.kernel_inception_distance(
        real_features, holdout_features, subset, cfg.kid_subsets, cfg.seed)

    k = min(cfg.precision_recall_k, count - 1)
    holdout_radii = metrics.knn_radii(holdout_features, k)
    results["precision"], results["recall"] = metrics.precision_recall(
        holdout_features, generated_features, k, real_radii=holdout_radii)
    results["precision_real"], results["recall_real"] = metrics.precision_recall(
        holdout_features, real_features, k, real_radii=holdout_radii)

    holdout_to_train, _ = metrics.nearest_neighbours(holdout_features, train_features)
    generated_to_train, nearest_train = metrics.nearest_neighbours(generated_features, train_features)
    half = max(count // 2, 1)
    threshold = metrics.memorisation_threshold(holdout_to_train[:half], cfg.memorisation_quantile)
    results["memorisation"] = metrics.memorisation_fraction(generated_to_train, threshold)
    results["memorisation_real"] = metrics.memorisation_fraction(holdout_to_train[half:], threshold)

    closest = np.argsort(generated_to_train, kind="stable")[:NEIGHBOUR_PAIRS]
    neighbours = (generated[closest], train_split.images[nearest_train[closest]], generated_to_train[closest])

    if generated_probs is None:
        why = f"unlabelled data: the {featurizer.kind} feature space has no classes"
        results["omitted"] = {name: why for name in CLASSIFIER_METRICS + CONDITIONAL_METRICS}
        return Evaluation(results, None, neighbours, generated, None)
    holdout_labels = None if holdout_split.labels is None else holdout_split.labels[holdout_index]
    class_results, class_table = class_metrics(featurizer.num_classes, generated_probs, train_probs[real_index],
                                               holdout_probs, generated_labels, holdout_labels)
    results.update(class_results)
    return Evaluation(results, class_table, neighbours, generated,
                      generated_labels if generated_labels is not None else generated_probs.argmax(axis=1))


def class_metrics(classes: int, generated_probs: np.ndarray, real_probs: np.ndarray, holdout_probs: np.ndarray,
                  generated_labels: np.ndarray | None,
                  holdout_labels: np.ndarray | None) -> tuple[dict, pd.DataFrame]:
    """The classifier's view: score, coverage and entropy of generated vs real samples against the holdout's
    class histogram, and (conditional generators) accuracy on the requested classes. Returns the metrics
    and the per-class table."""
    predicted = generated_probs.argmax(axis=1)
    histogram = metrics.class_histogram(predicted, classes)
    real_histogram = metrics.class_histogram(real_probs.argmax(axis=1), classes)
    holdout_histogram = metrics.class_histogram(holdout_probs.argmax(axis=1), classes)
    results = {
        "classifier_score": metrics.classifier_score(generated_probs),
        "classifier_score_real": metrics.classifier_score(real_probs),
        "class_coverage": metrics.class_coverage(histogram, holdout_histogram),
        "class_coverage_real": metrics.class_coverage(real_histogram, holdout_histogram),
        "class_entropy": metrics.class_entropy(histogram),
        "class_entropy_real": metrics.class_entropy(real_histogram),
    }
    table = pd.DataFrame({"class": np.arange(classes), "generated": histogram, "real": real_histogram,
                          "holdout": holdout_histogram})
    if generated_labels is None or holdout_labels is None:
        results["omitted"] = {name: "unconditional generator" for name in CONDITIONAL_METRICS}
        return results, table
    holdout_predicted = holdout_probs.argmax(axis=1)
    results["conditional_accuracy"] = float(np.mean(predicted == generated_labels))
    results["conditional_accuracy_real"] = float(np.mean(holdout_predicted == holdout_labels))
    table["accuracy"] = metrics.per_class_accuracy(predicted, generated_labels, classes)
    table["accuracy_real"] = metrics.per_class_accuracy(holdout_predicted, holdout_labels, classes)
    return results, table


def class_grid(images: np.ndarray, classes: np.ndarray, num_classes: int,
               columns: int = CLASS_GRID_COLUMNS) -> np.ndarray:
    """One row per class, up to `columns` of its images; blank (white) cells where a class has fewer."""
    cells = np.ones((num_classes, columns, *images.shape[1:]), np.float32)
    for label in range(num_classes):
        members = images[classes == label][:columns]
        cells[label, :len(members)] = members
    return cells.reshape(num_classes * columns, *images.shape[1:])


def champion_summary(register_cfg: RegisterConfig) -> dict | None:
    """The registry's `champion` version: its number, featurizer hash and `metric.*` tags; None when there is
    no such model or alias yet. Call inside a configured MLflow context."""
    try:
        version = MlflowClient().get_model_version_by_alias(register_cfg.model_name, register_cfg.champion_alias)
    except MlflowException:
        return None
    return {"name": register_cfg.model_name, "alias": register_cfg.champion_alias, "version": str(version.version),
            "run_id": version.run_id, "featurizer_hash": version.tags.get(registry.FEATURIZER_TAG),
            "metrics": registry.tagged_metrics(version.tags)}


def run(cfg: EvaluateConfig, prepared_dir: str | Path, model_dir: str | Path, featurizer_path: str | Path,
        metrics_path: str | Path, samples_path: str | Path, *, figures_dir: str | Path | None = None,
        report_path: str | Path | None = None, register_cfg: RegisterConfig | None = None) -> dict:
    """Sample the trained generator, compute every metric, write metrics.json and the sample grid, and (when
    given the paths) the figures folder and the HTML report; log all of it to the training run. With
    `register_cfg` the report also shows the registry's champion."""
    prepared_dir, model_dir = Path(prepared_dir), Path(model_dir)
    train_split = artifacts.read_split(prepared_dir / prepare.TRAIN_FILE)
    holdout_split = artifacts.read_split(prepared_dir / prepare.HOLDOUT_FILE)
    generator = sampling.load_generator(model_dir / GENERATOR_FILE)
    featurizer = featurizer_lib.load(featurizer_path)
    count = min(cfg.num_samples, len(train_split), len(holdout_split))
    classes = sampling.num_classes(generator)
    labels = sampling.balanced_labels(count, classes) if classes else None
    generated = sampling.sample(generator, count, cfg.seed, labels=labels)

    evaluation = compute(cfg, generated, train_split, holdout_split, featurizer, generated_labels=labels)
    results = evaluation.metrics
    artifacts.write_json(metrics_path, results)
    upscale = imaging.upscale_for_display(generated.shape[1])
    imaging.save_png(samples_path, imaging.grid(generated[:GRID_IMAGES], upscale=upscale))

    figures: dict[str, Path] = {}
    if figures_dir is not None:
        figures = write_figures(evaluation, featurizer.num_classes, Path(figures_dir), upscale)

    run_id = artifacts.read_json(model_dir / RUN_FILE)["run_id"]
    with tracking.resume_run(run_id):
        champion = champion_summary(register_cfg) if register_cfg is not None else None
        if report_path is not None:
            report.write(report_path, report.Context(
                run_id=run_id, metrics=results, champion=champion, samples=Path(samples_path),
                class_grid=figures.get(CLASS_GRID_FILE), neighbours=figures.get(NEIGHBOURS_FILE),
                class_table=evaluation.class_table,
                neighbour_distances=evaluation.neighbours[2], history=model_dir / HISTORY_FILE,
                conditional=bool(classes)))
        mlflow.log_metrics({f"eval.{k}": v for k, v in results.items() if isinstance(v, int | float)})
        mlflow.set_tag("ganops.featurizer_hash", featurizer.hash)
        for path in (metrics_path, samples_path, report_path, *figures.values()):
            if path is not None:
                mlflow.log_artifact(str(path), artifact_path="evaluation")
    print(f"fd={results['fd']:.3f}  fd_real={results['fd_real']:.3f}  ratio={results['fd_ratio']:.2f}  "
          f"kid={results['kid']:.4f}±{results['kid_std']:.4f} (real {results['kid_real']:.4f})  "
          f"precision={results['precision']:.3f}  recall={results['recall']:.3f}  "
          f"memorisation={results['memorisation']:.3f} (real {results['memorisation_real']:.3f})  "
          f"(n={results['num_samples']}, {featurizer.kind} {featurizer.hash})", flush=True)
    return results


def write_figures(evaluation: Evaluation, num_classes: int, figures_dir: Path, upscale: int) -> dict[str, Path]:
    """The neighbour picture always; the class histogram (CSV, a DVC plot) and class grid when there are
    classes. Written into a fresh folder swapped in whole."""
    names: list[str] = [NEIGHBOURS_FILE]
    with artifacts.atomic_path(figures_dir) as tmp:
        tmp.mkdir()
        generated, nearest, _ = evaluation.neighbours
        # Two rows: generated samples closest to the training set, and under each its nearest training image.
        pairs = np.concatenate([generated, nearest])
        imaging.save_png(tmp / NEIGHBOURS_FILE, imaging.grid(pairs, columns=len(generated), upscale=upscale))
        if evaluation.class_table is not None:
            evaluation.class_table.to_csv(tmp / CLASS_HISTOGRAM_FILE, index=False, float_format="%.6g")
            cells = class_grid(evaluation.generated, evaluation.generated_classes, num_classes)
            imaging.save_png(tmp / CLASS_GRID_FILE, imaging.grid(cells, columns=CLASS_GRID_COLUMNS, upscale=upscale))
            names += [CLASS_HISTOGRAM_FILE, CLASS_GRID_FILE]
    return {name: figures_dir / name for name in names}
