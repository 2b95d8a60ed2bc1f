"""Training throughput of the project's trainer against the TensorFlow DCGAN tutorial's plain loop.

Both train the same layer stack (`networks.build_pair`, at 28×28×1 with 64 base filters exactly the
tutorial's) on the same images with the same batch size:
- **trainer**: what the train stage runs — `train.build_gan` (device plan, optimizers, EMA, loss trackers),
  `streams.training_batches` (uint8 pixels scaled in the pipeline, as from the shards) and `GAN.train_steps`,
  many steps per graph call;
- **plain loop**: the tutorial's `@tf.function` step with two `GradientTape`s and
  `BinaryCrossentropy(from_logits=True)`, called once per batch from a Python loop over a
  `shuffle().batch()` dataset.

Both run with the same device plan: `--precision` (a Keras dtype policy; the loop, like the trainer, wraps
its optimizers in `LossScaleOptimizer` for mixed_float16 and computes its losses in float32) and
`--jit-compile` (XLA for the trainer's `train_steps` and the loop's `tf.function` alike); `auto`/`default`
are the train stage's defaults (GPU: mixed_float16 + XLA; CPU: no XLA, mixed_bfloat16 for dcgan where the CPU
computes bf16 natively, else float32). `--loop-precision` gives the loop another policy, e.g. the tutorial's
own float32 against the trainer's best CPU mode. The loop runs on one device; the trainer uses every visible
GPU, so pin one GPU (`CUDA_VISIBLE_DEVICES=0`) for a fair comparison.

Each is warmed up (tracing, first steps) and then timed over `--steps` steps, alternating trainer and loop
`--repeats` times so that load from other processes hits both alike; the medians are compared. The last
line is `images_per_s=<trainer median>`.

    python benchmarks/train_throughput.py --arch dcgan --image-size 28 --batch 256 --steps 30
    python benchmarks/train_throughput.py --loop-precision float32   # the trainer's auto mode vs the tutorial's
    python benchmarks/train_throughput.py --precision mixed_float16 --jit-compile true   # a GPU: see gpu_throughput.sh
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "data" / "mnist-t10k"


def load_images(image_size: int, channels: int):
    """MNIST t10k (28×28) when it is here, else the built-in digits; through the prepare stage, so the
    pixels are exactly what training sees."""
    from ganops import artifacts
    from ganops.config import DataConfig
    from ganops.data import prepare

    mnist = MNIST / "t10k-images-idx3-ubyte.gz"
    if mnist.exists():
        cfg = DataConfig(source="idx", path=str(mnist), labels_path=str(MNIST / "t10k-labels-idx1-ubyte.gz"),
                         image_size=image_size, channels=channels, validation_fraction=0.01, test_fraction=0.01)
    else:
        cfg = DataConfig(image_size=image_size, channels=channels, validation_fraction=0.01, test_fraction=0.01)
    with tempfile.TemporaryDirectory() as tmp:
        prepare.run(cfg, Path(tmp) / "prepared")
        split = artifacts.read_split(Path(tmp) / "prepared" / artifacts.PreparedData.SPLIT_FILES["train"])
    return split.images, cfg.source


class Trainer:
    """The train stage's code path, stepped `steps` at a time."""

    def __init__(self, cfg, images):
        from ganops import artifacts, shards, streams
        from ganops.training import train

        self.gan = train.build_gan(cfg, images.shape[1:])
        epochs = 10_000  # an endless stream: the benchmark decides how many steps to take
        pixels = artifacts.Split(shards.from_signed(images), None)  # the stored uint8, as the stage reads them
        self.iterator = iter(streams.training_batches(pixels, cfg.batch_size, cfg.seed, epochs))

    def run(self, steps: int) -> None:
        before = int(self.gan.steps_done.numpy())
        self.gan.train_steps(self.iterator, steps)
        assert int(self.gan.steps_done.numpy()) == before + steps


