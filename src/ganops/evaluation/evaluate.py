"""The evaluate stage: generated images against a reference sample of the test split in the featurizer's space,
each metric with its 95% interval, beside the real floor and the known-bad baselines measured the same way
with the same sample count; plus pictures and an HTML report.

Sets of equal size n (`metric_specs.SETS`): the generated samples, a train sample (the floor: real images the
reference has never met), a pixel Gaussian and noisy train images (`baselines`). Every interval comes from one
set of bootstrap draws shared by all sets (`metrics.BootstrapDraws`); the model's raw replicates are written
as the promotion gate's paired evidence. The copying measure needs real images the generator never trained on
for its floor: a validation sample.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from ganops import artifacts, imaging, lineage, metric_specs, streams
from ganops.config import EvaluateConfig
from ganops.evaluation import baselines, cas, classes, report
from ganops.features import featurizer as featurizer_lib
from ganops.features import metrics, quality
from ganops.models import sampling

GRID_IMAGES = 64
NEIGHBOUR_PAIRS = 10  # generated samples shown beside their nearest training image
CLASS_GRID_COLUMNS = 8
CLASS_HISTOGRAM_FILE = "class_histogram.csv"  # a DVC plot
CLASS_GRID_FILE = "class_grid.png"
NEIGHBOURS_FILE = "neighbours.png"


@dataclasses.dataclass
class Evaluation:
    metrics: dict  # what metrics.json holds: the model's numbers at the top, a section per other set
    paired: dict  # the gate's evidence: the model's raw bootstrap replicates and what makes them comparable
    class_table: pd.DataFrame | None  # one row per class: shares (and accuracy, conditional); None unlabelled
    neighbours: tuple[np.ndarray, np.ndarray, np.ndarray]  # generated, nearest train image, feature distance
    generated: artifacts.Split  # the n generated images evaluated (uint8 pixels from the stage)
    generated_classes: np.ndarray | None  # conditioning labels, else the classifier's predictions, else None


@dataclasses.dataclass(frozen=True)
class _MeasuredSet:
    features: np.ndarray
    probabilities: np.ndarray | None


def _with_interval(results: dict, name: str, estimate: float, replicates: np.ndarray, confidence: float) -> None:
    results[name] = estimate
    low, high = metric_specs.interval_keys(name)
    results[low], results[high] = metrics.percentile_interval(metrics.centred_replicates(replicates, estimate),
                                                              confidence)


def compute(cfg: EvaluateConfig, generated: np.ndarray, train_split: streams.Rows,
            test_split: streams.Rows, validation_split: streams.Rows,
            featurizer: featurizer_lib.Featurizer, generated_labels: np.ndarray | None = None) -> Evaluation:
    """Every metric for `generated` (with its conditioning labels, for a conditional generator), for the real
    floor and for the baselines, each against one reference sample of the test split. `generated`: uint8
    pixels as the stage samples them (`sampling.sample(..., pixels=True)`), or float32 in [-1, 1]. Every set is
    read and measured a piece at a time (the train split's features in chunks): memory does not grow with the
    splits."""
    count = min(len(generated), len(train_split), len(test_split))
    reference_index, real_index = metrics.reference_indices(count, len(test_split), len(train_split), cfg.seed)
    if generated_labels is not None:
        generated_labels = np.asarray(generated_labels[:count])
    generated_rows = artifacts.Split(generated[:count], None)  # read as float32 a piece at a time
    measured = _measure_sets(cfg, featurizer, generated_rows, train_split, real_index)
    reference = _MeasuredSet(*featurizer.measure_pieces(featurizer_lib.split_pieces(test_split, reference_index)))
    train_features = featurizer.split_features(train_split)
    draws = metrics.BootstrapDraws.draw(count, cfg.bootstrap_replicates, cfg.seed)
    sections, paired = _distance_sections(cfg, measured, reference.features, draws)
    validation_count = _add_copying(cfg, sections, measured[metric_specs.MODEL].features, validation_split,
                                    featurizer, train_features, reference.features, draws)
    neighbours = _nearest_train_images(generated_rows, measured[metric_specs.MODEL].features, train_split,
                                       train_features)

    results = {**sections.pop(metric_specs.MODEL), **sections,
               "num_samples": count, "num_copying_floor_samples": validation_count,
               "bootstrap_replicates": len(draws), "confidence": cfg.confidence,
               "featurizer_hash": featurizer.hash, "featurizer": featurizer.kind}
    evidence = {**paired, "num_samples": count, "bootstrap_replicates": len(draws), "seed": cfg.seed,
                "featurizer_hash": featurizer.hash, "copying": results["copying"],
                "copying_floor_high": results[metric_specs.REAL]["copying_high"]}
    model_probs = measured[metric_specs.MODEL].probabilities
    real_probs = measured[metric_specs.REAL].probabilities
    if model_probs is None or real_probs is None or reference.probabilities is None:
        why = f"unlabelled data: the {featurizer.kind} feature space has no classes"
        results["omitted"] = {spec.name: why for spec in metric_specs.SPECS if spec.classes}
        return Evaluation(results, evidence, None, neighbours, generated_rows, None)
    reference_labels = None if test_split.labels is None else test_split.labels[reference_index]
    class_results, class_table = classes.class_metrics(featurizer.num_classes, model_probs, real_probs,
                                               reference.probabilities, generated_labels, reference_labels)
    if generated_labels is not None and reference_labels is not None:
        class_results.update(cas.scores(cfg, generated_rows.images, generated_labels, train_split, real_index,
                                        test_split, featurizer.num_classes))
    classes.merge_into(results, class_results)
    return Evaluation(results, evidence, class_table, neighbours, generated_rows,
                      generated_labels if generated_labels is not None else model_probs.argmax(axis=1))


def _measure_sets(cfg: EvaluateConfig, featurizer: featurizer_lib.Featurizer, generated: artifacts.Split,
                  train_split: streams.Rows, real_index: np.ndarray) -> dict[str, _MeasuredSet]:
    """Each set of `metric_specs.SETS` (n images each) in the feature space: the model's samples, the real
    floor (a train sample) and the baselines built from the train split, each made and measured in turn (their
    order is the baselines' draw order) a piece at a time (`Featurizer.measure_pieces`)."""
    baseline_rng = np.random.default_rng([cfg.seed, len(generated)])  # the Gaussian's draws, then the noise's

    def gaussian() -> Iterator[np.ndarray]:
        fit = train_split.signed(baselines.gaussian_fit_rows(len(train_split), train_split.shape, cfg.seed))
        yield from baselines.pixel_gaussian_pieces(fit, len(generated), baseline_rng, clip=True,
                                                   centre_in_place=True)

    sets = {metric_specs.MODEL: lambda: featurizer_lib.split_pieces(generated),
            metric_specs.REAL: lambda: featurizer_lib.split_pieces(train_split, real_index),
            "pixel_gaussian": gaussian,
            "noisy_train": lambda: (baselines.noisy(piece, baseline_rng)
                                    for piece in featurizer_lib.split_pieces(train_split, real_index))}
    return {name: _MeasuredSet(*featurizer.measure_pieces(make())) for name, make in sets.items()}


def _distance_sections(cfg: EvaluateConfig, measured: dict[str, _MeasuredSet], reference_features: np.ndarray,
                       draws: metrics.BootstrapDraws) -> tuple[dict[str, dict], dict[str, list[float]]]:
    """Per set: fd, kid, precision and recall with their intervals, fd_ratio over the real floor (and
    fd_infinity for the model and the floor); plus the model's raw replicates, the gate's paired evidence."""
    count = len(measured[metric_specs.REAL].features)
    # The training monitor's recipe: each set's Fréchet distance to the reference, over the real set's (the floor).
    holdout = quality.HoldoutReference.with_floor(reference_features, measured[metric_specs.REAL].features)
    reference_stats = metrics.reference_replicate_stats(reference_features, draws)
    k = min(cfg.precision_recall_k, count - 1)
    reference_radii = metrics.knn_radii(reference_features, k)
    subset = max(min(cfg.kid_subset_size, count // 2), 2)  # at most half: subsets differ, their spread means something
    sections: dict[str, dict] = {}
    fd_raw: dict[str, np.ndarray] = {}
    paired: dict[str, list[float]] = {}
    for name, measured_set in measured.items():
        results: dict = {}
        fd_raw[name] = metrics.fd_replicates(measured_set.features, draws, reference_stats)
        _with_interval(results, "fd", holdout.fd(measured_set.features), fd_raw[name], cfg.confidence)
        kid_subsets = metrics.kid_subset_estimates(measured_set.features, reference_features, subset,
                                                   cfg.kid_subsets, cfg.seed)
        results["kid"] = float(kid_subsets.mean())
        results["kid_low"], results["kid_high"] = metrics.percentile_interval(kid_subsets, cfg.confidence)
        inside_reference, inside_set = metrics.precision_recall_indicators(
            reference_features, measured_set.features, k, real_radii=reference_radii)
        precision_reps = metrics.indicator_replicates(inside_reference, draws.sample)
        recall_reps = metrics.indicator_replicates(inside_set, draws.reference)
        _with_interval(results, "precision", float(inside_reference.mean()), precision_reps, cfg.confidence)
        _with_interval(results, "recall", float(inside_set.mean()), recall_reps, cfg.confidence)
        if name == metric_specs.MODEL:
            paired = {"fd": fd_raw[name].tolist(), "precision": precision_reps.tolist(),
                      "recall": recall_reps.tolist()}
        sections[name] = results
    for name in (metric_specs.MODEL, metric_specs.REAL):
        sections[name]["fd_infinity"] = metrics.fd_infinity(measured[name].features, reference_features, cfg.seed)
    for name, results in sections.items():
        # Ratio of raw replicates (both carry the resampling bias), then centred on the estimated ratio.
        _with_interval(results, "fd_ratio", holdout.ratio(results["fd"]),
                       fd_raw[name] / fd_raw[metric_specs.REAL], cfg.confidence)
    return sections, paired


def _add_copying(cfg: EvaluateConfig, sections: dict[str, dict], model_features: np.ndarray,
                 validation_split: streams.Rows, featurizer: featurizer_lib.Featurizer,
                 train_features: np.ndarray, reference_features: np.ndarray, draws: metrics.BootstrapDraws) -> int:
    """Copying: generated samples against the whole train split and the reference; the floor is new real
    images (a validation sample) measured the same way. Returns the floor's sample count."""
    count = len(model_features)
    validation_count = min(count, len(validation_split))
    validation_index = np.random.default_rng([cfg.seed, validation_count]).choice(
        len(validation_split), validation_count, replace=False)
    validation_features = featurizer.measure_pieces(
        featurizer_lib.split_pieces(validation_split, validation_index), False)[0]
    for name, features, rows in (
            (metric_specs.MODEL, model_features, draws.sample),
            (metric_specs.REAL, validation_features,
             np.random.default_rng([cfg.seed, 2]).integers(0, validation_count, (len(draws), validation_count)))):
        copies = metrics.copying_indicators(features, train_features, reference_features)
        _with_interval(sections[name], "copying", float(copies.mean()),
                       metrics.indicator_replicates(copies, rows), cfg.confidence)
    return validation_count


def _nearest_train_images(generated: artifacts.Split, generated_features: np.ndarray, train_split: streams.Rows,
                          train_features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The generated samples closest to the training set, each with its nearest training image and distance."""
    generated_to_train, nearest_train = metrics.nearest_neighbours(generated_features, train_features)
    closest = np.argsort(generated_to_train, kind="stable")[:NEIGHBOUR_PAIRS]
    return generated.signed(closest), train_split.signed(nearest_train[closest]), generated_to_train[closest]


def class_grid(images: streams.Rows, classes: np.ndarray, num_classes: int,
               columns: int = CLASS_GRID_COLUMNS) -> np.ndarray:
    """One row per class, up to `columns` of its images; blank (white) cells where a class has fewer."""
    cells = np.ones((num_classes, columns, *images.shape), np.float32)
    for label in range(num_classes):
        members = images.signed(np.flatnonzero(classes == label)[:columns])
        cells[label, :len(members)] = members
    return cells.reshape(num_classes * columns, *images.shape)


def numeric_items(results: dict, prefix: str = "") -> dict[str, float]:
    """metrics.json's numbers flattened one level (`real.fd`), as MLflow metric names."""
    flat: dict[str, float] = {}
    for key, value in results.items():
        if isinstance(value, dict) and key in metric_specs.SETS:
            flat.update(numeric_items(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


def summary_line(results: dict, featurizer: featurizer_lib.Featurizer) -> str:
    """The model between its floor and the baselines, in one line."""
    def fd(section: dict) -> str:
        return f"{section['fd']:.4g} [{section['fd_low']:.4g}, {section['fd_high']:.4g}]"

    real = results[metric_specs.REAL]
    baseline_text = "  ".join(f"{name} {fd(results[name])}" for name in metric_specs.BASELINES)
    cas_text = f"  cas {results['cas']:.3f} (real {real['cas']:.3f})" if "cas" in results else ""
    return (f"fd {fd(results)} = {results['fd_ratio']:.3g}x the real floor {fd(real)}; baselines: {baseline_text}  "
            f"precision {results['precision']:.3f} (real {real['precision']:.3f})  recall {results['recall']:.3f} "
            f"(real {real['recall']:.3f})  copying {results['copying']:.3f} (real {real['copying']:.3f}, up to "
            f"{real['copying_high']:.3f}){cas_text}  (n={results['num_samples']}, {results['confidence']:.0%} "
            f"intervals over {results['bootstrap_replicates']} bootstrap replicates, {featurizer.kind} "
            f"{featurizer.hash})")


def run(cfg: EvaluateConfig, prepared_dir: str | Path, model_dir: str | Path, featurizer_path: str | Path,
        metrics_path: str | Path, samples_path: str | Path, *, paired_path: str | Path | None = None,
        figures_dir: str | Path | None = None, report_path: str | Path | None = None,
        champion: dict | None = None, params_path: str | Path | None = None,
        validation_path: str | Path | None = None) -> dict:
    """Sample the trained generator, compute every metric on the test split, write metrics.json, the gate's
    paired bootstrap evidence and the sample grid, and (when given the paths) the figures folder and the HTML
    report; log all of it to this execution's MLflow record (`lineage`), the metrics once, against the test
    dataset. With `champion` (the registry's champion version, `registry.champion.summary`) the report
    compares with it."""
    prepared_dir, model_dir = Path(prepared_dir), Path(model_dir)
    prepared, model_folder = artifacts.PreparedData(prepared_dir), artifacts.ModelFolder(model_dir)
    info = prepared.read_info()
    splits = {name: prepared.open_split(name) for name in artifacts.SPLITS}  # read by rows and chunks
    generator = sampling.load_generator(model_folder.generator_path)
    featurizer = featurizer_lib.load(featurizer_path)
    count = min(cfg.num_samples, len(splits["train"]), len(splits["test"]))
    classes = sampling.num_classes(generator)
    labels = sampling.balanced_labels(count, classes) if classes else None
    generated = sampling.sample(generator, count, cfg.seed, labels=labels, pixels=True)

    evaluation = compute(cfg, generated, splits["train"], splits["test"], splits["validation"], featurizer,
                         generated_labels=labels)
    results = evaluation.metrics
    artifacts.write_json(metrics_path, results)
    if paired_path is not None:
        artifacts.write_json(paired_path, {**evaluation.paired, "data_hash": info.data_hash})
    upscale = imaging.upscale_for_display(generated.shape[1])
    imaging.save_png(samples_path, imaging.grid(evaluation.generated.signed(np.arange(min(GRID_IMAGES, count))),
                                                upscale=upscale))

    figures: dict[str, Path] = {}
    if figures_dir is not None:
        figures = write_figures(evaluation, featurizer.num_classes, Path(figures_dir), upscale)

    inputs = lineage.Inputs(prepared=prepared_dir, params=Path(params_path) if params_path else None,
                            validation=Path(validation_path) if validation_path else None)
    with lineage.open_record(inputs) as active:
        run_id = active.info.run_id
        lineage.note_training_run(model_folder.read_run().run_id)
        if report_path is not None:
            report.write(report_path, report.Context(
                run_id=run_id, metrics=results, champion=champion, samples=Path(samples_path),
                class_grid=figures.get(CLASS_GRID_FILE), neighbours=figures.get(NEIGHBOURS_FILE),
                class_table=evaluation.class_table,
                neighbour_distances=evaluation.neighbours[2], history=model_folder.history_path,
                conditional=bool(classes)))
        mlflow.log_metrics({f"eval.{k}": v for k, v in numeric_items(results).items()},
                           dataset=lineage.dataset(prepared_dir, info, "test"))
        mlflow.set_tag("ganops.featurizer_hash", featurizer.hash)
        for path in (metrics_path, paired_path, samples_path, report_path, *figures.values()):
            if path is not None:
                mlflow.log_artifact(str(path), artifact_path="evaluation")
    print(summary_line(results, featurizer), flush=True)
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
        if evaluation.class_table is not None and evaluation.generated_classes is not None:  # both or neither
            evaluation.class_table.to_csv(tmp / CLASS_HISTOGRAM_FILE, index=False, float_format="%.6g")
            cells = class_grid(evaluation.generated, evaluation.generated_classes, num_classes)
            imaging.save_png(tmp / CLASS_GRID_FILE, imaging.grid(cells, columns=CLASS_GRID_COLUMNS, upscale=upscale))
            names += [CLASS_HISTOGRAM_FILE, CLASS_GRID_FILE]
    return {name: figures_dir / name for name in names}
