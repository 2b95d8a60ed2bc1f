"""The train stage's library function: build the GAN for the prepared data, fit it, save the EMA
generator and the loss history, and track everything in one MLflow run."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ganops import artifacts, tracking
from ganops.config import TrainConfig
from ganops.data import prepare
from ganops.models.gan import GAN
from ganops.models.networks import build_pair
from ganops.training import callbacks

GENERATOR_FILE = "generator.keras"  # the EMA generator: what evaluate, register and serve use
HISTORY_FILE = "history.csv"  # per-epoch losses, a DVC plot
RUN_FILE = "run.json"  # the MLflow run id that evaluate and register reopen
SAMPLE_GRID_SIZE = 64  # images in the fixed-latent grid logged during training


@dataclasses.dataclass(frozen=True)
class TrainResult:
    gan: GAN
    history: pd.DataFrame  # one row per epoch: epoch, d_loss, g_loss, seconds
    seconds: float
    steps: int
    stopped_by_budget: bool


def make_dataset(images: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    if len(images) < batch_size:
        raise ValueError(f"train.batch_size: {batch_size} is larger than the {len(images)} training images")
    return (tf.data.Dataset.from_tensor_slices(images)
            .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))


def build_gan(cfg: TrainConfig, image_shape: tuple[int, int, int]) -> GAN:
    generator, discriminator = build_pair(cfg.arch, cfg.latent_dim, image_shape, cfg.base_filters)
    gan = GAN(generator, discriminator, latent_dim=cfg.latent_dim, ema_decay=cfg.ema_decay, seed=cfg.seed)
    gan.compile(
        g_optimizer=keras.optimizers.Adam(cfg.g_learning_rate, beta_1=cfg.beta_1, beta_2=cfg.beta_2),
        d_optimizer=keras.optimizers.Adam(cfg.d_learning_rate, beta_1=cfg.beta_1, beta_2=cfg.beta_2),
        loss=cfg.loss,
        # XLA is chosen explicitly so CPU and GPU runs compile the same way ("auto" differs by device).
        jit_compile=False,
    )
    return gan


def train(cfg: TrainConfig, train_split: artifacts.Split, extra_callbacks=()) -> TrainResult:
    """Fit a GAN on `train_split`; testable without MLflow or files."""
    keras.utils.set_random_seed(cfg.seed)
    images = train_split.images
    dataset = make_dataset(images, cfg.batch_size, cfg.seed)
    gan = build_gan(cfg, images.shape[1:])
    budget = callbacks.TimeBudget(cfg.max_seconds)
    steps_per_epoch = len(images) // cfg.batch_size
    epoch_times: list[float] = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: epoch_times.append(time.perf_counter()))
    started = time.perf_counter()
    fit = gan.fit(dataset, epochs=cfg.epochs, verbose=0, shuffle=False, callbacks=[
        timer, budget,
        callbacks.ProgressLine(cfg.epochs, steps_per_epoch * cfg.batch_size),
        *extra_callbacks,
    ])
    seconds = time.perf_counter() - started
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history["seconds"] = [t - started for t in epoch_times[1:]] + [seconds]
    return TrainResult(gan=gan, history=history, seconds=seconds,
                       steps=int(gan.g_optimizer.iterations.numpy()), stopped_by_budget=budget.exhausted)


def run(cfg: TrainConfig, prepared_dir: str | Path, out_dir: str | Path) -> TrainResult:
    """The train stage: fit, then write the generator, history and run id into `out_dir`."""
    prepared_dir, out_dir = Path(prepared_dir), Path(out_dir)
    info = artifacts.read_dataset_info(prepared_dir / prepare.INFO_FILE)
    train_split = artifacts.read_split(prepared_dir / prepare.TRAIN_FILE)
    fixed_latent = np.random.default_rng(cfg.seed).standard_normal(
        (SAMPLE_GRID_SIZE, cfg.latent_dim)).astype(np.float32)

    with tracking.start_run(run_name=None, tags=tracking.run_tags(info.data_hash)) as active:
        import mlflow

        mlflow.log_params(tracking.flatten("train", cfg.model_dump()))
        mlflow.log_params({"data.source": info.source, "data.train_count": info.train_count,
                           "data.image_shape": "x".join(map(str, info.image_shape))})
        result = train(cfg, train_split, extra_callbacks=[
            callbacks.MlflowEpochMetrics(),
            callbacks.SampleGrid(fixed_latent, every=cfg.sample_every_epochs),
        ])
        mlflow.log_metrics({"train_seconds": result.seconds, "train_steps": result.steps})
        run_id = active.info.run_id

    out_dir.mkdir(parents=True, exist_ok=True)
    with artifacts.atomic_path(out_dir / GENERATOR_FILE) as tmp:
        result.gan.ema_generator.save(tmp)
    with artifacts.atomic_path(out_dir / HISTORY_FILE) as tmp:
        result.history.to_csv(tmp, index=False)
    artifacts.write_json(out_dir / RUN_FILE, {"run_id": run_id, "steps": result.steps,
                                              "seconds": round(result.seconds, 3),
                                              "stopped_by_budget": result.stopped_by_budget})
    return result
