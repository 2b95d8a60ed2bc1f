"""The train stage's library functions: build the GAN for the prepared data, train it in resumable chunks
of steps, save the EMA generator and the loss history, and track everything in one MLflow run.

The step loop itself (chunk sizing, NaN stop, history, checkpoints) is `loop.Loop`; here are the steps
around it: the data, the model, the resume point, the callbacks and the MLflow record.

Data order is a pure function of (seed, epoch): each epoch is a stateless shuffle (`streams.training_batches`,
which reads the prepared shards batch by batch), so a resumed run sees exactly the batches the uninterrupted
run would have seen.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ganops import artifacts, lineage, streams, tracking
from ganops.config import TrainConfig
from ganops.errors import GanopsError
from ganops.features import featurizer as featurizer_lib
from ganops.models.gan import GAN
from ganops.models.networks import build_discriminator, build_generator
from ganops.models.standing import with_standing_statistics
from ganops.training import callbacks, checkpoint, devices, loop

SAMPLE_GRID_SIZE = 64  # images in the fixed-latent grid logged during training


@dataclasses.dataclass(frozen=True)
class TrainResult:
    gan: GAN
    history: pd.DataFrame  # one row per epoch (a last partial one when stopped early): loop.HISTORY_COLUMNS
    #                        (+ loop.MONITOR_COLUMNS with a monitor)
    seconds: float  # training seconds of this call (the monitor's time left out)
    total_seconds: float  # training seconds over all resumed runs
    steps: int  # steps done in total, resumed ones included
    stopped_by_budget: bool
    resumed_from: int | None  # the checkpoint step this call started from, None when fresh
    plan: devices.DevicePlan


def class_count(cfg: TrainConfig, train_split: streams.Rows, num_classes: int | None) -> int:
    if not cfg.conditional:
        return 0
    if train_split.labels is None:
        raise GanopsError("train.conditional: true needs labelled training data; this data set has no labels")
    return int(num_classes if num_classes else train_split.labels.max() + 1)


def build_gan(cfg: TrainConfig, image_shape: tuple[int, int, int], num_classes: int = 0,
              plan: devices.DevicePlan | None = None) -> GAN:
    """The compiled GAN, its variables and optimizers created under the plan's strategy and precision."""
    if "auto" in (cfg.arch, cfg.augment):
        raise GanopsError("train.arch and train.augment: auto depends on the training data: resolve them with "
                          "TrainConfig.for_data before building the GAN")
    plan = plan or devices.plan(cfg)
    per_loss = cfg.loss_settings()
    height, width, channels = (int(side) for side in image_shape)
    image_shape = (height, width, channels)
    with plan.building():
        generator = build_generator(cfg.arch, cfg.latent_dim, image_shape, cfg.base_filters, num_classes)
        discriminator = build_discriminator(cfg.arch, image_shape, cfg.base_filters, per_loss.d_dropout,
                                            num_classes, cfg.spectral_norm, cfg.minibatch_std)
        # The EMA generator (the saved product) always computes in float32.
        with devices.dtype_policy("float32"):
            ema = build_generator(cfg.arch, cfg.latent_dim, image_shape, cfg.base_filters, num_classes)
        gan = GAN(generator, discriminator, latent_dim=cfg.latent_dim, num_classes=num_classes,
                  ema_decay=cfg.ema_decay, augment_policy=cfg.augment, seed=cfg.seed, ema_generator=ema)
        g_optimizer = keras.optimizers.Adam(cfg.g_learning_rate, beta_1=per_loss.beta_1, beta_2=cfg.beta_2)
        d_optimizer = keras.optimizers.Adam(per_loss.d_learning_rate, beta_1=per_loss.beta_1, beta_2=cfg.beta_2)
        if plan.loss_scaling:
            g_optimizer = keras.optimizers.LossScaleOptimizer(g_optimizer)
            d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
        # XLA is chosen explicitly so CPU and GPU runs compile as recorded ("auto" differs by device).
        gan.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer, loss=cfg.loss, gp_weight=cfg.gp_weight,
                    r1_weight=per_loss.r1_weight, r1_every=cfg.r1_every, jit_compile=plan.jit_compile)
        gan.build_optimizers()
    return gan


