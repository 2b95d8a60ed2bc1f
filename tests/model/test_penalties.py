"""Lazy R1 from the D loss's own pass over the reals, and loss-scaled penalty gradients."""

import keras
import pytest
import tensorflow as tf

from ganops import artifacts, streams
from ganops.models import losses
from ganops.training import train as train_lib
from tests.helpers import shrunk_params

# dcgan: its discriminator has Dropout, whose seed draws count the discriminator's calls.
TINY = shrunk_params(train={"arch": "dcgan", "augment": [], "r1_weight": 2.0, "r1_every": 4, "ema_decay": 0.9}).train


@pytest.fixture(scope="module")
def split(prepared_digits):
    return artifacts.read_split(prepared_digits / artifacts.PreparedData.SPLIT_FILES["train"])


def _penalty_and_grads(gan, images, step):
    """The penalty term of the D loss at `steps_done = step`, and its gradient with respect to D, in one
    compiled function as in training."""
    gan.steps_done.assign(step)
    # No Dropout masks here, so that this term and the reference R1 see the same function.
    def critic(x):
        return gan.discriminator(x, training=False)

    @tf.function
    def compute():
        with tf.GradientTape() as tape:
            with tf.GradientTape() as real_tape:
                real_tape.watch(images)
                real_sum = losses.scaled_logit_sum(critic(images), gan.loss_scale())
            penalty = gan.penalties_of(critic, real_tape, real_sum, images, images)
        return penalty, tape.gradient(penalty, gan.discriminator.trainable_variables)

    return compute()


def test_lazy_r1_is_the_every_step_value_times_the_interval_on_r1_steps_only(split):
    gan = train_lib.build_gan(TINY, split.images.shape[1:])
    images = tf.constant(split.images[:16])
    every_step = 0.5 * 2.0 * float(losses.r1_penalty(lambda x: gan.discriminator(x, training=False), images))
    assert every_step > 0
    for step in (0, 4, 8):
        penalty, grads = _penalty_and_grads(gan, images, step)
        assert float(penalty) == pytest.approx(4 * every_step, rel=1e-4)
        assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)  # R1 reaches D's weights
    for step in (1, 2, 3, 5):
        penalty, grads = _penalty_and_grads(gan, images, step)
        assert float(penalty) == 0.0
        assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0.0 for g in grads)


def test_r1_steps_run_no_extra_discriminator_pass_on_the_reals(split):
    # Each Dropout draws once per discriminator call: reals and fakes make two draws a step, R1 or not.
    gan = train_lib.build_gan(TINY.model_copy(update={"r1_every": 2}), split.images.shape[1:])
    dropouts = [layer for layer in gan.discriminator.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts
    before = [int(d.seed_generator.state.numpy()[1]) for d in dropouts]
    gan.train_steps(iter(tf.data.Dataset.from_tensors(tf.constant(split.images[:32])).repeat()), 4)
    assert int(gan.steps_done.numpy()) == 4  # two of them R1 steps
    assert [int(d.seed_generator.state.numpy()[1]) - b for d, b in zip(dropouts, before, strict=True)] == [8, 8]


def test_penalties_are_the_same_with_and_without_loss_scaling_in_float32():
    images = tf.random.stateless_normal((4, 6, 6, 1), seed=[1, 2])
    fakes = tf.random.stateless_normal((4, 6, 6, 1), seed=[3, 4])
    w = tf.random.stateless_normal((1, 6, 6, 1), seed=[5, 6])
    critic = lambda x: tf.reduce_sum(tf.tanh(x * w), axis=[1, 2, 3])[:, None]  # noqa: E731
    alpha = losses.interpolation_weights(4, tf.constant([7, 8], tf.int64))
    for scale in (128.0, 32768.0):
        assert float(losses.r1_penalty(critic, images, loss_scale=scale)) == pytest.approx(
            float(losses.r1_penalty(critic, images)), rel=1e-5)
        assert float(losses.gradient_penalty(critic, images, fakes, alpha, loss_scale=scale)) == pytest.approx(
            float(losses.gradient_penalty(critic, images, fakes, alpha)), rel=1e-5)


def test_loss_scaling_keeps_float16_penalty_gradients_from_underflowing():
    # A float16 critic whose input gradient is 1e-5·1e-3 = 1e-8 per pixel, below float16's smallest subnormal
    # (6e-8): unscaled it flushes to 0; scaled by 2¹⁵ it is representable, and unscaled again in float32.
    def critic(x):
        return tf.reduce_sum(tf.cast(x, tf.float16) * tf.constant(1e-3, tf.float16), axis=[1, 2, 3])[:, None] \
            * tf.constant(1e-5, tf.float16)

    images = tf.ones((2, 4, 4, 1))
    expected = 16 * (1e-3 * 1e-5) ** 2
    assert float(losses.r1_penalty(critic, images)) == 0.0
    assert float(losses.r1_penalty(critic, images, loss_scale=2.0**15)) == pytest.approx(expected, rel=2e-2)


def test_the_penalties_use_the_d_optimizers_loss_scale(split):
    gan = train_lib.build_gan(TINY, split.images.shape[1:])
    images = tf.constant(split.images[:8])
    assert float(gan.loss_scale()) == 1.0
    unscaled = float(_penalty_and_grads(gan, images, 0)[0])
    gan.d_optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
    gan.d_optimizer.build(gan.discriminator.trainable_variables)
    assert float(gan.loss_scale()) == float(gan.d_optimizer.dynamic_scale.numpy()) == 2.0**15
    assert float(_penalty_and_grads(gan, images, 0)[0]) == pytest.approx(unscaled, rel=1e-4)


@pytest.mark.parametrize("arch,loss", [("dcgan", "nonsaturating"), ("mlp", "wgan-gp"), ("dcgan", "hinge")])
def test_steps_compile_with_xla_the_gpu_default(split, arch, loss, monkeypatch):
    # XLA needs every shape of the lazy-R1 cond's gradient at compile time: the reduction axes and the batch,
    # which `training_batches` keeps static also when it reads from the shards (as here: a large split's path).
    # A GPU run compiles with XLA by default; this CPU run compiles the same graph, R1 and non-R1 steps both.
    monkeypatch.setattr(streams, "IN_GRAPH_BYTES", 0)
    cfg = TINY.model_copy(update={"arch": arch, "loss": loss, "jit_compile": True, "r1_weight": 1.0,
                                  "r1_every": 2, "augment": ["translation"]})
    gan = train_lib.build_gan(cfg, split.images.shape[1:])
    assert gan.jit_compile
    gan.train_steps(iter(streams.training_batches(split, 16, seed=0, epochs=1)), 3)
    assert int(gan.steps_done.numpy()) == 3
    assert all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in gan.generator.trainable_variables)
