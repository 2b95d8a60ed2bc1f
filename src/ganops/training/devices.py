"""Where and how training runs: device, distribution strategy, precision and XLA, chosen once and recorded.

- **Devices.** Every visible GPU, else every logical CPU device. More than one → `tf.distribute.
  MirroredStrategy` (synchronous data parallelism: each replica takes `batch_size / replicas` images and
  gradients are summed). One → TensorFlow's default strategy. Tests split the CPU into two logical devices
  (`tf.config.set_logical_device_configuration`, before TensorFlow initialises) to exercise the mirrored
  path without a GPU.
- **Several machines.** Not automatic: set `TF_CONFIG` on every machine (cluster spec and this worker's
  index) and build the GAN under `tf.distribute.MultiWorkerMirroredStrategy()` instead; only the chief
  (worker 0) should write checkpoints and outputs, and the dataset must be sharded per worker.
- **Precision.** `train.precision: auto` → `mixed_float16` on a GPU (both optimizers wrapped in
  `keras.optimizers.LossScaleOptimizer`, see gan.py), `float32` on a CPU. `mixed_bfloat16` needs no loss
  scaling (same exponent range as float32) and can be chosen explicitly, e.g. for CPUs with AMX: on this
  project's 2-core CPU (AMX-BF16) the DCGAN tutorial stack at batch 256 trained at 450 images/s in
  mixed_bfloat16 vs 286 for the float32 tutorial loop in the same run (float32 trainer ≈ float32 loop);
  its effect on sample quality is not measured, so `auto` keeps float32 on CPUs.
  The saved EMA generator always computes in float32.
- **XLA.** `train.jit_compile: null` → on for GPUs, off on CPUs: on this project's 2-core CPU the DCGAN step
  ran at 213 images/s with XLA vs 336 without (TF 2.21 XLA's CPU convolutions do not use oneDNN).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import keras
import tensorflow as tf

from ganops.config import TrainConfig
from ganops.errors import GanopsError


@dataclasses.dataclass(frozen=True)
class DevicePlan:
    strategy: tf.distribute.Strategy
    device: str  # "gpu" or "cpu"
    devices: tuple[str, ...]  # logical device names the replicas run on
    precision: str  # a Keras dtype policy name: float32, mixed_float16, mixed_bfloat16
    jit_compile: bool

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def loss_scaling(self) -> bool:
        return self.precision == "mixed_float16"

    def params(self) -> dict[str, object]:
        """The choices as MLflow params (`runtime.*`, apart from the `train.*` settings that asked for them)."""
        return {"runtime.device": self.device, "runtime.devices": ",".join(self.devices),
                "runtime.replicas": self.replicas, "runtime.strategy": type(self.strategy).__name__,
                "runtime.precision": self.precision, "runtime.jit_compile": self.jit_compile}

    def describe(self) -> str:
        return (f"{self.replicas}× {self.device} ({type(self.strategy).__name__}), {self.precision}, "
                f"XLA {'on' if self.jit_compile else 'off'}")

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


@dataclasses.dataclass(frozen=True)
class DeviceChoice:
    """What `plan` decides from the visible devices, before any strategy is built."""

    device: str  # "gpu" or "cpu"
    devices: tuple[str, ...]  # the replicas' device names
    precision: str
    jit_compile: bool


def choose(cfg: TrainConfig, gpu_names: tuple[str, ...], cpu_names: tuple[str, ...]) -> DeviceChoice:
    """Every GPU when there is one (mixed float16 and XLA unless `cfg` says otherwise), else every CPU device
    (float32, no XLA). A pure function of the device names, so the GPU choice is testable on a CPU machine."""
    kind = "gpu" if gpu_names else "cpu"
    names = gpu_names or cpu_names
    precision = cfg.precision if cfg.precision != "auto" else ("mixed_float16" if gpu_names else "float32")
    jit = cfg.jit_compile if cfg.jit_compile is not None else bool(gpu_names)
    if cfg.batch_size % len(names):
        raise GanopsError(f"train.batch_size: {cfg.batch_size} does not split evenly over "
                          f"{len(names)} {kind} replicas")
    return DeviceChoice(kind, names, precision, jit)


def plan(cfg: TrainConfig) -> DevicePlan:
    choice = choose(cfg, tuple(device.name for device in tf.config.list_logical_devices("GPU")),
                    tuple(device.name for device in tf.config.list_logical_devices("CPU")))
    names = choice.devices
    strategy = tf.distribute.MirroredStrategy(list(names)) if len(names) > 1 else tf.distribute.get_strategy()
    return DevicePlan(strategy=strategy, device=choice.device, devices=names, precision=choice.precision,
                      jit_compile=choice.jit_compile)