def resume_point(checkpoint_dir: Path | None, gan: GAN, run_fingerprint: dict, total_steps: int,
                 say, restore: bool = True) -> checkpoint.Checkpoint | None:
    """The checkpoint to continue from, restored into `gan` (unless `restore` is false: checked only); None
    (and one line why) to start fresh."""
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
            found.restore(gan) if restore else found.check(gan)
        except checkpoint.IncompatibleCheckpoint as exc:
            reason = f"its variables do not fit this model ({exc})"
    if reason is not None:
        say(f"train: starting fresh, not resuming {found.folder}: {reason}")
        return None
    say(f"train: resuming from {found.folder} (step {found.step}, {found.seconds:.0f}s trained)")
    return found


def take_chief_state(gan: GAN, plan: devices.DevicePlan, resumed: checkpoint.Checkpoint | None) -> None:
    """Under multi-worker training, every worker continues from the chief's state: the checkpoint it resumes
    (`resumed`, read by the chief alone), else its fresh variables. Every worker reads and assigns each variable
    in the same order, since reading a variable synchronised on read is itself a collective."""
    if plan.cluster is None:
        return
    saved = resumed.values(gan) if resumed is not None else None
    for variable in checkpoint.state_variables(gan):
        current = variable.numpy()
        variable.assign(plan.from_chief(next(saved) if saved is not None else current))


def epoch_steps(image_count: int, batch_size: int) -> int:
    """Full batches per epoch (the incomplete last one is dropped)."""
    if image_count < batch_size:
        raise GanopsError(f"train.batch_size: {batch_size} is larger than the {image_count} training images")
    return image_count // batch_size


