"""Keras callbacks for the train stage: progress lines, MLflow metrics and sample grids, a time budget."""

from __future__ import annotations

import sys
import time

import keras
import mlflow
import numpy as np

from ganops import imaging


class ProgressLine(keras.callbacks.Callback):
    """One line per epoch: losses, images/s and ETA (Keras' own bar is noisy in DVC logs)."""

    def __init__(self, epochs: int, images_per_epoch: int, stream=sys.stdout):
        super().__init__()
        self.epochs = epochs
        self.images_per_epoch = images_per_epoch
        self.stream = stream

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        rate = self.images_per_epoch / max(now - self.epoch_started, 1e-9)
        elapsed = now - self.started
        eta = elapsed / (epoch + 1) * (self.epochs - epoch - 1)
        losses = "  ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items())
        print(f"epoch {epoch + 1}/{self.epochs}  {losses}  {rate:,.0f} img/s  "
              f"elapsed {elapsed:.0f}s  eta {eta:.0f}s", file=self.stream, flush=True)


class MlflowEpochMetrics(keras.callbacks.Callback):
    """Per-epoch losses into the active MLflow run, step = epoch."""

    def on_epoch_end(self, epoch, logs=None):
        if mlflow.active_run() is not None and logs:
            mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=epoch + 1)


class SampleGrid(keras.callbacks.Callback):
    """Generate from one fixed latent batch every `every` epochs (and at the end) and log the grid with
    `step`, so the MLflow UI shows the samples evolving on a slider."""

    def __init__(self, latent: np.ndarray, every: int, key: str = "samples"):
        super().__init__()
        self.latent = latent
        self.every = every
        self.key = key
        self.last_logged = None
        self.epochs_done = 0

    def log(self, epoch: int):
        if mlflow.active_run() is None or self.last_logged == epoch:
            return
        images = self.model.ema_generator(self.latent, training=False)
        picture = imaging.grid(np.asarray(images), upscale=imaging.upscale_for_display(images.shape[1]))
        mlflow.log_image(picture, key=self.key, step=epoch)
        self.last_logged = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done = epoch + 1
        if self.epochs_done % self.every == 0:
            self.log(self.epochs_done)

    def on_train_end(self, logs=None):
        self.log(self.epochs_done)


class TimeBudget(keras.callbacks.Callback):
    """Stop cleanly after the batch during which `max_seconds` of training ran out."""

    def __init__(self, max_seconds: float | None):
        super().__init__()
        self.max_seconds = max_seconds
        self.exhausted = False

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.max_seconds is not None and time.perf_counter() - self.started >= self.max_seconds:
            self.exhausted = True
            self.model.stop_training = True
