"""The evaluate stage: generated vs holdout distances, each next to its real-vs-real floor computed the
same way with the same sample count, plus a sample grid."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np

from ganops import artifacts, imaging, tracking
from ganops.config import EvaluateConfig
from ganops.data import prepare
from ganops.evaluation import featurizer as featurizer_lib
from ganops.evaluation import metrics
from ganops.models import sampling
from ganops.training.train import GENERATOR_FILE, RUN_FILE

GRID_IMAGES = 64


def compute(cfg: EvaluateConfig, generated: np.ndarray, train_split: artifacts.Split,
            holdout_split: artifacts.Split, featurizer: featurizer_lib.Featurizer) -> dict:
    """Metrics for `generated` vs a holdout sample; the floor compares a train sample with the same holdout
    sample. All three sets have the same size, since the Fréchet distance is biased by sample count."""
    count = min(len(generated), len(train_split), len(holdout_split))
    rng = np.random.default_rng(cfg.seed)
    holdout = holdout_split.images[rng.choice(len(holdout_split), count, replace=False)]
    real = train_split.images[rng.choice(len(train_split), count, replace=False)]
    holdout_features = featurizer.features(holdout)
    fd = metrics.frechet_distance(featurizer.features(generated[:count]), holdout_features)
    fd_real = metrics.frechet_distance(featurizer.features(real), holdout_features)
    return {"fd": fd, "fd_real": fd_real, "fd_ratio": fd / fd_real if fd_real > 0 else float("inf"),
            "num_samples": count, "featurizer_hash": featurizer.hash}


def run(cfg: EvaluateConfig, prepared_dir: str | Path, model_dir: str | Path, featurizer_path: str | Path,
        metrics_path: str | Path, samples_path: str | Path) -> dict:
    prepared_dir, model_dir = Path(prepared_dir), Path(model_dir)
    train_split = artifacts.read_split(prepared_dir / prepare.TRAIN_FILE)
    holdout_split = artifacts.read_split(prepared_dir / prepare.HOLDOUT_FILE)
    generator = sampling.load_generator(model_dir / GENERATOR_FILE)
    featurizer = featurizer_lib.load(featurizer_path)
    count = min(cfg.num_samples, len(train_split), len(holdout_split))
    generated = sampling.sample(generator, count, cfg.seed)

    results = compute(cfg, generated, train_split, holdout_split, featurizer)
    artifacts.write_json(metrics_path, results)
    picture = imaging.grid(generated[:GRID_IMAGES], upscale=imaging.upscale_for_display(generated.shape[1]))
    imaging.save_png(samples_path, picture)

    run_id = artifacts.read_json(model_dir / RUN_FILE)["run_id"]
    with tracking.resume_run(run_id):
        mlflow.log_metrics({f"eval.{k}": v for k, v in results.items() if isinstance(v, int | float)})
        mlflow.set_tag("ganops.featurizer_hash", featurizer.hash)
        mlflow.log_artifact(str(metrics_path), artifact_path="evaluation")
        mlflow.log_artifact(str(samples_path), artifact_path="evaluation")
    print(f"fd={results['fd']:.3f}  fd_real={results['fd_real']:.3f}  ratio={results['fd_ratio']:.2f}  "
          f"(n={results['num_samples']})", flush=True)
    return results
