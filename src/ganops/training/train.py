"""The train stage's library functions: build the GAN for the prepared data, train it in resumable chunks
of steps, save the EMA generator and the loss history, and track everything in one MLflow run.

The loop is ours rather than `Model.fit`'s, because a resumed run must start mid-epoch at the exact step
where the checkpoint was taken. It calls `GAN.train_steps`, which runs many `train_step`s in one graph call
(no Python between steps), sized to end at epoch ends and checkpoint steps and to take about
`CHUNK_SECONDS`, so the time budget and the NaN check are looked at often without slowing the steps.

Data order is a pure function of (seed, epoch): each epoch is a stateless shuffle, so a resumed run sees
exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ganops import artifacts, lineage, tracking
from ganops.config import TrainConfig
from ganops.data import prepare
from ganops.errors import GanopsError
from ganops.evaluation import featurizer as featurizer_lib
from ganops.models.gan import GAN
from ganops.models.networks import build_discriminator, build_generator
from ganops.models.standing import with_standing_statistics
from ganops.training import callbacks, checkpoint, devices

GENERATOR_FILE = "generator.keras"  # the EMA generator: what evaluate, register and serve use
HISTORY_FILE = "history.csv"  # per-epoch losses (and the monitor's distances where it ran), DVC plots
RUN_FILE = "run.json"  # which MLflow run trained this generator (a later execution may reuse it from DVC's cache)
SAMPLE_GRID_SIZE = 64  # images in the fixed-latent grid logged during training
CHUNK_SECONDS = 1.0  # target duration of one multi-step call
HISTORY_COLUMNS = ["epoch", "step", "d_loss", "g_loss", "seconds"]
# The quality monitor's columns, empty where it did not run; named without the MLflow keys' dot, which
# Vega-Lite (DVC plots) would read as a nested field.
MONITOR_COLUMNS = [f"monitor_{name}" for name in callbacks.QualityMonitor.NAMES]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    gan: GAN
    history: pd.DataFrame  # one row per epoch (a last partial one when stopped early): HISTORY_COLUMNS
    #                        (+ MONITOR_COLUMNS with a monitor)
    seconds: float  # training seconds of this call (the monitor's time left out)
    total_seconds: float  # training seconds over all resumed runs
    steps: int  # steps done in total, resumed ones included
    stopped_by_budget: bool
    resumed_from: int | None  # the checkpoint step this call started from, None when fresh
    plan: devices.DevicePlan


def make_dataset(images: np.ndarray, labels: np.ndarray | None, batch_size: int, seed: int,
                 epochs: int, start_step: int = 0) -> tf.data.Dataset:
    """Batches for steps `start_step`…`epochs × steps_per_epoch − 1`; each epoch a stateless shuffle of
    (seed, epoch), incomplete last batches dropped."""
    count = len(images)
    if count < batch_size:
        raise GanopsError(f"train.batch_size: {batch_size} is larger than the {count} training images")
    steps_per_epoch = count // batch_size
    image_tensor = tf.constant(images)
    label_tensor = None if labels is None else tf.constant(labels.astype(np.int32))

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[:steps_per_epoch * batch_size], (steps_per_epoch, batch_size)))

    def lookup(indices):
        if label_tensor is None:
            return tf.gather(image_tensor, indices)
        return tf.gather(image_tensor, indices), tf.gather(label_tensor, indices)

    first_epoch = start_step // steps_per_epoch
    return (tf.data.Dataset.range(first_epoch, epochs)
            .flat_map(epoch_batches)
            .skip(start_step - first_epoch * steps_per_epoch)
            .map(lookup, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def class_count(cfg: TrainConfig, train_split: artifacts.Split, num_classes: int | None) -> int:
    if not cfg.conditional:
        return 0
    if train_split.labels is None:
        raise GanopsError("train.conditional: true needs labelled training data; this data set has no labels")
    return int(num_classes if num_classes else train_split.labels.max() + 1)


def build_gan(cfg: TrainConfig, image_shape: tuple[int, int, int], num_classes: int = 0,
              plan: devices.DevicePlan | None = None) -> GAN:
    """The compiled GAN, its variables and optimizers created under the plan's strategy and precision."""
    plan = plan or devices.plan(cfg)
    image_shape = tuple(int(side) for side in image_shape)
    with plan.building():
        generator = build_generator(cfg.arch, cfg.latent_dim, image_shape, cfg.base_filters, num_classes)
        discriminator = build_discriminator(cfg.arch, image_shape, cfg.base_filters, cfg.d_dropout,
                                            num_classes, cfg.spectral_norm)
        # The EMA generator (the saved product) always computes in float32.
        with devices.dtype_policy("float32"):
            ema = build_generator(cfg.arch, cfg.latent_dim, image_shape, cfg.base_filters, num_classes)
        gan = GAN(generator, discriminator, latent_dim=cfg.latent_dim, num_classes=num_classes,
                  ema_decay=cfg.ema_decay, augment_policy=cfg.augment, seed=cfg.seed, ema_generator=ema)
        g_optimizer = keras.optimizers.Adam(cfg.g_learning_rate, beta_1=cfg.beta_1, beta_2=cfg.beta_2)
        d_optimizer = keras.optimizers.Adam(cfg.d_learning_rate, beta_1=cfg.beta_1, beta_2=cfg.beta_2)
        if plan.loss_scaling:
            g_optimizer = keras.optimizers.LossScaleOptimizer(g_optimizer)
            d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
        # XLA is chosen explicitly so CPU and GPU runs compile as recorded ("auto" differs by device).
        gan.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer, loss=cfg.loss, gp_weight=cfg.gp_weight,
                    r1_weight=cfg.r1_weight, jit_compile=plan.jit_compile)
        gan.build_optimizers()
    return gan


