"""GAN losses as pure functions of discriminator logits, and the gradient penalties.

Each loss returns a scalar mean over its batch. Logits are cast to float32 first so that a mixed-precision
discriminator (float16 logits) does not overflow in softplus or the squares of the penalties.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops


def _f32(x):
    return ops.cast(x, "float32")


def nonsaturating_d_loss(real_logits, fake_logits):
    """Discriminator cross-entropy: real → 1, fake → 0 (softplus form, stable for any logit)."""
    return ops.mean(ops.softplus(-_f32(real_logits))) + ops.mean(ops.softplus(_f32(fake_logits)))


def nonsaturating_g_loss(fake_logits):
    """Generator maximises log D(G(z)) rather than minimising log(1 − D(G(z))), which saturates."""
    return ops.mean(ops.softplus(-_f32(fake_logits)))


def wasserstein_d_loss(real_logits, fake_logits):
    """Critic loss of WGAN(-GP): E[D(fake)] − E[D(real)]; the Lipschitz constraint comes from the penalty."""
    return ops.mean(_f32(fake_logits)) - ops.mean(_f32(real_logits))


def wasserstein_g_loss(fake_logits):
    return -ops.mean(_f32(fake_logits))


def hinge_d_loss(real_logits, fake_logits):
    """Hinge loss (SAGAN, BigGAN): only logits inside the margin ±1 produce gradients."""
    return (ops.mean(ops.relu(1.0 - _f32(real_logits)))
            + ops.mean(ops.relu(1.0 + _f32(fake_logits))))


def hinge_g_loss(fake_logits):
    return -ops.mean(_f32(fake_logits))


LOSSES = {
    "nonsaturating": (nonsaturating_d_loss, nonsaturating_g_loss),
    "wgan-gp": (wasserstein_d_loss, wasserstein_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
}


def scaled_logit_sum(logits, loss_scale=1.0):
    """ΣD(x) times the loss scale: what `squared_input_gradient_norm` differentiates. Compute it inside the
    tape that watches the images."""
    return tf.reduce_sum(tf.cast(logits, tf.float32)) * loss_scale


def squared_input_gradient_norm(tape, scaled_sum, images, loss_scale=1.0):
    """‖∂ΣD(x)/∂x‖² per sample, from a `tape` that watched `images` while it computed
    `scaled_sum = scaled_logit_sum(D(images), loss_scale)`.

    Under mixed_float16 this inner backward pass runs in float16 and would underflow like any other: it is
    taken of the sum times `loss_scale` (the D optimizer's, 1 without loss scaling) and divided by it after.
    A scale so large that it overflows makes the norm inf: the outer gradients are then not finite and the
    LossScaleOptimizer skips the step and lowers its scale, as for any overflow.
    """
    grads = tf.cast(tape.gradient(scaled_sum, images), tf.float32) / loss_scale
    # Static axes: XLA needs the reduction's shape at compile time, also in the gradient of the lazy-R1 cond.
    return tf.reduce_sum(tf.square(grads), axis=list(range(1, grads.shape.rank)))


def _squared_gradient_norm(critic, images, extra_inputs, loss_scale):
    """A nested tape around a critic call, so the outer tape differentiates the penalty too."""
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = critic([images, *extra_inputs] if extra_inputs else images)
        scaled_sum = scaled_logit_sum(logits, loss_scale)
    return squared_input_gradient_norm(tape, scaled_sum, images, loss_scale)


def interpolation_weights(batch, seed):
    """WGAN-GP's α, one per sample, uniform in [0, 1] (shape (batch, 1, 1, 1) to broadcast over NHWC)."""
    return tf.random.stateless_uniform((batch, 1, 1, 1), seed=seed, minval=0.0, maxval=1.0)


def gradient_penalty(critic, real_images, fake_images, alpha, extra_inputs=(), loss_scale=1.0):
    """WGAN-GP (Gulrajani et al. 2017): E[(‖∇D(x̂)‖ − 1)²] at x̂ = α·real + (1 − α)·fake.

    `alpha` comes from `interpolation_weights`: uniform in [0, 1] (the keras.io example draws it from a
    normal distribution, which puts x̂ outside the segment between the two samples).
    """
    real_images = tf.cast(real_images, tf.float32)
    fake_images = tf.cast(fake_images, tf.float32)
    interpolated = fake_images + alpha * (real_images - fake_images)
    norms = tf.sqrt(_squared_gradient_norm(critic, interpolated, extra_inputs, loss_scale) + 1e-12)
    return tf.reduce_mean(tf.square(norms - 1.0))


def r1_penalty(critic, real_images, extra_inputs=(), loss_scale=1.0):
    """R1 (Mescheder et al. 2018): E[‖∇D(real)‖²]; the caller scales it by γ/2. (Training takes it from the
    D loss's own pass over the reals instead: `GAN.penalties_of`.)"""
    real_images = tf.cast(real_images, tf.float32)
    return tf.reduce_mean(_squared_gradient_norm(critic, real_images, extra_inputs, loss_scale))
