"""Quality per CPU-second: Fréchet distance (in the featurizer's space, as the evaluate stage computes it)
against training seconds, for time-budgeted runs of the train stage's trainer, several settings side by side.

Data (`--data`):
- `mnist`: the MNIST test set (10,000 images, ../shared/data/mnist-t10k), split 7,000 train / 1,000
  validation / 2,000 test;
- `shapes`: a small RGB set the benchmark makes itself: `--shapes-count` seeded images of ten coloured shapes
  on two-colour gradients (`large_data.make_chunk`, 64×64×3) resized by the prepare stage to `--shapes-size`,
  split 50% train / 10% validation / 40% test, so the training set is small (1,000 by default, like a folder
  of a user's sprites) and the test split still gives a usable n.
Both are prepared by the prepare stage's code; the featurizer is trained on them with the default
`featurize` params.

Settings (`--variant NAME KEY=VALUE ...`, repeatable): each variant is the repository's `train` params with
the `--set` overrides, then its own, and `max_seconds = --seconds`; `arch: auto` and `augment: auto` resolve as
the train stage resolves them. Runs alternate (seed 0: every variant, then seed 1: every variant, ...), so a
change in the machine's load falls on every variant alike. Every `--every` seconds of training the EMA
generator's weights are copied (milliseconds, so the budget is spent on training); after training each copy
is measured exactly like the evaluate stage (standing BatchNorm statistics, same sample count, same seed,
same floor) plus the classifier's mean max-softmax confidence on the generated images.

Each of `--seeds` (default 0 1 2) trains once per variant; the data split, featurizer and evaluation draws
stay fixed. Writes `<out>/curve.csv` (variant, seed, seconds, step, images seen, fd with its 95% interval,
floor, ratio with its interval, precision, recall, copying, confidence, confidence_real: the classifier's
confidence on real test images), `<out>/curve.png` (one line per variant and seed),
`<out>/samples_<variant>_seed<N>.png` and `<out>/real.png` (test images, for comparison). Then a table of
each variant's ratio at every curve point (median over seeds, every seed's value with its interval), the
final points beside the real floor and the baselines, and last `fd_ratio=<median final ratio>` (one
variant) or `fd_ratio=<name>:<median>,...` (several).

    python benchmarks/quality_budget.py --out reports/quality_budget --seconds 240 --every 60 \
        --set arch=dcgan --set base_filters=32 --set batch_size=16
    python benchmarks/quality_budget.py --data shapes --seconds 150 --every 50 \
        --variant mlp arch=mlp --variant dcgan arch=dcgan
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
SPLITS = {"mnist": (0.1, 0.2), "shapes": (0.1, 0.4)}  # (validation, test) fractions of each data set


def parse_override(text: str, where: str) -> tuple[str, object]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"{where} {text!r}: expected key=value (a key of the train section)")
    return key.strip(), yaml.safe_load(value)


def load_load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def data_config(args: argparse.Namespace, work: Path):
    """The prepare stage's config for `--data`; `shapes` writes its npz into `work` first."""
    from ganops.config import DataConfig

    validation, test = SPLITS[args.data]
    if args.data == "mnist":
        mnist = Path(args.mnist)
        return DataConfig(source="idx", path=str(mnist / "t10k-images-idx3-ubyte.gz"),
                          labels_path=str(mnist / "t10k-labels-idx1-ubyte.gz"), image_size=28,
                          validation_fraction=validation, test_fraction=test)
    import large_data  # beside this file: the same seeded shapes as the large-data benchmark

    archive = work / "shapes.npz"
    large_data.write_npz(archive, args.shapes_count)
    return DataConfig(source="npz", path=str(archive), image_size=args.shapes_size, channels=3,
                      validation_fraction=validation, test_fraction=test)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="reports/quality_budget", help="folder for curve.csv, curve.png, samples")
    parser.add_argument("--data", choices=sorted(SPLITS), default="mnist")
    parser.add_argument("--shapes-count", type=int, default=2000, help="--data shapes: images made (half train)")
    parser.add_argument("--shapes-size", type=int, default=32, help="--data shapes: side after resizing")
    parser.add_argument("--seconds", type=float, default=240.0, help="training budget (train.max_seconds)")
    parser.add_argument("--every", type=float, default=20.0, help="seconds of training between curve points")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a train param for every variant, e.g. --set base_filters=32 (repeatable)")
    parser.add_argument("--variant", dest="variants", action="append", nargs="+", default=[],
                        metavar="NAME [KEY=VALUE]",
                        help="a named setting compared side by side: its own train overrides (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (train.seed)")
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--mnist", default=str(MNIST), help="folder with the t10k idx files")
    args = parser.parse_args()

    if args.data == "mnist" and not (Path(args.mnist) / "t10k-images-idx3-ubyte.gz").exists():
        if args.mnist == str(MNIST):  # the default place: `make bench` on a clone without ../shared goes on
            print(f"skipped: no MNIST t10k files in {args.mnist} (pass --mnist DIR with t10k-images-idx3-ubyte.gz)",
                  flush=True)
            return 0
        raise SystemExit(f"{args.mnist}: MNIST t10k files not found")

    import keras
    import numpy as np
    import pandas as pd

    from ganops import artifacts, imaging, shards
    from ganops.config import load_params
    from ganops.data import prepare
    from ganops.errors import GanopsError
    from ganops.evaluation import evaluate
    from ganops.features import featurizer
    from ganops.models import sampling, standing
    from ganops.training import train

    params = load_params(args.params)
    common = dict(parse_override(text, "--set") for text in args.overrides)
    variants: dict[str, object] = {}
    for name, *settings in args.variants or [["default"]]:
        if name in variants or "=" in name:
            raise SystemExit(f"--variant {name!r}: each variant needs a name of its own before its KEY=VALUEs")
        updates = {**common, **dict(parse_override(text, f"--variant {name}") for text in settings)}
        try:
            variants[name] = type(params.train).model_validate(
                {**params.train.model_dump(), **updates, "max_seconds": args.seconds})
        except Exception as exc:  # pydantic names the bad key
            raise SystemExit(f"--variant {name}: {exc}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared"
        info = prepare.run(data_config(args, Path(tmp)), prepared)
        splits = {name: artifacts.read_split(prepared / file_name)
                  for name, file_name in artifacts.PreparedData.SPLIT_FILES.items()}
        train_split, test_split = splits["train"], splits["test"]
        started = time.perf_counter()
        summary = featurizer.run(params.featurize, prepared, Path(tmp) / "featurizer.keras", Path(tmp) / "f.json")
        features = featurizer.load(Path(tmp) / "featurizer.keras")
        side = "x".join(map(str, info.image_shape))
        print(f"data {args.data}: {info.train_count} train / {info.validation_count} validation / "
              f"{info.test_count} test {side}; featurizer validation accuracy {summary['validation_accuracy']:.3f} "
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
    imaging.save_png(out / "real.png", imaging.grid(test_split.images[:100], columns=10, upscale=2))
    # The classifier's confidence on real test images: the ceiling for the samples' confidence.
    confidence_real = float(features.probabilities(test_split.images[:count]).max(axis=1).mean())
    rows, finals = [], {name: [] for name in variants}
    for seed in args.seeds:
        for name, cfg in variants.items():
            seed_cfg = cfg.for_data(len(train_split), train_split.shape).model_copy(update={"seed": seed})
            snapshots = Snapshots()
            print(f"{name} seed {seed}: train {seed_cfg.model_dump(exclude_defaults=True)}; load average before "
                  f"{load_load_average()}", flush=True)
            try:
                result = train.train(seed_cfg, train_split, num_classes=info.num_classes,
                                     extra_callbacks=[snapshots])
            except GanopsError as exc:
                raise SystemExit(f"train: {exc}") from None
            print(f"{name} seed {seed}: trained {result.steps} steps ({result.steps * seed_cfg.batch_size:,} images "
                  f"seen) in {result.seconds:.1f}s; load average after {load_load_average()}", flush=True)
            generator = result.gan.ema_generator
            final_weights = generator.get_weights()
            points = ([snap for snap in snapshots.taken if snap[1] < result.steps]
                      + [(result.seconds, result.steps, final_weights)])
            for seconds, step, weights in points:
                generator.set_weights(weights)
                # What the train stage would save at this point: standing BatchNorm statistics.
                product = standing.with_standing_statistics(generator, seed=seed)
                # uint8 pixels, then read back as float32: what the evaluate stage samples and measures.
                generated = sampling.sample(product, count, params.evaluate.seed, pixels=True)
                metrics = evaluate.compute(params.evaluate, generated, train_split, test_split,
                                           splits["validation"], features).metrics
                generated = shards.to_signed(generated)
                confidence = float(features.probabilities(generated).max(axis=1).mean())
                rows.append({"variant": name, "seed": seed, "seconds": round(seconds, 2), "step": step,
                             "images_seen": step * seed_cfg.batch_size, "fd": metrics["fd"],
                             "fd_low": metrics["fd_low"], "fd_high": metrics["fd_high"],
                             "fd_real": metrics["real"]["fd"], "fd_ratio": metrics["fd_ratio"],
                             "fd_ratio_low": metrics["fd_ratio_low"], "fd_ratio_high": metrics["fd_ratio_high"],
                             "precision": metrics["precision"], "recall": metrics["recall"],
                             "copying": metrics["copying"], "confidence": confidence,
                             "confidence_real": confidence_real})
                print(f"{name} seed {seed} {seconds:7.1f}s  step {step:6d}  fd {metrics['fd']:8.3f} "
                      f"[{metrics['fd_low']:.3f}, {metrics['fd_high']:.3f}]  floor {metrics['real']['fd']:.3f}  "
                      f"ratio {metrics['fd_ratio']:7.2f}  confidence {confidence:.3f}", flush=True)
            finals[name].append(metrics)
            imaging.save_png(out / f"samples_{name}_seed{seed}.png",
                             imaging.grid(generated[:100], columns=10, upscale=2))
    curve = pd.DataFrame(rows)
    curve.to_csv(out / "curve.csv", index=False)
    plot(curve, out / "curve.png", f"{args.data} {side}, n = {count}")

    # Every variant at every curve point: the points are `--every` apart on each run's own clock, so the
    # k-th point of every run is at about the same training seconds.
    curve["point"] = curve.groupby(["variant", "seed"]).cumcount()
    print(f"fd / floor, n = {count} per set, 95% bootstrap intervals; median over seeds, then each seed:")
    for (name, _), part in curve.groupby(["variant", "point"], sort=False):
        cells = "  ".join(f"{row.fd_ratio:.2f} [{row.fd_ratio_low:.2f}, {row.fd_ratio_high:.2f}]"
                          for row in part.itertuples())
        print(f"  {name:12s} {part['seconds'].median():6.0f}s  median {part['fd_ratio'].median():7.2f}   {cells}",
              flush=True)
    print(f"final points, n = {count} per set, 95% bootstrap intervals:")
    first = next(iter(finals.values()))
    for label, pick in (("real floor", lambda m: m["real"]), ("pixel Gaussian", lambda m: m["pixel_gaussian"]),
                        ("noisy train", lambda m: m["noisy_train"])):
        print(f"  {label:20s} {pick(first[0])['fd']:.3f} [{pick(first[0])['fd_low']:.3f}, "
              f"{pick(first[0])['fd_high']:.3f}] ({pick(first[0])['fd_ratio']:.2f}x)", flush=True)
    medians = {}
    for name, measured in finals.items():
        ratios = [m["fd_ratio"] for m in measured]
        medians[name] = statistics.median(ratios)
        last = curve[curve["variant"] == name].groupby("seed").tail(1)
        cells = "  ".join(f"{m['fd']:.3f} [{m['fd_low']:.3f}, {m['fd_high']:.3f}] ({m['fd_ratio']:.2f}x)"
                          for m in measured)
        print(f"  {name:20s} {cells}", flush=True)
        print(f"  {'':20s} over {len(measured)} seeds: fd_ratio median {medians[name]:.2f} (range {min(ratios):.2f}-"
              f"{max(ratios):.2f}); steps {int(last['step'].median())}, precision {last['precision'].median():.3f}, "
              f"recall {last['recall'].median():.3f}, confidence {last['confidence'].median():.3f} (real test "
              f"images {confidence_real:.3f})", flush=True)
    print(f"wrote {out}/curve.csv, curve.png, samples_*.png, real.png", flush=True)
    if len(medians) == 1:
        print(f"fd_ratio={next(iter(medians.values())):.3f}")
    else:
        print("fd_ratio=" + ",".join(f"{name}:{value:.3f}" for name, value in medians.items()))
    return 0


def plot(curve, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (name, runs) in enumerate(curve.groupby("variant", sort=False)):
        for seed, part in runs.groupby("seed"):
            colour = colours[index % len(colours)]
            axis.plot(part["seconds"], part["fd_ratio"], marker="o", color=colour,
                      label=f"{name}" if seed == runs["seed"].iloc[0] else None)
            axis.fill_between(part["seconds"], part["fd_ratio_low"], part["fd_ratio_high"], color=colour, alpha=0.1)
    axis.axhline(1.0, linestyle=":", color="gray", linewidth=1, label="the floor (real vs real)")
    axis.legend(loc="upper right")
    axis.set_yscale("log")
    axis.set_xlabel("training seconds")
    axis.set_ylabel("Fréchet distance / real-vs-real floor")
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
