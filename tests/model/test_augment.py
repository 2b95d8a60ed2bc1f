"""DiffAugment transformations on images whose result can be predicted."""

import numpy as np
import pytest
import tensorflow as tf

from ganops.models import augment

SEED = tf.constant([3, 4], tf.int64)


def _dot_images(count=64, side=8):
    images = -np.ones((count, side, side, 1), np.float32)
    images[:, 4, 4, 0] = 1.0  # one bright pixel in the middle
    return tf.constant(images)


def test_translation_moves_content_by_at_most_an_eighth_and_fills_with_zeros():
    moved = augment.translation(_dot_images(), SEED).numpy()
    rows, cols = np.nonzero(moved[..., 0] == 1.0)[1:]
    assert len(rows) == 64  # the bright pixel survives once per image (shift ≤ 1 < distance to the border)
    assert set(rows) <= {3, 4, 5} and set(cols) <= {3, 4, 5}
    assert len(set(zip(rows, cols))) > 1  # images are shifted differently
    shifted_in = moved[(rows != 4) | (cols != 4)]
    assert (shifted_in == 0.0).any()  # the border that came in is zero (mid-grey)


def test_cutout_zeroes_one_square_of_half_the_side():
    cut = augment.cutout(tf.ones((32, 8, 8, 1)), SEED).numpy()[..., 0]
    zeros = (cut == 0.0).sum(axis=(1, 2))
    assert zeros.max() == 16 and zeros.min() >= 4  # 4×4, clipped at the borders
    for image in cut:
        rows, cols = np.nonzero(image == 0.0)
        assert rows.max() - rows.min() < 4 and cols.max() - cols.min() < 4


def test_color_changes_brightness_and_contrast_per_image():
    images = tf.random.stateless_uniform((16, 8, 8, 3), seed=[1, 1], minval=-1, maxval=1)
    colored = augment.color(images, SEED).numpy()
    assert colored.shape == images.shape
    shifts = colored.mean(axis=(1, 2, 3)) - images.numpy().mean(axis=(1, 2, 3))
    assert np.abs(shifts).max() <= 0.5 + 1e-5 and np.std(shifts) > 0.05


def test_augmentation_is_differentiable_and_seeded():
    images = tf.Variable(tf.random.normal((8, 8, 8, 1)))
    policy = ("color", "translation", "cutout")
    with tf.GradientTape() as tape:
        out = augment.diff_augment(images, policy, SEED)
        total = tf.reduce_sum(out)
    grad = tape.gradient(total, images)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0
    np.testing.assert_array_equal(out.numpy(), augment.diff_augment(images, policy, SEED).numpy())
    assert not np.array_equal(out.numpy(), augment.diff_augment(images, policy, SEED + 1).numpy())
    assert augment.diff_augment(images, (), SEED) is images


def test_unknown_policy_is_rejected():
    with pytest.raises(ValueError, match="unknown augmentations"):
        augment.diff_augment(tf.zeros((1, 8, 8, 1)), ("flip",), SEED)
