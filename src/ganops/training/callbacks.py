"""Keras callbacks the train loop drives: progress lines, MLflow metrics and sample grids, a time budget.

The loop (training/train.py) calls `on_train_begin`, `on_epoch_begin`, `on_train_batch_end` after every
multi-step call (logs carry `step`), `on_epoch_end` with the epoch's mean losses, and `on_train_end`.
"""

from __future__ import annotations

import sys
import time

import keras
import mlflow
import numpy as np

from ganops import imaging


class ProgressLine(keras.callbacks.Callback):
    """One line per epoch: losses, images/s and ETA (Keras' own bar is noisy in DVC logs). The ETA is the
    smaller of the steps left at this epoch's speed and what is left of the time budget."""

    def __init__(self, epochs: int, total_steps: int, batch_size: int, max_seconds: float | None = None,
                 seconds_before: float = 0.0, stream=sys.stdout):
        super().__init__()
        self.epochs = epochs
        self.total_steps = total_steps
        self.batch_size = batch_size
        self.max_seconds = max_seconds
        self.seconds_before = seconds_before
        self.stream = stream

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()
        self.epoch_first_step = int(self.model.steps_done.numpy())

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        step = int(self.model.steps_done.numpy())
        seconds = max(now - self.epoch_started, 1e-9)
        rate = (step - self.epoch_first_step) * self.batch_size / seconds
        per_step = seconds / max(step - self.epoch_first_step, 1)
        eta = (self.total_steps - step) * per_step
        spent = self.seconds_before + now - self.started
        if self.max_seconds is not None:
            eta = min(eta, max(self.max_seconds - spent, 0.0))
        losses = "  ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items())
        print(f"epoch {epoch + 1}/{self.epochs}  step {step}/{self.total_steps}  {losses}  "
              f"{rate:,.0f} img/s  elapsed {spent:.0f}s  eta {eta:.0f}s", file=self.stream, flush=True)


class MlflowEpochMetrics(keras.callbacks.Callback):
    """Per-epoch losses into the active MLflow run, step = epoch."""

    def on_epoch_end(self, epoch, logs=None):
        if mlflow.active_run() is not None and logs:
            mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=epoch + 1)


class SampleGrid(keras.callbacks.Callback):
    """Generate from one fixed latent batch (and fixed labels, one class per column, when conditional)
    every `every` epochs and at the end, and log the grid with `step` = epoch, so the MLflow UI shows the
    samples evolving on a slider."""

    def __init__(self, latent: np.ndarray, every: int, labels: np.ndarray | None = None, key: str = "samples"):
        super().__init__()
        self.latent = latent
        self.labels = labels
        self.every = every
        self.key = key
        self.last_logged = None
        self.epochs_done = 0

    def log(self, epoch: int):
        if mlflow.active_run() is None or self.last_logged == epoch:
            return
        inputs = self.latent if self.labels is None else [self.latent, self.labels]
        images = np.asarray(self.model.ema_generator(inputs, training=False))
        columns = int(self.labels.max()) + 1 if self.labels is not None else None
        picture = imaging.grid(images, columns=columns, upscale=imaging.upscale_for_display(images.shape[1]))
        mlflow.log_image(picture, key=self.key, step=epoch)
        self.last_logged = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done = epoch + 1
        if self.epochs_done % self.every == 0:
            self.log(self.epochs_done)

    def on_train_end(self, logs=None):
        self.log(self.epochs_done)


class TimeBudget(keras.callbacks.Callback):
    """Stop cleanly after the multi-step call during which `max_seconds` of training ran out, counting
    `seconds_before` (training time of the run this one resumes)."""

    def __init__(self, max_seconds: float | None, seconds_before: float = 0.0):
        super().__init__()
        self.max_seconds = max_seconds
        self.seconds_before = seconds_before
        self.exhausted = False

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def remaining(self) -> float:
        if self.max_seconds is None:
            return float("inf")
        return self.max_seconds - self.seconds_before - (time.perf_counter() - self.started)

    def on_train_batch_end(self, batch, logs=None):
        if self.remaining() <= 0:
            self.exhausted = True
            self.model.stop_training = True
