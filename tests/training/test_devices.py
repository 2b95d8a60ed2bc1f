"""The distributed path on a CPU: TensorFlow split into two logical CPU devices (which must happen before
it initialises, hence a fresh interpreter) trains under MirroredStrategy, checkpoints and restores."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from ganops.config import TrainConfig
from ganops.errors import GanopsError
from ganops.training import devices, train
from tests.helpers import shrunk_params

SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from pathlib import Path

    import numpy as np
    from ganops import artifacts
    from ganops.config import TrainConfig
    from ganops.training import checkpoint, train

    split = artifacts.read_split(sys.argv[1] + "/" + artifacts.PreparedData.SPLIT_FILES["train"])
    cfg = TrainConfig.model_validate_json(sys.argv[3])
    first = train.train(cfg, split, checkpoint_dir=sys.argv[2])
    # A fresh GAN under the same strategy restores the mirrored variables from the checkpoint.
    gan = train.build_gan(cfg, split.images.shape[1:], 10, first.plan)
    resumed = train.resume_point(Path(sys.argv[2]), gan, checkpoint.fingerprint(cfg, ""), first.steps, print)
    same = all(np.array_equal(a, b) for a, b in zip(gan.get_weights(), first.gan.get_weights()))
    latent = np.random.default_rng(0).standard_normal((4, 16)).astype("float32")
    images = np.asarray(gan.ema_generator([latent, np.arange(4, dtype="int32")]))
    print(json.dumps({
        "replicas": first.plan.replicas, "strategy": type(first.plan.strategy).__name__,
        "devices": list(first.plan.devices), "steps": first.steps, "resumed_from": resumed.step,
        "restored_equal": same,
        "iterations": [int(gan.g_optimizer.iterations.numpy()), int(gan.d_optimizer.iterations.numpy())],
        "finite": bool(np.isfinite(first.history[["d_loss", "g_loss"]].to_numpy()).all()),
        "image_range": [float(images.min()), float(images.max())],
    }))
""")


def test_two_logical_cpus_train_mirrored_and_restore(prepared_digits, tmp_path):
    # Lazy R1 (every 2nd step: a tf.cond in the replica function) and spectral norm on the mirrored path too.
    cfg = shrunk_params(train={"arch": "dcgan", "r1_weight": 1.0, "r1_every": 2, "epochs": 1, "ema_decay": 0.9,
                               "checkpoint_every_steps": 5, "spectral_norm": True, "augment": ["translation"],
                               "conditional": True}).train
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(prepared_digits), str(tmp_path / "checkpoints"),
                           cfg.model_dump_json()],
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    steps_per_epoch = 195 // 32  # the 300 prepared digits' train split
    assert report["replicas"] == 2 and report["strategy"] == "MirroredStrategy"
    assert len(report["devices"]) == 2 and all("CPU" in name for name in report["devices"])
    assert report["steps"] == steps_per_epoch and report["resumed_from"] == steps_per_epoch
    assert report["restored_equal"] and report["iterations"] == [steps_per_epoch] * 2
    assert report["finite"] and -1.0 <= report["image_range"][0] < report["image_range"][1] <= 1.0


def test_single_device_plan_on_this_machine():
    plan = devices.plan(TrainConfig(arch="mlp"))
    assert plan.device == "cpu" and plan.replicas == 1
    assert plan.precision == "float32" and plan.jit_compile is False  # CPU defaults
    assert plan.params()["runtime.precision"] == "float32"
    explicit = devices.plan(TrainConfig(arch="mlp", precision="mixed_bfloat16", jit_compile=True))
    assert explicit.precision == "mixed_bfloat16" and explicit.jit_compile and not explicit.loss_scaling
    assert explicit.describe().endswith(f"XLA on ({devices.XLA_ON_CPU})")


