"""The default digits pipeline's quality over several training seeds, in the evaluate stage's own terms.

Runs what `make pipeline` runs with the repository's params.yaml (prepare → featurize → train → evaluate,
the library functions the stages call), once per training seed (`train.seed` = 0, 1, 2 by default; the
data split, featurizer and evaluation draws stay fixed so only training varies). For each seed it prints
the model's Fréchet distance with its 95% bootstrap interval beside the real floor and the two baselines
(pixel Gaussian, noisy train images), precision, recall and copying with their floors, and the training
steps, images seen and seconds; then the median and range over seeds. The last line is the headline.

    python benchmarks/digits_quality.py [--seeds 0 1 2] [--params params.yaml]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()

    from ganops import artifacts
    from ganops.config import load_params
    from ganops.data import prepare
    from ganops.evaluation import evaluate
    from ganops.features import featurizer
    from ganops.models import sampling, standing
    from ganops.training import train

    params = load_params(args.params)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared"
        info = prepare.run(params.data, prepared)
        splits = {name: artifacts.read_split(prepared / file_name)
                  for name, file_name in artifacts.PreparedData.SPLIT_FILES.items()}
        summary = featurizer.run(params.featurize, prepared, Path(tmp) / "featurizer.keras", Path(tmp) / "f.json")
        features = featurizer.load(Path(tmp) / "featurizer.keras")
        print(f"data: {info.train_count} train / {info.validation_count} validation / {info.test_count} test; "
              f"featurizer {summary['kind']} {summary['hash']}: {summary}", flush=True)
        for seed in args.seeds:
            cfg = params.train.model_copy(update={"seed": seed, "monitor_every_epochs": None})
            started = time.perf_counter()
            result = train.train(cfg, splits["train"], num_classes=info.num_classes, say=lambda _: None)
            # What the train stage saves: the EMA generator with standing BatchNorm statistics.
            generator = standing.with_standing_statistics(result.gan.ema_generator, seed=cfg.seed)
            count = min(params.evaluate.num_samples, len(splits["train"]), len(splits["test"]))
            generated = sampling.sample(generator, count, params.evaluate.seed)
            metrics = evaluate.compute(params.evaluate, generated, splits["train"], splits["test"],
                                       splits["validation"], features).metrics
            rows.append(metrics)
            real = metrics["real"]
            print(f"seed {seed}: {result.steps} steps, {result.steps * cfg.batch_size:,} images seen, "
                  f"{result.seconds:.0f} s training ({time.perf_counter() - started:.0f} s with evaluation); "
                  f"n = {metrics['num_samples']}", flush=True)
            for name, section in (("model", metrics), ("real floor", real),
                                  ("pixel Gaussian", metrics["pixel_gaussian"]),
                                  ("noisy train", metrics["noisy_train"])):
                print(f"  {name:15s} fd {section['fd']:7.3f} [{section['fd_low']:.3f}, {section['fd_high']:.3f}]"
                      f"  ratio {section['fd_ratio']:6.2f}  precision {section['precision']:.3f}"
                      f"  recall {section['recall']:.3f}", flush=True)
            print(f"  copying {metrics['copying']:.3f} [{metrics['copying_low']:.3f}, {metrics['copying_high']:.3f}]"
                  f" (real floor {real['copying']:.3f} [{real['copying_low']:.3f}, {real['copying_high']:.3f}])",
                  flush=True)
    ratios = [row["fd_ratio"] for row in rows]
    print(f"over {len(rows)} seeds: fd_ratio median {statistics.median(ratios):.2f} (range {min(ratios):.2f}–"
          f"{max(ratios):.2f}); pixel Gaussian {statistics.median(r['pixel_gaussian']['fd_ratio'] for r in rows):.2f}, "
          f"noisy train {statistics.median(r['noisy_train']['fd_ratio'] for r in rows):.2f}", flush=True)
    print(f"fd_ratio={statistics.median(ratios):.2f}", flush=True)


if __name__ == "__main__":
    main()
