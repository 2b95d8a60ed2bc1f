"""Time of the evaluate stage's metric computation on 10,000 generated vs 10,000 real 28×28 images.

What is timed is `evaluate.compute` as the stage calls it: featurizer inference on every set plus all
metrics for the model, the real floor and the two baselines (Fréchet distance with 200 bootstrap replicates
and FD-infinity, KID over 100 subsets of 1,000, k-NN precision/recall with k = 3 and their bootstrap, the
copying measure against the whole train split, classifier score and class metrics). Featurizer training
is excluded (the featurize stage does it once per dataset).

Data: the MNIST test set (/work/shared/data/mnist-t10k, through the idx source) when present, else
synthetic digit-like images. The 10,000 real images are the test split; the "train" and "validation" splits
and the "generated" set (10,000 each) are the same images shifted by a pixel and with Gaussian noise, so
every set is distinct. Medians over `--repeats` runs; per-metric times of
one extra run follow. The last line is the headline.

    python benchmarks/evaluate_throughput.py [--count 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"
SIDE = 28


def real_images(count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(images NHWC in [-1, 1], labels, where they came from)."""
    from ganops.config import DataConfig
    from ganops.data import sources

    images_path, labels_path = MNIST_DIR / "t10k-images-idx3-ubyte.gz", MNIST_DIR / "t10k-labels-idx1-ubyte.gz"
    if images_path.exists() and labels_path.exists():
        loaded = sources.load(DataConfig(source="idx", path=str(images_path), labels_path=str(labels_path),
                                         image_size=SIDE))
        pixels = loaded.images.astype(np.float32)
        pixels = pixels / 255.0 if loaded.images.dtype == np.uint8 else pixels
        labels, origin = loaded.labels, f"MNIST t10k ({images_path.parent})"
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels = sources.resize_to((digits.images / 16.0).astype(np.float32)[..., None], SIDE)
        labels, origin = digits.target.astype(np.int64), "synthetic (sklearn digits upscaled)"
    pick = np.random.default_rng(0).choice(len(pixels), count, replace=len(pixels) < count)
    return pixels[pick] * 2.0 - 1.0, labels[pick], origin


def perturbed(images: np.ndarray, shift: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    moved = np.roll(images, shift, axis=2)
    return np.clip(moved + rng.normal(0.0, noise, images.shape).astype(np.float32), -1.0, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from ganops import artifacts
    from ganops.config import EvaluateConfig, FeaturizeConfig
    from ganops.evaluation import evaluate
    from ganops.features import featurizer, metrics

    test_images, labels, origin = real_images(args.count)
    train = artifacts.Split(perturbed(test_images, 1, 0.05, seed=1), labels)
    test = artifacts.Split(test_images, labels)
    validation = artifacts.Split(perturbed(test_images, 2, 0.05, seed=3), labels)
    generated = perturbed(test_images, -1, 0.1, seed=2)
    started = time.perf_counter()
    model, score = featurizer.train(FeaturizeConfig(epochs=2, batch_size=128), train, validation, 10)
    print(f"data: {origin}; {args.count:,} generated, test, train and validation images; "
          f"featurizer trained in {time.perf_counter() - started:.1f} s (not timed), {score}", flush=True)

    cfg = EvaluateConfig(num_samples=args.count)
    evaluate.compute(cfg, generated[:256], train, test, validation, model)  # warm-up: tracing, BLAS threads
    seconds = []
    for repeat in range(args.repeats):
        started = time.perf_counter()
        result = evaluate.compute(cfg, generated, train, test, validation, model).metrics
        seconds.append(time.perf_counter() - started)
        print(f"run {repeat + 1}: {seconds[-1]:.2f} s  fd={result['fd']:.3f} [{result['fd_low']:.3f}, "
              f"{result['fd_high']:.3f}] (real {result['real']['fd']:.3f}, pixel Gaussian "
              f"{result['pixel_gaussian']['fd']:.3f})  kid={result['kid']:.4f}  precision={result['precision']:.3f}  "
              f"recall={result['recall']:.3f}  copying={result['copying']:.3f}", flush=True)

    # Where the time goes (one more run, phase by phase, the same calls compute makes for one set).
    phases: dict[str, float] = {}

    def timed(name, call):
        started = time.perf_counter()
        value = call()
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - started
        return value

    g, _ = timed("featurizer inference", lambda: model.features_and_probabilities(generated))
    h, _ = timed("featurizer inference", lambda: model.features_and_probabilities(test.images))
    t = timed("featurizer inference", lambda: model.features(train.images))
    draws = metrics.BootstrapDraws.draw(len(g), cfg.bootstrap_replicates, cfg.seed)
    stats = timed("fd bootstrap (reference side, once)", lambda: metrics.reference_replicate_stats(h, draws))
    timed("fd bootstrap (per set)", lambda: metrics.fd_replicates(g, draws, stats))
    timed("kid (per set)", lambda: metrics.kid_subset_estimates(g, h, cfg.kid_subset_size, cfg.kid_subsets, 0))
    radii = timed("precision/recall", lambda: metrics.knn_radii(h, cfg.precision_recall_k))
    timed("precision/recall", lambda: metrics.precision_recall_indicators(h, g, cfg.precision_recall_k, radii))
    timed("copying (nearest train and test neighbours)", lambda: metrics.copying_indicators(g, t, h))
    print("phases: " + ", ".join(f"{name} {value:.2f} s" for name, value in phases.items()), flush=True)
    print(f"load average: {os.getloadavg()[0]:.2f}; cpus: {os.cpu_count()}", flush=True)
    print(f"evaluate_seconds={statistics.median(seconds):.2f}", flush=True)


if __name__ == "__main__":
    main()
