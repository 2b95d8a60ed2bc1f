"""Quality per CPU-second: Fréchet distance (in the featurizer's space, as the evaluate stage computes it)
against training seconds, for a time-budgeted run of the train stage's trainer.

The MNIST test set (10,000 images, /work/shared/data/mnist-t10k) is prepared by the prepare stage's code
split 7,000 train / 1,000 validation / 2,000 test; the featurizer is trained on it with the default
`featurize` params. Training uses the repository's `train` params with `--set` overrides and
`max_seconds = --seconds`. Every `--every` seconds of training the EMA generator's weights are copied
(milliseconds, so the budget is spent on training); after training each copy is evaluated exactly like
the evaluate stage (same sample count, same seed, same floor) plus the classifier's mean max-softmax
confidence on the generated images.

Each of `--seeds` (default 0 1 2) trains once; the data split, featurizer and evaluation draws stay fixed.
Each snapshot is measured on the test split with standing BatchNorm statistics, as the train stage saves it.
Writes `<out>/curve.csv` (seed, seconds, step, images seen, fd with its 95% interval, floor, ratio with its
interval, precision, recall, copying, confidence, confidence_real: the classifier's confidence on real test
images), `<out>/curve.png` (one line per seed) and `<out>/samples_seed<N>.png`. Then the final point of each
seed beside the real floor and the baselines. The last line is `fd_ratio=<median final ratio over seeds>`.

    python benchmarks/quality_budget.py --out reports/quality_budget --seconds 240 --every 60 \
        --set arch=dcgan --set base_filters=32 --set batch_size=16
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "data" / "mnist-t10k"


def parse_override(text: str) -> tuple[str, object]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--set {text!r}: expected key=value (a key of the train section)")
    return key.strip(), yaml.safe_load(value)


def load_load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="reports/quality_budget", help="folder for curve.csv, curve.png, samples")
    parser.add_argument("--seconds", type=float, default=240.0, help="training budget (train.max_seconds)")
    parser.add_argument("--every", type=float, default=20.0, help="seconds of training between curve points")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a train param, e.g. --set base_filters=32 (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (train.seed)")
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--mnist", default=str(MNIST), help="folder with the t10k idx files")
    args = parser.parse_args()

    import keras
    import numpy as np
    import pandas as pd

    from ganops import artifacts, imaging
    from ganops.config import DataConfig, load_params
    from ganops.data import prepare
    from ganops.errors import GanopsError
    from ganops.evaluation import evaluate
    from ganops.features import featurizer
    from ganops.models import sampling, standing
    from ganops.training import train

    mnist = Path(args.mnist)
    if not (mnist / "t10k-images-idx3-ubyte.gz").exists():
        if args.mnist == str(MNIST):  # the default place: `make bench` on a clone without ../shared goes on
            print(f"skipped: no MNIST t10k files in {mnist} (pass --mnist DIR with t10k-images-idx3-ubyte.gz)",
                  flush=True)
            return 0
        raise SystemExit(f"{mnist}: MNIST t10k files not found")
    params = load_params(args.params)
    updates = dict(parse_override(text) for text in args.overrides)
    try:
        cfg = type(params.train).model_validate({**params.train.model_dump(), **updates, "max_seconds": args.seconds})
    except Exception as exc:  # pydantic names the bad key
        raise SystemExit(f"--set: {exc}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared"
        data_cfg = DataConfig(source="idx", path=str(mnist / "t10k-images-idx3-ubyte.gz"),
                              labels_path=str(mnist / "t10k-labels-idx1-ubyte.gz"), image_size=28,
                              validation_fraction=0.1, test_fraction=0.2)
        info = prepare.run(data_cfg, prepared)
        splits = {name: artifacts.read_split(prepared / file_name)
                  for name, file_name in artifacts.PreparedData.SPLIT_FILES.items()}
        train_split, test_split = splits["train"], splits["test"]
        started = time.perf_counter()
        summary = featurizer.run(params.featurize, prepared, Path(tmp) / "featurizer.keras", Path(tmp) / "f.json")
        features = featurizer.load(Path(tmp) / "featurizer.keras")
        print(f"data: {info.train_count} train / {info.validation_count} validation / {info.test_count} test 28x28; "
              f"featurizer validation accuracy {summary['validation_accuracy']:.3f} "
              f"({time.perf_counter() - started:.0f}s)", flush=True)

    class Snapshots(keras.callbacks.Callback):
        """Copy the EMA weights every `every` seconds of training (the train loop's own clock)."""

        def __init__(self):
            super().__init__()
            self.taken: list[tuple[float, int, list[np.ndarray]]] = []

        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()
            self.next_at = args.every

        def on_train_batch_end(self, batch, logs=None):
            seconds = time.perf_counter() - self.started
            if seconds >= self.next_at:
                self.taken.append((seconds, int(logs["step"]), self.model.ema_generator.get_weights()))
                self.next_at += args.every

    count = min(params.evaluate.num_samples, len(train_split), len(test_split))
    # The classifier's confidence on real test images: the ceiling for the samples' confidence.
    confidence_real = float(features.probabilities(test_split.images[:count]).max(axis=1).mean())
    rows, finals = [], []
    for seed in args.seeds:
        seed_cfg = cfg.model_copy(update={"seed": seed})
        snapshots = Snapshots()
        print(f"seed {seed}: train {seed_cfg.model_dump(exclude_defaults=True)}; load average before "
              f"{load_load_average()}", flush=True)
        try:
            result = train.train(seed_cfg, train_split, num_classes=info.num_classes, extra_callbacks=[snapshots])
        except GanopsError as exc:
            raise SystemExit(f"train: {exc}") from None
        print(f"seed {seed}: trained {result.steps} steps ({result.steps * cfg.batch_size:,} images seen) in "
              f"{result.seconds:.1f}s; load average after {load_load_average()}", flush=True)
        generator = result.gan.ema_generator
        final_weights = generator.get_weights()
        points = ([snap for snap in snapshots.taken if snap[1] < result.steps]
                  + [(result.seconds, result.steps, final_weights)])
        for seconds, step, weights in points:
            generator.set_weights(weights)
            # What the train stage would save at this point: standing BatchNorm statistics.
            product = standing.with_standing_statistics(generator, seed=seed)
            generated = sampling.sample(product, count, params.evaluate.seed)
            metrics = evaluate.compute(params.evaluate, generated, train_split, test_split, splits["validation"],
                                       features).metrics
            confidence = float(features.probabilities(generated).max(axis=1).mean())
            row = {"seed": seed, "seconds": round(seconds, 2), "step": step, "images_seen": step * cfg.batch_size,
                   "fd": metrics["fd"], "fd_low": metrics["fd_low"], "fd_high": metrics["fd_high"],
                   "fd_real": metrics["real"]["fd"], "fd_ratio": metrics["fd_ratio"],
                   "fd_ratio_low": metrics["fd_ratio_low"], "fd_ratio_high": metrics["fd_ratio_high"],
                   "precision": metrics["precision"], "recall": metrics["recall"], "copying": metrics["copying"],
                   "confidence": confidence, "confidence_real": confidence_real}
            rows.append(row)
            print(f"seed {seed} {seconds:7.1f}s  step {step:6d}  fd {metrics['fd']:8.3f} [{metrics['fd_low']:.3f}, "
                  f"{metrics['fd_high']:.3f}]  floor {metrics['real']['fd']:.3f}  ratio {metrics['fd_ratio']:7.2f}  "
                  f"confidence {confidence:.3f}", flush=True)
        finals.append(metrics)
        imaging.save_png(out / f"samples_seed{seed}.png", imaging.grid(generated[:100], columns=10, upscale=2))
    curve = pd.DataFrame(rows)
    curve.to_csv(out / "curve.csv", index=False)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for seed, part in curve.groupby("seed"):
        axis.plot(part["seconds"], part["fd_ratio"], marker="o", label=f"seed {seed}")
        axis.fill_between(part["seconds"], part["fd_ratio_low"], part["fd_ratio_high"], alpha=0.15)
    axis.axhline(1.0, linestyle=":", color="gray", linewidth=1, label="the floor (real vs real)")
    axis.legend(loc="lower left")
    axis.set_yscale("log")
    axis.set_xlabel("training seconds")
    axis.set_ylabel("Fréchet distance / real-vs-real floor")
    axis.set_title(f"MNIST t10k, {cfg.arch}, batch {cfg.batch_size}, n = {count}")
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "curve.png", dpi=100)

    # The final point of every seed beside the floor and the baselines, all at the same n.
    print(f"final, n = {count} per set, 95% bootstrap intervals:")
    for label, pick in (("model", lambda m: m), ("real floor", lambda m: m["real"]),
                        ("pixel Gaussian", lambda m: m["pixel_gaussian"]), ("noisy train", lambda m: m["noisy_train"])):
        cells = "  ".join(f"{pick(m)['fd']:.3f} [{pick(m)['fd_low']:.3f}, {pick(m)['fd_high']:.3f}] "
                          f"({pick(m)['fd_ratio']:.2f}x)" for m in finals)
        print(f"  {label:15s} {cells}", flush=True)
    ratios = [m["fd_ratio"] for m in finals]
    last = curve.groupby("seed").tail(1)
    print(f"over {len(finals)} seeds: fd_ratio median {statistics.median(ratios):.2f} (range {min(ratios):.2f}-"
          f"{max(ratios):.2f}); steps {int(last['step'].median())}, confidence {last['confidence'].median():.3f} "
          f"(real test images {confidence_real:.3f}); wrote {out}/curve.csv, curve.png, samples_seed*.png",
          flush=True)
    print(f"fd_ratio={statistics.median(ratios):.3f}")


if __name__ == "__main__":
    sys.exit(main())
