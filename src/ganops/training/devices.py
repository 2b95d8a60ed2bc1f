"""Where and how training runs: device, distribution strategy, precision and XLA, chosen once and recorded.

- **Devices.** Every visible GPU, else every logical CPU device. More than one → `tf.distribute.
  MirroredStrategy` (synchronous data parallelism: each replica takes `batch_size / replicas` images and
  gradients are summed). One → TensorFlow's default strategy. Tests split the CPU into two logical devices
  (`tf.config.set_logical_device_configuration`, before TensorFlow initialises) to exercise the mirrored
  path without a GPU.
- **Several machines.** `train.distribute: multi_worker` (or `auto` with a `TF_CONFIG` naming more than one
  task): `tf.distribute.MultiWorkerMirroredStrategy` over every task of the cluster, each with its local
  devices. TensorFlow configures collective ops once per process, before it runs any op, so the train stage
  makes its plan first. The chief (the `chief` task, else worker 0, TensorFlow's own rule) runs the DVC stage
  and is the only process that writes; the others run `ganops worker`. Whatever must be the same on every
  worker — when to stop, how many steps the next graph call runs — is decided by the chief and shared
  (`DevicePlan.from_chief`), since each worker's clock differs.
- **Precision.** `train.precision: auto` → `mixed_float16` on a GPU (both optimizers wrapped in
  `keras.optimizers.LossScaleOptimizer`, see gan.py); on a CPU that computes bfloat16 natively
  (`NATIVE_BF16_FLAGS`) `mixed_bfloat16` for the convolutional archs; else `float32`. bfloat16 needs no loss
  scaling (float32's exponent range). On this project's 2-core CPU (AVX-512 BF16) the DCGAN tutorial stack at
  batch 256 trained at 591 images/s in mixed_bfloat16 vs 410 for the float32 tutorial loop (1.44×,
  `benchmarks/train_throughput.py --loop-precision float32`); the default MNIST dcgan (width 32, batch 16)
  made 1.00–1.17× the float32 steps in 240 s at no loss of quality per second (fd ratio median 23.2 vs 29.4
  over seeds 0–2, `benchmarks/quality_budget.py`, README). The mlp stays float32 (its
  small dense layers were not measured in bf16), and so does every CPU without native bf16, where bf16 is
  emulated and slower. The saved EMA generator always computes in float32.
- **XLA.** `train.jit_compile: null` → on for GPUs, off on CPUs: on this project's 2-core CPU the DCGAN step
  ran at 213 images/s with XLA vs 336 without (TF 2.21 XLA's CPU convolutions do not use oneDNN).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ganops import archs
from ganops.config import TrainConfig
from ganops.errors import GanopsError


@dataclasses.dataclass(frozen=True)
class DevicePlan:
    strategy: tf.distribute.Strategy
    device: str  # "gpu" or "cpu"
    devices: tuple[str, ...]  # logical device names the replicas run on
    precision: str  # a Keras dtype policy name: float32, mixed_float16, mixed_bfloat16
    jit_compile: bool
    cluster: Cluster | None = None  # the TF_CONFIG task this process is, under multi-worker training
    precision_reason: str = ""  # why `train.precision: auto` chose `precision`; empty when set explicitly
    jit_note: str = ""  # see DeviceChoice

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def strategy_name(self) -> str:
        # TensorFlow's class behind MultiWorkerMirroredStrategy is called CollectiveAllReduceStrategy.
        return "MultiWorkerMirroredStrategy" if self.cluster else type(self.strategy).__name__

    @property
    def workers(self) -> int:
        return self.cluster.size if self.cluster else 1

    @property
    def is_chief(self) -> bool:
        return self.cluster is None or self.cluster.is_chief

    def from_chief(self, values) -> np.ndarray:
        """The chief's `values` on every worker (same dtype); `values` as they are without a cluster. Each worker
        passes its own: a sum over replicas in which only the chief's first replica (replica 0) is non-zero."""
        values = np.asarray(values)
        if self.cluster is None:
            return values
        return np.asarray(self._chief_sum(tf.constant(values)))

    @functools.cached_property
    def _chief_sum(self):
        # A tf.function: collectives run eagerly cost a warning and a slow path each.
        @tf.function(reduce_retracing=True)
        def chief_sum(values: tf.Tensor) -> tf.Tensor:
            def own_or_zero():
                replica = tf.distribute.get_replica_context().replica_id_in_sync_group
                return tf.where(tf.equal(replica, 0), values, tf.zeros_like(values))

            return self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(own_or_zero), axis=None)

        return chief_sum

    @property
    def loss_scaling(self) -> bool:
        return self.precision == "mixed_float16"

    def params(self) -> dict[str, object]:
        """The choices as MLflow params (`runtime.*`, apart from the `train.*` settings that asked for them)."""
        return {"runtime.device": self.device, "runtime.devices": ",".join(self.devices),
                "runtime.workers": self.workers, "runtime.replicas": self.replicas,
                "runtime.strategy": self.strategy_name,
                "runtime.precision": self.precision, "runtime.jit_compile": self.jit_compile}

    def describe(self) -> str:
        where = f"{self.workers} workers, " if self.cluster else ""
        reason = f" ({self.precision_reason})" if self.precision_reason else ""
        return (f"{where}{self.replicas}× {self.device} ({self.strategy_name}), {self.precision}{reason}, "
                f"XLA {'on' if self.jit_compile else 'off'}" + (f" ({self.jit_note})" if self.jit_note else ""))

    @contextlib.contextmanager
    def building(self) -> Iterator[None]:
        """Scope for creating models and optimizers: the strategy's scope and the dtype policy."""
        with dtype_policy(self.precision), self.strategy.scope():
            yield


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Layers built inside take the Keras dtype policy `name`; the global policy is restored after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


