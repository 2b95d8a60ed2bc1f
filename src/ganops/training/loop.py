"""The step loop behind `train.train`. It is ours rather than `Model.fit`'s, because a resumed run must start
mid-epoch at the exact step where the checkpoint was taken.

It calls `GAN.train_steps`, which runs many `train_step`s in one graph call (no Python between steps), sized to
end at epoch ends and checkpoint steps and to take about `CHUNK_SECONDS`, so the time budget and the NaN check
are looked at often without slowing the steps. Between calls it drives the callbacks (see `callbacks`), keeps
one history row per epoch and writes the checkpoints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from ganops.config import TrainConfig
from ganops.errors import GanopsError
from ganops.models.gan import GAN
from ganops.training import callbacks, checkpoint

CHUNK_SECONDS = 1.0  # target duration of one multi-step call
HISTORY_COLUMNS = ["epoch", "step", "d_loss", "g_loss", "seconds"]
# The quality monitor's columns, empty where it did not run; named without the MLflow keys' dot, which
# Vega-Lite (DVC plots) would read as a nested field.
MONITOR_COLUMNS = [f"monitor_{name}" for name in callbacks.QualityMonitor.NAMES]


def chunk_steps(step: int, epoch_end: int, checkpoint_every: int, step_seconds: float | None) -> int:
    """Steps of the next multi-step call: up to the epoch end or the next checkpoint step, whichever comes
    first, and about CHUNK_SECONDS at the measured speed. One step while the speed is unmeasured: the first call
    traces and compiles, and the second is the first one timed."""
    if not step_seconds:
        return 1
    next_checkpoint = (step // checkpoint_every + 1) * checkpoint_every
    return min(min(epoch_end, next_checkpoint) - step, max(1, int(CHUNK_SECONDS / step_seconds)))


def measured_step_seconds(step_seconds: float | None, steps_before: int, steps_after: int,
                          seconds: float) -> float | None:
    """Seconds per step after a call that took `seconds`; 0 (unmeasured) after the first call, which compiled."""
    if step_seconds is None and steps_after > 0:
        return 0.0
    if steps_after > steps_before:
        return seconds / (steps_after - steps_before)
    return step_seconds


def raise_if_nonfinite(gan: GAN, last_saved: int | None) -> None:
    """Stop with one line when a step's loss was NaN/inf (the GAN stops its multi-step call at that step)."""
    bad_step = int(gan.nonfinite_step.numpy())
    if bad_step >= 0:
        kept = f"the last good checkpoint is step {last_saved}" if last_saved else "no checkpoint was written"
        raise GanopsError(f"train: the loss became non-finite (NaN/inf) at step {bad_step}; stopped, "
                          f"{kept} (lower the learning rates or add a gradient penalty)")