def resume_point(checkpoint_dir: Path | None, gan: GAN, run_fingerprint: dict, total_steps: int,
                  say) -> checkpoint.Checkpoint | None:
    """The checkpoint to continue from, restored into `gan`; None (and one line why) to start fresh."""
    if checkpoint_dir is None:
        return None
    found = checkpoint.latest(checkpoint_dir)
    if found is None:
        return None
    reason = checkpoint.mismatch(found.fingerprint, run_fingerprint)
    if reason is None and found.step > total_steps:
        reason = f"it is at step {found.step}, beyond this run's {total_steps} steps"
    if reason is None:
        try:
            found.restore(gan)
        except checkpoint.IncompatibleCheckpoint as exc:
            reason = f"its variables do not fit this model ({exc})"
    if reason is not None:
        say(f"train: starting fresh, not resuming {found.folder}: {reason}")
        return None
    say(f"train: resuming from {found.folder} (step {found.step}, {found.seconds:.0f}s trained)")
    return found


def train(cfg: TrainConfig, train_split: artifacts.Split, *, num_classes: int | None = None,
          data_hash: str = "", checkpoint_dir: str | Path | None = None,
          extra_callbacks: Sequence[keras.callbacks.Callback] = (), plan: devices.DevicePlan | None = None,
          monitor: callbacks.QualityMonitor | None = None, say=print) -> TrainResult:
    """Train a GAN on `train_split` (testable without MLflow). With `checkpoint_dir`, resume from a
    compatible checkpoint there and write one every `checkpoint_every_steps` steps and at the end.
    `monitor` runs before the other callbacks, so its values reach the progress line, the MLflow logger and
    the history; its seconds count neither as training time nor against `max_seconds`."""
    keras.utils.set_random_seed(cfg.seed)
    plan = plan or devices.plan(cfg)
    classes = class_count(cfg, train_split, num_classes)
    images = train_split.images
    gan = build_gan(cfg, images.shape[1:], classes, plan)
    steps_per_epoch = len(images) // cfg.batch_size if len(images) >= cfg.batch_size else 0
    if not steps_per_epoch:
        raise GanopsError(f"train.batch_size: {cfg.batch_size} is larger than the {len(images)} training images")
    total_steps = cfg.epochs * steps_per_epoch
    run_fingerprint = checkpoint.fingerprint(cfg, data_hash)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None

    resumed = resume_point(checkpoint_dir, gan, run_fingerprint, total_steps, say)
    step = resumed.step if resumed else 0
    seconds_before = resumed.seconds if resumed else 0.0
    history_rows = resumed.history().to_dict("records") if resumed else []
    last_saved = step if resumed else None

    dataset = make_dataset(images, train_split.labels if classes else None, cfg.batch_size, cfg.seed,
                           cfg.epochs, start_step=step)
    if plan.replicas > 1:
        dataset = plan.strategy.experimental_distribute_dataset(dataset)
    iterator = iter(dataset)

    untimed = [monitor] if monitor is not None else []
    columns = HISTORY_COLUMNS + (MONITOR_COLUMNS if monitor is not None else [])
    budget = callbacks.TimeBudget(cfg.max_seconds, seconds_before, untimed=untimed)
    progress = callbacks.ProgressLine(cfg.epochs, total_steps, cfg.batch_size, cfg.max_seconds, seconds_before,
                                      untimed=untimed)
    hooks = keras.callbacks.CallbackList([budget, *untimed, progress, *extra_callbacks], model=gan)
    for hook in extra_callbacks:
        if isinstance(hook, callbacks.SampleGrid):
            hook.epochs_done = step // steps_per_epoch

    def seconds_so_far() -> float:
        return seconds_before + budget.elapsed()

    def end_epoch(epoch: int) -> dict:
        """Run the epoch-end callbacks; the epoch's history row."""
        logs = {m.name: float(m.result()) for m in gan.metrics}
        row = {"epoch": epoch + 1, "step": step, **logs, "seconds": seconds_so_far()}
        hooks.on_epoch_end(epoch, logs)
        if monitor is not None:
            row.update({f"monitor_{k}": v for k, v in monitor.values.get(epoch + 1, {}).items()})
        return row

    def save_checkpoint(at_step: int) -> None:
        nonlocal last_saved
        if checkpoint_dir is not None and last_saved != at_step:
            checkpoint.save(checkpoint_dir, gan, step=at_step, epochs_done=at_step // steps_per_epoch,
                            seconds=seconds_so_far(), history=pd.DataFrame(history_rows, columns=columns),
                            run_fingerprint=run_fingerprint)
            last_saved = at_step

    gan.stop_training = False
    hooks.on_train_begin()
    step_seconds = None  # measured seconds per step, sizes the chunks
    epoch_open = False
    while step < total_steps and not gan.stop_training:
        epoch = step // steps_per_epoch
        if not epoch_open:
            if step % steps_per_epoch == 0:
                gan.reset_metrics()  # mid-epoch resumes keep the restored running means
            hooks.on_epoch_begin(epoch)
            epoch_open = True
        epoch_end = (epoch + 1) * steps_per_epoch
        next_checkpoint = (step // cfg.checkpoint_every_steps + 1) * cfg.checkpoint_every_steps
        chunk = min(epoch_end, next_checkpoint) - step
        if step_seconds:
            chunk = min(chunk, max(1, int(CHUNK_SECONDS / step_seconds)))
        else:
            chunk = 1  # the first call traces and compiles: time the steps after it
        chunk_started = time.perf_counter()
        gan.train_steps(iterator, chunk)
        done = int(gan.steps_done.numpy())
        if step_seconds is None and done > 0:
            step_seconds = 0.0  # compile time is not step time
        elif done > step:
            step_seconds = (time.perf_counter() - chunk_started) / (done - step)
        bad_step = int(gan.nonfinite_step.numpy())
        if bad_step >= 0:
            kept = f"the last good checkpoint is step {last_saved}" if last_saved else "no checkpoint was written"
            raise GanopsError(f"train: the loss became non-finite (NaN/inf) at step {bad_step}; stopped, "
                              f"{kept} (lower the learning rates or add a gradient penalty)")
        step = done
        hooks.on_train_batch_end(step, {"step": step})
        if step == epoch_end:
            history_rows.append(end_epoch(epoch))
            epoch_open = False
        if step % cfg.checkpoint_every_steps == 0:
            save_checkpoint(step)

    seconds = budget.elapsed()
    save_checkpoint(step)  # completed epochs only: a resumed run finishes the open one itself
    history = pd.DataFrame(history_rows, columns=columns)
    if epoch_open:  # stopped by the budget mid-epoch: report the partial epoch too
        partial = end_epoch(step // steps_per_epoch)
        history = pd.concat([history, pd.DataFrame([partial], columns=columns)], ignore_index=True)
    hooks.on_train_end()
    return TrainResult(gan=gan, history=history, seconds=seconds, total_seconds=seconds_before + seconds,
                       steps=step, stopped_by_budget=budget.exhausted, resumed_from=resumed.step if resumed else None,
                       plan=plan)


def _interrupted_run(checkpoint_dir: Path | None, run_fingerprint: dict, say) -> str | None:
    """The MLflow run of an interrupted execution of this stage (same fingerprint), if it still exists."""
    import mlflow

    run_id = checkpoint.unfinished_run(checkpoint_dir, run_fingerprint) if checkpoint_dir else None
    if run_id is None:
        return None
    tracking.configure()
    try:
        mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        say(f"train: MLflow run {run_id} of the interrupted execution is gone; starting a new one")
        return None
    say(f"train: continuing MLflow run {run_id}")
    return run_id


def _log_params(params: dict) -> None:
    """Log the stage's own params; a resumed run keeps the values it has (MLflow refuses to change a param)."""
    import mlflow

    existing = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    params = {k: v for k, v in params.items() if k not in existing}
    if params:
        mlflow.log_params(params)


def quality_monitor(cfg: TrainConfig, featurizer_path: str | Path | None, prepared_dir: Path,
                    train_split: artifacts.Split, num_classes: int) -> callbacks.QualityMonitor | None:
    """The monitor `cfg` asks for, on the featurize stage's frozen network and the prepared validation split
    (the test split stays unseen until evaluate); None (nothing loaded) when `train.monitor_every_epochs` is
    null."""
    if cfg.monitor_every_epochs is None:
        return None
    if featurizer_path is None:
        raise GanopsError("train.monitor_every_epochs: the quality monitor needs the featurizer (--featurizer); "
                          "set it to null to train without the monitor")
    validation_split = artifacts.read_split(prepared_dir / prepare.VALIDATION_FILE)
    return callbacks.QualityMonitor(featurizer_lib.load(featurizer_path), train_split.images, validation_split.images,
                                    every=cfg.monitor_every_epochs, epochs=cfg.epochs,
                                    num_samples=cfg.monitor_samples, seed=cfg.seed, num_classes=num_classes)


def run(cfg: TrainConfig, prepared_dir: str | Path, out_dir: str | Path,
        checkpoint_dir: str | Path | None = None, featurizer_path: str | Path | None = None,
        params_path: str | Path | None = None, validation_path: str | Path | None = None,
        say=print) -> TrainResult:
    """The train stage: train (resuming from `checkpoint_dir` when possible) in this execution's MLflow
    record (`lineage`; `params_path` and `validation_path` are logged there), then write the EMA generator,
    history and training run id into `out_dir`. `featurizer_path` (the featurize stage's network) is loaded
    only for the quality monitor."""
    import mlflow

    prepared_dir, out_dir = Path(prepared_dir), Path(out_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    info = artifacts.read_dataset_info(prepared_dir / prepare.INFO_FILE)
    train_split = artifacts.read_split(prepared_dir / prepare.TRAIN_FILE)
    classes = class_count(cfg, train_split, info.num_classes)
    monitor = quality_monitor(cfg, featurizer_path, prepared_dir, train_split, classes)
    plan = devices.plan(cfg)
    say(f"train: {plan.describe()}")
    run_fingerprint = checkpoint.fingerprint(cfg, info.data_hash)
    latent = np.random.default_rng(cfg.seed).standard_normal((SAMPLE_GRID_SIZE, cfg.latent_dim)).astype(np.float32)
    grid_labels = None
    if classes:
        per_class = math.ceil(SAMPLE_GRID_SIZE / classes)
        latent = np.random.default_rng(cfg.seed).standard_normal((per_class * classes, cfg.latent_dim))
        latent = latent.astype(np.float32)
        grid_labels = (np.arange(per_class * classes) % classes).astype(np.int32)

    inputs = lineage.Inputs(prepared=prepared_dir, params=_optional_path(params_path),
                            validation=_optional_path(validation_path))
    with lineage.open_record(inputs, resume_run_id=_interrupted_run(checkpoint_dir, run_fingerprint, say)) as active:
        run_id = active.info.run_id
        if checkpoint_dir is not None:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            checkpoint.write_run(checkpoint_dir, run_id, run_fingerprint, finished=False)
        # params.yaml's sections are the record's; these are what the stage derived from them and the data.
        _log_params({"data.train_count": info.train_count, "data.image_shape": "x".join(map(str, info.image_shape)),
                     **plan.params()})
        result = train(cfg, train_split, num_classes=classes, data_hash=info.data_hash,
                       checkpoint_dir=checkpoint_dir, plan=plan, monitor=monitor, say=say, extra_callbacks=[
                           callbacks.MlflowEpochMetrics(),
                           callbacks.SampleGrid(latent, every=cfg.sample_every_epochs, labels=grid_labels),
                       ])
        mlflow.log_metrics({"train_seconds": result.total_seconds, "train_steps": result.steps})

        out_dir.mkdir(parents=True, exist_ok=True)
        # Saved with BatchNorm statistics of its own weights (the checkpoint keeps the averaged ones), seeded
        # as the quality monitor's, so its last value is what evaluate measures on this file.
        product = with_standing_statistics(result.gan.ema_generator, seed=cfg.seed)
        with artifacts.atomic_path(out_dir / GENERATOR_FILE) as tmp:
            product.save(tmp)
        with artifacts.atomic_path(out_dir / HISTORY_FILE) as tmp:
            result.history.to_csv(tmp, index=False)
        artifacts.write_json(out_dir / RUN_FILE, {"run_id": run_id, "steps": result.steps,
                                                  "seconds": round(result.total_seconds, 3),
                                                  "stopped_by_budget": result.stopped_by_budget,
                                                  "resumed_from": result.resumed_from})
    if checkpoint_dir is not None:
        checkpoint.write_run(checkpoint_dir, run_id, run_fingerprint, finished=True)
    return result


def _optional_path(path: str | Path | None) -> Path | None:
    return Path(path) if path is not None else None
