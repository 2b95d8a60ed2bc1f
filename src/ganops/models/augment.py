"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for training on small datasets.

The same random transformations are applied to real and generated images before the discriminator sees
them, so D cannot memorise the few real images, and they are differentiable, so the generator's gradient
passes through them (the generator never learns to produce augmented images: its outputs are not
augmented anywhere else). Images are NHWC in [-1, 1].

Randomness is stateless: every call takes a (2,) int seed drawn from the GAN's augmentation
`SeedGenerator`, whose state is part of each checkpoint, so a resumed run draws the same augmentations.
"""

from __future__ import annotations

from typing import get_args

import tensorflow as tf

from ganops.archs import Augmentation

POLICIES = get_args(Augmentation)  # color, translation, cutout: applied in this order
TRANSLATION_RATIO = 0.125  # shift by up to 1/8 of the side, as in the paper
CUTOUT_RATIO = 0.5  # erase a square of half the side, as in the paper


def _uniform(shape, seed, minval=0.0, maxval=1.0, dtype=tf.float32):
    return tf.random.stateless_uniform(shape, seed=seed, minval=minval, maxval=maxval, dtype=dtype)


def color(images, seed):
    """Random brightness (±0.5), saturation (×0…2) and contrast (×0.5…1.5) per image."""
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    images = images + (_uniform([batch, 1, 1, 1], seeds[0]) - 0.5)
    mean = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - mean) * (_uniform([batch, 1, 1, 1], seeds[1]) * 2.0) + mean
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * (_uniform([batch, 1, 1, 1], seeds[2]) + 0.5) + mean


def translation(images, seed, ratio: float = TRANSLATION_RATIO):
    """Shift each image by up to `ratio` of its side in x and y, filling with zeros (mid-grey)."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    shift_h, shift_w = max(1, int(height * ratio + 0.5)), max(1, int(width * ratio + 0.5))
    seeds = tf.random.experimental.stateless_split(seed, 2)
    dy = _uniform([batch, 1], seeds[0], -shift_h, shift_h + 1, tf.int32)
    dx = _uniform([batch, 1], seeds[1], -shift_w, shift_w + 1, tf.int32)
    padded = tf.pad(images, [[0, 0], [shift_h, shift_h], [shift_w, shift_w], [0, 0]])
    rows = tf.range(height)[None, :] + shift_h + dy  # (batch, height) source rows
    cols = tf.range(width)[None, :] + shift_w + dx
    shifted = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(shifted, cols, axis=2, batch_dims=1)


def cutout(images, seed, ratio: float = CUTOUT_RATIO):
    """Zero (mid-grey) one square of `ratio` × side at a random place in each image."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    size_h, size_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    top = _uniform([batch, 1, 1], seeds[0], 0, height + (1 - size_h % 2), tf.int32) - size_h // 2
    left = _uniform([batch, 1, 1], seeds[1], 0, width + (1 - size_w % 2), tf.int32) - size_w // 2
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return images * tf.cast(~inside, images.dtype)[..., None]


_FUNCTIONS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(images, policy, seed):
    """Apply each transformation named in `policy`, in the paper's order (color, translation, cutout)."""
    if not policy:
        return images
    images = tf.cast(images, tf.float32)  # random factors are float32; D casts to its compute dtype
    unknown = set(policy) - set(POLICIES)
    if unknown:
        raise ValueError(f"unknown augmentations {sorted(unknown)}; choose from {POLICIES}")
    seeds = tf.random.experimental.stateless_split(seed, len(POLICIES))
    for i, name in enumerate(POLICIES):
        if name in policy:
            images = _FUNCTIONS[name](images, seeds[i])
    return images
