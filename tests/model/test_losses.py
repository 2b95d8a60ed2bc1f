"""Losses and penalties against values worked out by hand."""

import numpy as np
import pytest
import tensorflow as tf

from ganops.models import losses


def _t(values):
    return tf.constant(values, tf.float32)


def test_nonsaturating_losses_are_cross_entropies():
    real, fake = _t([[2.0], [0.0]]), _t([[-1.0], [3.0]])
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    expected_d = np.mean(softplus(-np.array([2.0, 0.0]))) + np.mean(softplus(np.array([-1.0, 3.0])))
    assert float(losses.nonsaturating_d_loss(real, fake)) == pytest.approx(expected_d, rel=1e-6)
    assert float(losses.nonsaturating_g_loss(fake)) == pytest.approx(np.mean(softplus(-np.array([-1.0, 3.0]))))
    # Stable for huge logits, where a sigmoid-then-log form would give inf.
    assert np.isfinite(float(losses.nonsaturating_d_loss(_t([[-1e4]]), _t([[1e4]]))))


def test_hinge_only_penalises_logits_inside_the_margin():
    assert float(losses.hinge_d_loss(_t([[2.0], [0.5]]), _t([[-3.0], [0.0]]))) == pytest.approx(
        np.mean([0.0, 0.5]) + np.mean([0.0, 1.0]))
    assert float(losses.hinge_g_loss(_t([[1.0], [3.0]]))) == pytest.approx(-2.0)


def test_wasserstein_losses():
    assert float(losses.wasserstein_d_loss(_t([[3.0], [1.0]]), _t([[0.0], [-2.0]]))) == pytest.approx(-3.0)
    assert float(losses.wasserstein_g_loss(_t([[0.0], [-2.0]]))) == pytest.approx(1.0)


def test_mixed_precision_logits_are_computed_in_float32():
    big = tf.constant([[300.0]], tf.float16)  # 300² overflows float16
    assert np.isfinite(float(losses.wasserstein_d_loss(big, -big)))
    assert losses.nonsaturating_d_loss(big, big).dtype == tf.float32


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = Σ w·x has gradient w everywhere: the penalty is (‖w‖ − 1)², R1 is ‖w‖².
    w = tf.constant(np.full((1, 2, 2, 1), 1.5), tf.float32)
    critic = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])[:, None]  # noqa: E731
    real, fake = tf.random.normal((4, 2, 2, 1)), tf.random.normal((4, 2, 2, 1))
    alpha = losses.interpolation_weights(4, tf.constant([1, 2], tf.int64))
    assert float(losses.gradient_penalty(critic, real, fake, alpha)) == pytest.approx((3.0 - 1.0) ** 2, rel=1e-5)
    assert float(losses.r1_penalty(critic, real)) == pytest.approx(9.0, rel=1e-5)


def test_gradient_penalty_is_taken_between_real_and_fake():
    # D(x) = ½‖x‖² has gradient x: with α = 1 the point is the real image, with α = 0 the fake one.
    critic = lambda x: 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])[:, None]  # noqa: E731
    real, fake = tf.fill((1, 1, 1, 1), 3.0), tf.fill((1, 1, 1, 1), 0.5)
    assert float(losses.gradient_penalty(critic, real, fake, tf.ones((1, 1, 1, 1)))) == pytest.approx(4.0)
    assert float(losses.gradient_penalty(critic, real, fake, tf.zeros((1, 1, 1, 1)))) == pytest.approx(0.25)


def test_interpolation_weights_are_uniform_on_the_unit_interval():
    alpha = losses.interpolation_weights(20_000, tf.constant([0, 7], tf.int64)).numpy().ravel()
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert alpha.mean() == pytest.approx(0.5, abs=0.01)
    assert np.histogram(alpha, bins=4, range=(0, 1))[0] / len(alpha) == pytest.approx([0.25] * 4, abs=0.01)