TASK_TYPES = ("chief", "worker")  # the jobs MultiWorkerMirroredStrategy trains on; no parameter servers


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's task in a multi-worker cluster, as `TF_CONFIG` says."""

    tasks: tuple[tuple[str, int], ...]  # (job, index) of every chief and worker task
    task: tuple[str, int]  # this process's

    @property
    def size(self) -> int:
        return len(self.tasks)

    @property
    def is_chief(self) -> bool:
        """TensorFlow's rule: the `chief` task, or worker 0 when the cluster has no chief job."""
        first = ("chief", 0) if ("chief", 0) in self.tasks else ("worker", 0)
        return self.task == first

    def describe(self) -> str:
        return f"{self.task[0]} {self.task[1]}"


def cluster_from_env(environ=os.environ) -> Cluster | None:
    """The cluster `TF_CONFIG` (JSON: `cluster` jobs → host:port lists, `task` type and index) describes;
    None when it is unset or empty."""
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
        jobs, task = config["cluster"], config["task"]
        tasks = tuple((job, i) for job in TASK_TYPES for i in range(len(jobs.get(job, []))))
        this = (str(task["type"]), int(task["index"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GanopsError(f"TF_CONFIG: not a cluster spec with a task ({type(exc).__name__}: {exc}); expected "
                          '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
                          ) from None
    others = sorted(set(jobs) - set(TASK_TYPES))
    if others:
        raise GanopsError(f"TF_CONFIG: jobs {others} are not supported; multi-worker training uses chief and "
                          "worker tasks only")
    if this not in tasks:
        raise GanopsError(f"TF_CONFIG: task {this[0]} {this[1]} is not in the cluster ({len(tasks)} tasks)")
    return Cluster(tasks, this)


def distribution(cfg: TrainConfig, cluster: Cluster | None) -> str:
    """`train.distribute` resolved: `auto` is multi_worker in a cluster of several tasks, else mirrored over
    several local devices (decided later, from the devices) or one_device."""
    if cfg.distribute == "multi_worker" and cluster is None:
        raise GanopsError("train.distribute: multi_worker needs TF_CONFIG (the cluster and this task) in the "
                          "environment of every worker")
    if cfg.distribute == "auto" and cluster is not None and cluster.size > 1:
        return "multi_worker"
    return cfg.distribute


# /proc/cpuinfo flags of x86 CPUs with bfloat16 arithmetic, which oneDNN uses under mixed_bfloat16: AVX-512
# BF16 (Intel Cooper Lake, AMD Zen 4 and later) and AMX-BF16 (Intel Sapphire Rapids and later).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def native_bf16_flags(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The `NATIVE_BF16_FLAGS` this CPU has (from `cpuinfo`, default /proc/cpuinfo); () where unknown."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux: treated as no native bf16
            return ()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return tuple(sorted(NATIVE_BF16_FLAGS & set(line.partition(":")[2].split())))
    return ()


# XLA on a CPU: TF 2.21's XLA CPU convolutions bypass oneDNN (the module docstring's 213 vs 336 images/s).
XLA_ON_CPU = "train.jit_compile: true on a CPU, where XLA measured 0.63x the images/s of the default"


@dataclasses.dataclass(frozen=True)
class DeviceChoice:
    """What `plan` decides from the visible devices, before any strategy is built."""

    device: str  # "gpu" or "cpu"
    devices: tuple[str, ...]  # the replicas' device names on this worker
    precision: str
    jit_compile: bool
    precision_reason: str = ""  # why `train.precision: auto` chose it; empty when set explicitly
    jit_note: str = ""  # a warning when `train.jit_compile: true` asks for XLA on a CPU


def auto_precision(cfg: TrainConfig, gpu: bool, bf16_flags: tuple[str, ...]) -> tuple[str, str]:
    """`train.precision: auto` and why: see the module's docstring. Needs the arch resolved (`TrainConfig.for_data`)."""
    if cfg.arch == "auto":
        raise GanopsError("train.precision: auto depends on the arch: resolve train.arch: auto with "
                          "TrainConfig.for_data before planning the devices")
    if gpu:
        return "mixed_float16", "auto: a GPU"
    if bf16_flags and archs.is_convolutional(cfg.arch):
        return "mixed_bfloat16", f"auto: the CPU computes bf16 natively ({', '.join(bf16_flags)})"
    if bf16_flags:
        return "float32", "auto: bf16 is chosen for the convolutional archs only"
    return "float32", "auto: no native bf16 on this CPU"


def choose(cfg: TrainConfig, gpu_names: tuple[str, ...], cpu_names: tuple[str, ...], mode: str = "auto",
           workers: int = 1, bf16_flags: tuple[str, ...] = ()) -> DeviceChoice:
    """Every GPU when there is one (mixed float16 and XLA unless `cfg` says otherwise), else every CPU device
    (no XLA; mixed bfloat16 for a convolutional arch where `bf16_flags` says the CPU computes it natively, else
    float32); one of them for `mode` one_device, and one CPU a worker under multi_worker (what
    MultiWorkerMirroredStrategy uses). A pure function of the device names and CPU flags, so every choice is
    testable on any machine."""
    kind = "gpu" if gpu_names else "cpu"
    names = gpu_names or cpu_names
    if mode == "one_device" or (mode == "multi_worker" and kind == "cpu"):
        names = names[:1]
    if cfg.precision == "auto":
        precision, reason = auto_precision(cfg, bool(gpu_names), bf16_flags)
    else:
        precision, reason = cfg.precision, ""
    jit = cfg.jit_compile if cfg.jit_compile is not None else bool(gpu_names)
    # Said in the progress line, so a setting carried over from a GPU machine does not pass unnoticed.
    jit_note = XLA_ON_CPU if jit and kind == "cpu" else ""
    if cfg.batch_size % (len(names) * workers):
        where = f"{workers} workers × {len(names)}" if workers > 1 else str(len(names))
        raise GanopsError(f"train.batch_size: {cfg.batch_size} does not split evenly over {where} {kind} replicas")
    return DeviceChoice(kind, names, precision, jit, reason, jit_note)


def multi_worker_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy over `TF_CONFIG`'s cluster; it blocks until every task has started."""
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as exc:  # "Collective ops must be configured at program startup"
        raise GanopsError(f"train.distribute: multi-worker training must be set up before TensorFlow runs "
                          f"anything in this process ({exc})") from None


def plan(cfg: TrainConfig) -> DevicePlan:
    """The plan for this process. Under multi_worker the strategy is made first: it must precede every
    TensorFlow op, device listing included."""
    cluster = cluster_from_env()
    mode = distribution(cfg, cluster)
    strategy = multi_worker_strategy() if mode == "multi_worker" else None
    choice = choose(cfg, tuple(device.name for device in tf.config.list_logical_devices("GPU")),
                    tuple(device.name for device in tf.config.list_logical_devices("CPU")), mode,
                    cluster.size if strategy is not None and cluster is not None else 1, native_bf16_flags())
    names = choice.devices
    if strategy is None:
        strategy = tf.distribute.MirroredStrategy(list(names)) if len(names) > 1 else tf.distribute.get_strategy()
    return DevicePlan(strategy=strategy, device=choice.device, devices=names, precision=choice.precision,
                      jit_compile=choice.jit_compile, cluster=cluster if mode == "multi_worker" else None,
                      precision_reason=choice.precision_reason, jit_note=choice.jit_note)