class Loop:
    """The steps of one `train` call, from where `resumed` left off (or 0) to `cfg.epochs` epochs, and what
    they carry between calls: the step, the history rows and the last checkpoint written. With a
    `checkpoint_dir` a checkpoint is written every `checkpoint_every_steps` steps and at the end. `monitor`
    runs before the other callbacks, so its values reach the progress line, the MLflow logger and the history;
    its seconds count neither as training time nor against `max_seconds`."""

    def __init__(self, cfg: TrainConfig, gan: GAN, steps_per_epoch: int, *, resumed: checkpoint.Checkpoint | None,
                 checkpoint_dir: Path | None, run_fingerprint: dict,
                 monitor: callbacks.QualityMonitor | None = None,
                 extra_callbacks: Sequence[keras.callbacks.Callback] = (),
                 from_chief: Callable[[list[int]], np.ndarray] = np.asarray):
        self.cfg, self.gan, self.steps_per_epoch = cfg, gan, steps_per_epoch
        self.total_steps = cfg.epochs * steps_per_epoch
        self.checkpoint_dir, self.run_fingerprint, self.monitor = checkpoint_dir, run_fingerprint, monitor
        self.from_chief = from_chief  # `DevicePlan.from_chief`: what every worker must agree on
        self.step = int(gan.steps_done.numpy())  # a restored checkpoint's step, or (a worker) the chief's
        self.seconds_before = resumed.seconds if resumed else 0.0
        self.history_rows = resumed.history().to_dict("records") if resumed else []
        self.last_saved = self.step if resumed else None
        self.columns = HISTORY_COLUMNS + (MONITOR_COLUMNS if monitor is not None else [])
        untimed = [monitor] if monitor is not None else []
        self.budget = callbacks.TimeBudget(cfg.max_seconds, self.seconds_before, untimed=untimed)
        progress = callbacks.ProgressLine(cfg.epochs, self.total_steps, cfg.batch_size, cfg.max_seconds,
                                          self.seconds_before, untimed=untimed)
        self.hooks = keras.callbacks.CallbackList([self.budget, *untimed, progress, *extra_callbacks], model=gan)
        self.step_seconds: float | None = None  # measured seconds per step, sizes the chunks
        self.epoch_open = False

    def run(self, batches) -> tuple[pd.DataFrame, float]:
        """Train from the iterator `batches` until the last step or a callback stops it (the time budget).
        Returns the history and this call's training seconds."""
        self.gan.stop_training = False
        self.hooks.on_train_begin({"epochs_done": self.step // self.steps_per_epoch})
        while self.step < self.total_steps:
            # The chief's clock decides for all workers: each runs the same steps and stops after the same call.
            steps, stop = self.from_chief([self._next_chunk(), int(bool(self.gan.stop_training))])
            if stop:
                break
            self._advance(batches, int(steps))
        seconds = self.budget.elapsed()
        self._save_checkpoint()  # completed epochs only: a resumed run finishes the open one itself
        history = pd.DataFrame(self.history_rows, columns=self.columns)
        if self.epoch_open:  # stopped by the budget mid-epoch: report the partial epoch too
            partial = self._end_epoch(self.step // self.steps_per_epoch)
            history = pd.concat([history, pd.DataFrame([partial], columns=self.columns)], ignore_index=True)
        self.hooks.on_train_end()
        return history, seconds

    def _next_chunk(self) -> int:
        epoch_end = (self.step // self.steps_per_epoch + 1) * self.steps_per_epoch
        return chunk_steps(self.step, epoch_end, self.cfg.checkpoint_every_steps, self.step_seconds)

    def _advance(self, batches, steps: int) -> None:
        """One multi-step call of `steps` steps, opening its epoch first, then the epoch end or checkpoint step it
        reaches."""
        epoch = self.step // self.steps_per_epoch
        if not self.epoch_open:
            if self.step % self.steps_per_epoch == 0:
                self.gan.reset_metrics()  # mid-epoch resumes keep the restored running means
            self.hooks.on_epoch_begin(epoch)
            self.epoch_open = True
        epoch_end = (epoch + 1) * self.steps_per_epoch
        started = time.perf_counter()
        self.gan.train_steps(batches, steps)
        done = int(self.gan.steps_done.numpy())
        self.step_seconds = measured_step_seconds(self.step_seconds, self.step, done, time.perf_counter() - started)
        raise_if_nonfinite(self.gan, self.last_saved)
        self.step = done
        self.hooks.on_train_batch_end(self.step, {"step": self.step})
        if self.step == epoch_end:
            self.history_rows.append(self._end_epoch(epoch))
            self.epoch_open = False
        if self.step % self.cfg.checkpoint_every_steps == 0:
            self._save_checkpoint()

    def _seconds_so_far(self) -> float:
        return self.seconds_before + self.budget.elapsed()

    def _end_epoch(self, epoch: int) -> dict:
        """Run the epoch-end callbacks; the epoch's history row."""
        logs = {m.name: float(m.result()) for m in self.gan.metrics}
        row = {"epoch": epoch + 1, "step": self.step, **logs, "seconds": self._seconds_so_far()}
        self.hooks.on_epoch_end(epoch, logs)
        if self.monitor is not None:
            row.update({f"monitor_{k}": v for k, v in self.monitor.values.get(epoch + 1, {}).items()})
        return row

    def _save_checkpoint(self) -> None:
        if self.checkpoint_dir is not None and self.last_saved != self.step:
            checkpoint.save(self.checkpoint_dir, self.gan, step=self.step,
                            epochs_done=self.step // self.steps_per_epoch, seconds=self._seconds_so_far(),
                            history=pd.DataFrame(self.history_rows, columns=self.columns),
                            run_fingerprint=self.run_fingerprint)
            self.last_saved = self.step