class PlainLoop:
    """The TensorFlow DCGAN tutorial's training loop over the same layer stack, in dtype policy `precision`
    (loss scaling for mixed_float16, as the TensorFlow mixed-precision guide does it) and the plan's XLA
    setting."""

    def __init__(self, cfg, images, plan, precision: str):
        import keras
        import tensorflow as tf

        from ganops.models.networks import build_pair
        from ganops.training import devices

        with devices.dtype_policy(precision):
            generator, discriminator = build_pair(cfg.arch, cfg.latent_dim, images.shape[1:], cfg.base_filters)
        cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
        g_optimizer = keras.optimizers.Adam(cfg.g_learning_rate)
        d_optimizer = keras.optimizers.Adam(cfg.loss_settings().d_learning_rate)
        loss_scaling = precision == "mixed_float16"
        if loss_scaling:
            g_optimizer = keras.optimizers.LossScaleOptimizer(g_optimizer)
            d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
        batch_size, latent_dim = cfg.batch_size, cfg.latent_dim

        def scaled(optimizer, loss):
            return optimizer.scale_loss(loss) if loss_scaling else loss

        @tf.function(jit_compile=plan.jit_compile)
        def train_step(real_images):
            noise = tf.random.normal([batch_size, latent_dim])
            with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
                generated_images = generator(noise, training=True)
                real_output = tf.cast(discriminator(real_images, training=True), tf.float32)
                fake_output = tf.cast(discriminator(generated_images, training=True), tf.float32)
                gen_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
                disc_loss = (cross_entropy(tf.ones_like(real_output), real_output)
                             + cross_entropy(tf.zeros_like(fake_output), fake_output))
                gen_loss, disc_loss = scaled(g_optimizer, gen_loss), scaled(d_optimizer, disc_loss)
            gen_gradients = gen_tape.gradient(gen_loss, generator.trainable_variables)
            disc_gradients = disc_tape.gradient(disc_loss, discriminator.trainable_variables)
            g_optimizer.apply_gradients(zip(gen_gradients, generator.trainable_variables, strict=True))
            d_optimizer.apply_gradients(zip(disc_gradients, discriminator.trainable_variables, strict=True))

        dataset = (tf.data.Dataset.from_tensor_slices(images).shuffle(len(images))
                   .batch(batch_size, drop_remainder=True).repeat())
        self.train_step, self.iterator, self.g_optimizer = train_step, iter(dataset), g_optimizer

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.train_step(next(self.iterator))
        self.g_optimizer.iterations.numpy()  # wait for the last step


def measure(runner, steps: int, batch: int) -> float:
    started = time.perf_counter()
    runner.run(steps)
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["dcgan", "mlp"], default="dcgan")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--channels", type=int, choices=[1, 3], default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps after tracing")
    parser.add_argument("--repeats", type=int, default=5, help="alternating measurements of each")
    parser.add_argument("--base-filters", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=100, help="the tutorial's noise_dim")
    parser.add_argument("--precision", default="auto",
                        choices=["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                        help="train.precision, for the trainer and (unless --loop-precision) the loop")
    parser.add_argument("--loop-precision", default=None, choices=["float32", "mixed_float16", "mixed_bfloat16"],
                        help="the plain loop's dtype policy (default: the trainer's)")
    parser.add_argument("--jit-compile", default="default", choices=["default", "true", "false"],
                        help="train.jit_compile (XLA), for the trainer and the loop (default: on for GPUs)")
    args = parser.parse_args()

    import keras

    from ganops.config import TrainConfig
    from ganops.training import devices

    images, source = load_images(args.image_size, args.channels)
    # The tutorial's settings; no penalty or augmentation, so both do the same work per image.
    cfg = TrainConfig(arch=args.arch, batch_size=args.batch, latent_dim=args.latent_dim,
                      base_filters=args.base_filters, g_learning_rate=1e-4, d_learning_rate=1e-4,
                      r1_weight=0.0, augment=[], max_seconds=None, precision=args.precision,
                      jit_compile={"default": None, "true": True, "false": False}[args.jit_compile])
    plan = devices.plan(cfg)
    loop_precision = args.loop_precision or plan.precision
    print(f"data: {source}, {len(images)} images {'x'.join(map(str, images.shape[1:]))}; trainer: "
          f"{plan.describe()}; plain loop: {loop_precision}; batch {args.batch}, {args.steps} steps × "
          f"{args.repeats} repeats; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)

    keras.utils.set_random_seed(0)
    runners = {"trainer": Trainer(cfg, images), "plain loop": PlainLoop(cfg, images, plan, loop_precision)}
    for runner in runners.values():
        runner.run(1)  # trace and compile
        runner.run(args.warmup)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for repeat in range(args.repeats):
        for name, runner in runners.items():
            rates[name].append(measure(runner, args.steps, args.batch))
        print(f"repeat {repeat + 1}: " + "  ".join(f"{name} {rates[name][-1]:.1f}" for name in runners),
              flush=True)
    trainer, plain = statistics.median(rates["trainer"]), statistics.median(rates["plain loop"])
    print(f"median images/s: trainer {trainer:.1f}, plain tf.function loop {plain:.1f}, "
          f"ratio {trainer / plain:.2f}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(f"images_per_s={trainer:.1f}")


if __name__ == "__main__":
    sys.exit(main())
