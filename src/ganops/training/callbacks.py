"""Keras callbacks the train loop drives: progress lines, MLflow metrics and sample grids, a quality
monitor, a time budget.

The loop (training/loop.py) calls `on_train_begin` (logs carry `epochs_done`: the epochs completed before this
call, non-zero when it resumes), `on_epoch_begin`, `on_train_batch_end` after every multi-step call (logs
carry `step`), `on_epoch_end` with the epoch's mean losses, and `on_train_end`.
Callbacks see one `logs` dict per epoch end, in list order: the monitor, listed before the progress line and
the MLflow logger, adds its values there so both show them.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import keras
import mlflow
import numpy as np

from ganops import imaging, metric_specs, shards, streams
from ganops.features import metrics, quality
from ganops.models import sampling, standing


class ProgressLine(keras.callbacks.Callback):
    """Training progress readable at any epoch count (Keras' own bar is noisy in DVC logs).

    In a log: one line for the first epoch, the last (or the one the time budget stopped) and every quality
    monitor point, and between them one every `every` epochs (default: a 50th of the epochs) once at least
    `min_seconds` passed since the previous line — whichever comes later. A line shows the losses, images/s
    since the previous line and the ETA: the smaller of the steps left at that speed and what is left of the
    time budget. On a terminal (`bar`, default: stderr is one): a tqdm bar, with the same lines for the first
    and last epoch and the monitor points printed above it."""

    def __init__(self, epochs: int, total_steps: int, batch_size: int, max_seconds: float | None = None,
                 seconds_before: float = 0.0, stream=None, untimed=(), every: int | None = None,
                 min_seconds: float = 10.0, bar: bool | None = None):
        super().__init__()
        self.epochs = epochs
        self.total_steps = total_steps
        self.batch_size = batch_size
        self.max_seconds = max_seconds
        self.seconds_before = seconds_before
        self.stream = stream  # None: sys.stdout when printing (it may be replaced after import)
        self.untimed = untimed  # callbacks whose `seconds` are not training time (the quality monitor)
        self.every = every if every is not None else max(1, epochs // 50)
        self.min_seconds = min_seconds
        self.bar = bar
        self.progress_bar: Any | None = None  # a tqdm bar, while training on a terminal

    def _clock(self) -> float:
        return time.perf_counter() - untimed_seconds(self.untimed)

    def on_train_begin(self, logs=None):
        self.started = self._clock()
        self.shown_at: tuple[float, int, int] | None = None  # clock, step and epoch of the last line (or the start)
        self.shown_any = False
        bar = self.bar if self.bar is not None else self.stream is None and _is_terminal(sys.stderr)
        if bar:
            from tqdm import tqdm

            self.progress_bar = tqdm(total=self.total_steps, initial=int(self.model.steps_done.numpy()),
                                     unit="step", dynamic_ncols=True, leave=False, file=sys.stderr)

    def on_epoch_begin(self, epoch, logs=None):
        if self.shown_at is None:  # measure speed from the first epoch this process runs
            self.shown_at = (self._clock(), int(self.model.steps_done.numpy()), epoch)

    def on_train_batch_end(self, batch, logs=None):
        if self.progress_bar is not None:
            self.progress_bar.update(int(self.model.steps_done.numpy()) - self.progress_bar.n)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = self._clock()
        step = int(self.model.steps_done.numpy())
        assert self.shown_at is not None  # on_epoch_begin set it
        last_time, last_step, last_epoch = self.shown_at
        first = not self.shown_any
        final = epoch + 1 >= self.epochs or self.model.stop_training
        monitored = any(key.startswith(QualityMonitor.PREFIX) for key in logs)
        due = epoch - last_epoch >= self.every and now - last_time >= self.min_seconds
        losses = "  ".join(f"{k}={v:.4f}" for k, v in logs.items() if not k.startswith(QualityMonitor.PREFIX))
        if self.progress_bar is not None:
            self.progress_bar.set_postfix_str(f"epoch {epoch + 1}/{self.epochs}  {losses}", refresh=False)
            self.progress_bar.update(step - self.progress_bar.n)
            due = False  # the bar shows the steady progress
        if not (first or final or monitored or due):
            return
        seconds = max(now - last_time, 1e-9)
        rate = (step - last_step) * self.batch_size / seconds
        eta = (self.total_steps - step) * seconds / max(step - last_step, 1)
        spent = self.seconds_before + now - self.started
        if self.max_seconds is not None:
            eta = min(eta, max(self.max_seconds - spent, 0.0))
        values = "  ".join(f"{k}={v:.4f}" for k, v in logs.items())
        line = (f"epoch {epoch + 1}/{self.epochs}  step {step}/{self.total_steps}  {values}  "
                f"{rate:,.0f} img/s  elapsed {spent:.0f}s  eta {eta:.0f}s")
        if self.progress_bar is not None:
            self.progress_bar.write(line, file=sys.stdout)
        else:
            print(line, file=self.stream or sys.stdout, flush=True)
        self.shown_any = True
        self.shown_at = (now, step, epoch)

    def on_train_end(self, logs=None):
        if self.progress_bar is not None:
            self.progress_bar.close()
            self.progress_bar = None


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


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
        self.last_logged: int | None = None
        self.epochs_done = 0

    def on_train_begin(self, logs=None):
        self.epochs_done = (logs or {}).get("epochs_done", 0)  # a resumed run counts on from its checkpoint

    def log(self, epoch: int):
        if mlflow.active_run() is None or self.last_logged == epoch:
            return
        images = sampling.generate(self.model.ema_generator, self.latent, self.labels)
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


class QualityMonitor(keras.callbacks.Callback):
    """Every `every` epochs and at the last one (the final epoch, or the one the time budget stopped): the
    Fréchet distance from the EMA generator's samples to a validation sample in the featurizer's space, and its
    ratio to the real-vs-real floor — the evaluate stage's `fd` and `fd_ratio`, drawn and computed by the same
    recipe (`metrics.reference_indices`, `quality.HoldoutReference`; `sampling`) with `seed` and `num_samples`
    in place of evaluate's. The samples come from one fixed seeded latent batch (every class equally often
    when conditional); the reference features and the floor are computed once, at train start.

    Adds `monitor.fd` and `monitor.fd_ratio` to the epoch's logs (the progress line prints them, the MLflow
    logger logs them with step = epoch) and keeps them in `values` by epoch for the history. `seconds` sums
    the time it spent, which the loop leaves out of the training time and the time budget."""

    PREFIX = "monitor."
    NAMES = metric_specs.MONITOR_METRICS  # the evaluate stage's fd and fd_ratio, on the validation split

    def __init__(self, featurizer, train_split: streams.Rows, validation_split: streams.Rows, every: int,
                 epochs: int, num_samples: int, seed: int, num_classes: int = 0):
        super().__init__()
        self.featurizer = featurizer
        self.count = min(num_samples, len(train_split), len(validation_split))
        if self.count < 2:
            raise ValueError(f"the quality monitor needs at least 2 samples per side, got {self.count}")
        reference_index, real_index = metrics.reference_indices(self.count, len(validation_split),
                                                                len(train_split), seed)
        # Only the sampled rows are read (float32 [-1, 1]), whichever kind of split it is handed.
        self.reference_images = validation_split.signed(reference_index)
        self.real_images = train_split.signed(real_index)
        self.every, self.epochs, self.seed = every, epochs, seed
        self.labels = sampling.balanced_labels(self.count, num_classes) if num_classes else None
        self.values: dict[int, dict[str, float]] = {}
        self.seconds = 0.0
        self.reference: quality.HoldoutReference | None = None  # measured at train start

    def on_train_begin(self, logs=None):
        started = time.perf_counter()
        self.reference = quality.HoldoutReference.with_floor(self.featurizer.features(self.reference_images),
                                                             self.featurizer.features(self.real_images))
        self.latent = sampling.latent_batch(self.model.ema_generator, self.count, self.seed)
        self.seconds += time.perf_counter() - started

    def measure(self) -> dict[str, float]:
        # The saved product's BatchNorm statistics (train.run), on a copy: the EMA keeps its averaged ones.
        if self.reference is None:
            raise RuntimeError("QualityMonitor.measure: called before on_train_begin measured the reference")
        generator = standing.with_standing_statistics(self.model.ema_generator, seed=self.seed)
        # Rounded to uint8 pixels first, as the evaluate stage measures them.
        generated = shards.to_signed(sampling.generate(generator, self.latent, self.labels, pixels=True))
        return self.reference.measure(self.featurizer.features(generated))

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.every and done < self.epochs and not self.model.stop_training:
            return
        started = time.perf_counter()
        self.values[done] = self.measure()
        if logs is not None:
            logs.update({self.PREFIX + name: value for name, value in self.values[done].items()})
        self.seconds += time.perf_counter() - started


def untimed_seconds(untimed) -> float:
    return sum(callback.seconds for callback in untimed)


class TimeBudget(keras.callbacks.Callback):
    """Stop cleanly after the multi-step call during which `max_seconds` of training ran out, counting
    `seconds_before` (training time of the run this one resumes). The `seconds` of the `untimed` callbacks
    (the quality monitor) are not training time: `elapsed` leaves them out, so they never use up the budget."""

    def __init__(self, max_seconds: float | None, seconds_before: float = 0.0, untimed=()):
        super().__init__()
        self.max_seconds = max_seconds
        self.seconds_before = seconds_before
        self.untimed = untimed
        self.exhausted = False

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter() - untimed_seconds(self.untimed)

    def elapsed(self) -> float:
        """Training seconds since `on_train_begin`, untimed callbacks' seconds left out."""
        return time.perf_counter() - untimed_seconds(self.untimed) - self.started

    def remaining(self) -> float:
        if self.max_seconds is None:
            return float("inf")
        return self.max_seconds - self.seconds_before - self.elapsed()

    def on_train_batch_end(self, batch, logs=None):
        if self.remaining() <= 0:
            self.exhausted = True
            self.model.stop_training = True