def batch_iterator(cfg: TrainConfig, train_split: streams.Rows, num_classes: int, plan: devices.DevicePlan,
                   start_step: int):
    """The iterator over the batches from `start_step` on (`streams.training_batches`: each epoch a permutation
    of (seed, epoch), read from the shards batch by batch), spread over the plan's replicas: each worker's input
    pipeline reads only its own rows of every global batch."""
    def batches(context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        pipelines, pipeline = (context.num_input_pipelines, context.input_pipeline_id) if context else (1, 0)
        return streams.training_batches(train_split, cfg.batch_size, cfg.seed, cfg.epochs, start_step,
                                        labels=bool(num_classes), num_workers=pipelines, worker_index=pipeline,
                                        worker_replicas=plan.replicas // pipelines)

    if plan.replicas == 1:
        return iter(batches())
    return iter(plan.strategy.distribute_datasets_from_function(batches))


def train(cfg: TrainConfig, train_split: streams.Rows, *, num_classes: int | None = None,
          data_hash: str = "", checkpoint_dir: str | Path | None = None,
          extra_callbacks: Sequence[keras.callbacks.Callback] = (), plan: devices.DevicePlan | None = None,
          monitor: callbacks.QualityMonitor | None = None, say=print) -> TrainResult:
    """Train a GAN on `train_split` (the shards of `PreparedData.open_split`, or an in-memory `Split`; testable
    without MLflow). With `checkpoint_dir`, write a checkpoint every `checkpoint_every_steps` steps and at the
    end, and (the chief) resume from a compatible one there: the other workers take the chief's state.
    `monitor` runs before the other callbacks, so its values reach the progress line, the MLflow logger and
    the history; its seconds count neither as training time nor against `max_seconds`."""
    height, width, channels = train_split.shape
    cfg = cfg.for_data(len(train_split), (height, width, channels))
    keras.utils.set_random_seed(cfg.seed)
    plan = plan or devices.plan(cfg)
    classes = class_count(cfg, train_split, num_classes)
    gan = build_gan(cfg, (height, width, channels), classes, plan)
    steps_per_epoch = epoch_steps(len(train_split), cfg.batch_size)
    run_fingerprint = checkpoint.fingerprint(cfg, data_hash)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    resumed = None
    if plan.is_chief:  # the others take the chief's state: they need no checkpoint folder
        resumed = resume_point(checkpoint_dir, gan, run_fingerprint, cfg.epochs * steps_per_epoch, say,
                               restore=plan.cluster is None)
    take_chief_state(gan, plan, resumed)
    steps = loop.Loop(cfg, gan, steps_per_epoch, resumed=resumed, checkpoint_dir=checkpoint_dir,
                      run_fingerprint=run_fingerprint, monitor=monitor, extra_callbacks=extra_callbacks,
                      from_chief=plan.from_chief)
    try:
        history, seconds = steps.run(batch_iterator(cfg, train_split, classes, plan, steps.step))
    except tf.errors.OpError as exc:
        if plan.cluster is None:
            raise
        kept = f"the chief's last checkpoint is step {steps.last_saved}" if steps.last_saved else "no checkpoint yet"
        raise GanopsError(f"{plan.cluster.describe()}: multi-worker training stopped at step {steps.step} "
                          f"({type(exc).__name__}: {_first_line(exc.message)}); {kept}: restart every task of the "
                          "cluster to resume") from None
    return TrainResult(gan=gan, history=history, seconds=seconds, total_seconds=steps.seconds_before + seconds,
                       steps=steps.step, stopped_by_budget=steps.budget.exhausted,
                       resumed_from=resumed.step if resumed else None, plan=plan)


def work(cfg: TrainConfig, prepared_dir: str | Path, scratch_dir: str | Path | None = None,
         say=print) -> TrainResult:
    """A non-chief task of multi-worker training (`ganops worker`): the chief's steps on this worker's rows of
    every batch, from the chief's state. It writes nothing but, with `scratch_dir`, its own checkpoints there;
    the chief's train stage writes the products, checkpoints and MLflow record."""
    prepared = artifacts.PreparedData(Path(prepared_dir))
    info = prepared.read_info()  # a JSON file: the arch it resolves decides the plan's precision
    cfg = cfg.for_data(info.train_count, info.image_shape)
    plan = devices.plan(cfg)  # first TensorFlow call: multi-worker set-up precedes every TensorFlow op
    if plan.is_chief:
        where = f"the chief ({plan.cluster.describe()})" if plan.cluster else "not in a multi-worker cluster"
        raise GanopsError(f"worker: this process is {where}; run the train stage (dvc repro) here, and "
                          "`ganops worker` on the other tasks of TF_CONFIG's cluster")
    train_split = prepared.open_split("train")
    assert plan.cluster is not None
    say(f"worker: {plan.cluster.describe()}: {plan.describe()}")
    return train(cfg, train_split, num_classes=class_count(cfg, train_split, info.num_classes),
                 data_hash=info.data_hash, checkpoint_dir=scratch_dir, plan=plan, say=say)


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

    existing = mlflow.get_run(tracking.active_run_id()).data.params
    params = {k: v for k, v in params.items() if k not in existing}
    if params:
        mlflow.log_params(params)


def quality_monitor(cfg: TrainConfig, featurizer_path: str | Path | None, prepared_dir: Path,
                    train_split: streams.Rows, num_classes: int) -> callbacks.QualityMonitor | None:
    """The monitor `cfg` asks for, on the featurize stage's frozen network and the prepared validation split
    (the test split stays unseen until evaluate); None (nothing loaded) when `train.monitor_every_epochs` is
    null."""
    if cfg.monitor_every_epochs is None:
        return None
    if featurizer_path is None:
        raise GanopsError("train.monitor_every_epochs: the quality monitor needs the featurizer (--featurizer); "
                          "set it to null to train without the monitor")
    validation_split = artifacts.PreparedData(prepared_dir).open_split("validation")
    return callbacks.QualityMonitor(featurizer_lib.load(featurizer_path), train_split, validation_split,
                                    every=cfg.monitor_every_epochs, epochs=cfg.epochs,
                                    num_samples=cfg.monitor_samples, seed=cfg.seed, num_classes=num_classes)


def sample_grid(cfg: TrainConfig, num_classes: int) -> callbacks.SampleGrid:
    """The grid logged every `sample_every_epochs` epochs: SAMPLE_GRID_SIZE seeded latents, or (conditional)
    enough for whole columns of every class."""
    if not num_classes:
        latent = np.random.default_rng(cfg.seed).standard_normal((SAMPLE_GRID_SIZE, cfg.latent_dim))
        return callbacks.SampleGrid(latent.astype(np.float32), every=cfg.sample_every_epochs)
    per_class = math.ceil(SAMPLE_GRID_SIZE / num_classes)
    latent = np.random.default_rng(cfg.seed).standard_normal((per_class * num_classes, cfg.latent_dim))
    labels = (np.arange(per_class * num_classes) % num_classes).astype(np.int32)
    return callbacks.SampleGrid(latent.astype(np.float32), every=cfg.sample_every_epochs, labels=labels)


def write_model_folder(out_dir: Path, result: TrainResult, run_id: str, seed: int) -> None:
    """The train stage's product: the EMA generator, the history and the training run's record."""
    folder = artifacts.ModelFolder(out_dir)
    folder.root.mkdir(parents=True, exist_ok=True)
    # Saved with BatchNorm statistics of its own weights (the checkpoint keeps the averaged ones), seeded
    # as the quality monitor's, so its last value is what evaluate measures on this file.
    product = with_standing_statistics(result.gan.ema_generator, seed=seed)
    with artifacts.atomic_path(folder.generator_path) as tmp:
        product.save(tmp)
    with artifacts.atomic_path(folder.history_path) as tmp:
        result.history.to_csv(tmp, index=False)
    artifacts.write_record(folder.run_path, artifacts.TrainingRun(
        run_id=run_id, steps=result.steps, seconds=round(result.total_seconds, 3),
        stopped_by_budget=result.stopped_by_budget, resumed_from=result.resumed_from))


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
    prepared = artifacts.PreparedData(prepared_dir)
    info = prepared.read_info()  # a JSON file: the arch it resolves decides the plan's precision
    choice = cfg.describe_choice(info.train_count, info.image_shape)
    cfg = cfg.for_data(info.train_count, info.image_shape)
    plan = devices.plan(cfg)  # first TensorFlow call: multi-worker set-up precedes every TensorFlow op
    if not plan.is_chief:
        assert plan.cluster is not None
        raise GanopsError(f"train: this process is {plan.cluster.describe()} of TF_CONFIG's cluster, not its chief; "
                          "the train stage runs on the chief, the other tasks run `ganops worker`")
    if choice:
        say(f"train: {choice}")
    say(f"train: {plan.describe()}")
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    train_split = prepared.open_split("train")
    classes = class_count(cfg, train_split, info.num_classes)
    monitor = quality_monitor(cfg, featurizer_path, prepared_dir, train_split, classes)
    run_fingerprint = checkpoint.fingerprint(cfg, info.data_hash)
    inputs = lineage.Inputs(prepared=prepared_dir, params=_optional_path(params_path),
                            validation=_optional_path(validation_path))
    with lineage.open_record(inputs, resume_run_id=_interrupted_run(checkpoint_dir, run_fingerprint, say)) as active:
        run_id = active.info.run_id
        if checkpoint_dir is not None:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            checkpoint.write_run(checkpoint_dir, run_id, run_fingerprint, finished=False)
        # params.yaml's sections are the record's; these are what the stage derived from them and the data.
        # `resolved.*`: what the null-means-per-loss keys (config.LOSS_DEFAULTS) came to for this loss, and
        # `arch: auto` and `augment: auto` for this data.
        resolved = {f"resolved.{key}": value for key, value in dataclasses.asdict(cfg.loss_settings()).items()}
        resolved["resolved.arch"] = cfg.arch
        resolved["resolved.augment"] = ",".join(cfg.augment) or "none"
        _log_params({"data.train_count": info.train_count, "data.image_shape": "x".join(map(str, info.image_shape)),
                     **plan.params(), **resolved})
        result = train(cfg, train_split, num_classes=classes, data_hash=info.data_hash,
                       checkpoint_dir=checkpoint_dir, plan=plan, monitor=monitor, say=say, extra_callbacks=[
                           callbacks.MlflowEpochMetrics(), sample_grid(cfg, classes)])
        mlflow.log_metrics({"train_seconds": result.total_seconds, "train_steps": result.steps})
        write_model_folder(out_dir, result, run_id, cfg.seed)
    if checkpoint_dir is not None:
        checkpoint.write_run(checkpoint_dir, run_id, run_fingerprint, finished=True)
    return result


def _first_line(text: str) -> str:
    """The line of a TensorFlow error message that says what happened: not its "Graph execution error:" or
    "Detected at node" preamble, not an indented stack line."""
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith((" ", "\t", "Detected at", "Graph execution error"))]
    return lines[0] if lines else "no message"


def _optional_path(path: str | Path | None) -> Path | None:
    return Path(path) if path is not None else None