def test_a_reported_gpu_gets_mixed_float16_and_xla_and_a_cpu_float32():
    from ganops.config import TrainConfig
    from ganops.training import devices

    gpus = devices.choose(TrainConfig(arch="mlp"), ("/device:GPU:0", "/device:GPU:1"), ("/device:CPU:0",))
    assert (gpus.device, gpus.devices, gpus.precision, gpus.jit_compile) == (
        "gpu", ("/device:GPU:0", "/device:GPU:1"), "mixed_float16", True)
    cpu = devices.choose(TrainConfig(arch="mlp"), (), ("/device:CPU:0",))
    assert (cpu.device, cpu.precision, cpu.jit_compile) == ("cpu", "float32", False)
    forced = devices.choose(TrainConfig(arch="mlp", precision="float32", jit_compile=False), ("/device:GPU:0",), ())
    assert (forced.precision, forced.jit_compile) == ("float32", False)
    # XLA asked for on a CPU (slower there) is allowed but said; on a GPU, or left to auto, nothing is said.
    xla_cpu = devices.choose(TrainConfig(arch="mlp", jit_compile=True), (), ("/device:CPU:0",))
    assert xla_cpu.jit_compile and xla_cpu.jit_note == devices.XLA_ON_CPU
    xla_gpu = devices.choose(TrainConfig(arch="mlp", jit_compile=True), ("/device:GPU:0",), ())
    assert gpus.jit_note == cpu.jit_note == xla_gpu.jit_note == ""


def test_auto_precision_picks_bf16_for_convolutional_archs_on_a_cpu_that_computes_it_natively():
    cpu = ("/device:CPU:0",)
    native = devices.choose(TrainConfig(arch="dcgan"), (), cpu, bf16_flags=("avx512_bf16",))
    assert (native.precision, native.jit_compile) == ("mixed_bfloat16", False)
    assert "avx512_bf16" in native.precision_reason
    assert devices.choose(TrainConfig(arch="resnet"), (), cpu, bf16_flags=("amx_bf16",)).precision == "mixed_bfloat16"
    # The mlp, a CPU that emulates bf16, an explicit setting and a GPU are not moved to bf16.
    assert devices.choose(TrainConfig(arch="mlp"), (), cpu, bf16_flags=("avx512_bf16",)).precision == "float32"
    assert devices.choose(TrainConfig(arch="dcgan"), (), cpu).precision == "float32"
    explicit = devices.choose(TrainConfig(arch="dcgan", precision="float32"), (), cpu, bf16_flags=("amx_bf16",))
    assert (explicit.precision, explicit.precision_reason) == ("float32", "")
    gpu = devices.choose(TrainConfig(arch="dcgan"), ("/device:GPU:0",), cpu, bf16_flags=("amx_bf16",))
    assert gpu.precision == "mixed_float16"
    # `arch: auto` must be resolved for the data first, on any machine: the choice depends on it.
    for gpus in ((), ("/device:GPU:0",)):
        with pytest.raises(GanopsError, match="resolve train.arch: auto with TrainConfig.for_data"):
            devices.choose(TrainConfig(), gpus, cpu)
    with pytest.raises(GanopsError, match="resolve them with TrainConfig.for_data"):
        train.build_gan(TrainConfig(augment=[]), (8, 8, 1))


def test_native_bf16_flags_are_read_from_cpuinfo():
    def cpuinfo(flags: str) -> str:
        return f"processor\t: 0\nmodel name\t: some CPU\nflags\t\t: {flags}\nbugs\t\t: spectre_v1\n"

    assert devices.native_bf16_flags(cpuinfo("fpu sse2 avx2 avx512f")) == ()
    assert devices.native_bf16_flags(cpuinfo("fpu avx512f avx512_bf16 amx_tile amx_bf16")) == (
        "amx_bf16", "avx512_bf16")
    assert devices.native_bf16_flags("Features\t: fp asimd bf16\n") == ()  # no x86 flags line: not assumed
    # The plan on this machine reports what it chose and why in the progress line.
    plan = devices.plan(TrainConfig(arch="dcgan"))
    expected = "mixed_bfloat16" if devices.native_bf16_flags() else "float32"
    assert plan.precision == expected and f"{expected} (auto: " in plan.describe()
