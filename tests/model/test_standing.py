"""Standing BatchNorm statistics: after the recompute, each BN layer's moving mean and variance are the
statistics of the input that layer receives when the generator samples with `training=False`, measured
independently here on a large fresh batch; generators without BN are left alone."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from ganops.models import networks, sampling, standing

LATENT_DIM = 16
IMAGE_SHAPE = (8, 8, 1)


def _dcgan(num_classes: int = 0) -> keras.Model:
    keras.utils.set_random_seed(0)
    generator = networks.build_generator("dcgan", LATENT_DIM, IMAGE_SHAPE, 8, num_classes)
    for layer in generator.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            # Stored statistics that fit nothing, as an average over past weights would.
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 3.0, np.float32))
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 50.0, np.float32))
            layer.gamma.assign(np.linspace(0.5, 2.0, layer.gamma.shape[0]).astype(np.float32))
            layer.beta.assign(np.linspace(-0.5, 0.5, layer.beta.shape[0]).astype(np.float32))
    return generator


def _moving_statistics(generator: keras.Model) -> list[np.ndarray]:
    return [variable.numpy() for layer in standing.batchnorm_layers(generator)
            for variable in (layer.moving_mean, layer.moving_variance)]


def _input_statistics(generator: keras.Model, layer, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of `layer`'s input on one large batch, sampled as `sampling.sample` samples."""
    latent = np.random.default_rng(seed).standard_normal((count, LATENT_DIM)).astype(np.float32)
    classes = sampling.num_classes(generator)
    inputs = {"latent": latent, "label": sampling.balanced_labels(count, classes)} if classes else latent
    values = np.asarray(keras.Model(generator.input, layer.input)(inputs, training=False), np.float64)
    axes = tuple(range(values.ndim - 1))
    return values.mean(axis=axes), values.var(axis=axes)


@pytest.mark.parametrize("num_classes", [0, 3])
def test_each_layer_gets_the_statistics_of_its_input_at_sampling_time(num_classes):
    generator = _dcgan(num_classes)
    others = [w.numpy() for layer in generator.layers if not isinstance(layer, keras.layers.BatchNormalization)
              for w in layer.weights]
    recomputed = standing.recompute_batchnorm_statistics(generator, seed=1)  # 32 × 256 latents

    layers = standing.batchnorm_layers(generator)
    assert recomputed == [layer.name for layer in layers] and len(layers) == 3
    for layer in layers:
        # Measured after the recompute, so layers further up normalise as they do when sampling.
        mean, variance = _input_statistics(generator, layer, count=16384, seed=99)
        std = np.sqrt(variance)
        # Sampling error of 8192 against 16384 samples is ~0.014 std per channel: 0.1 is ~7 of those.
        np.testing.assert_array_less(np.abs(layer.moving_mean.numpy() - mean), 0.1 * std)
        np.testing.assert_allclose(layer.moving_variance.numpy(), variance, rtol=0.15)
        # gamma and beta are trained weights: untouched.
        np.testing.assert_array_equal(layer.gamma.numpy(),
                                      np.linspace(0.5, 2.0, layer.gamma.shape[0]).astype(np.float32))
    after = [w.numpy() for layer in generator.layers if not isinstance(layer, keras.layers.BatchNormalization)
             for w in layer.weights]
    for before, now in zip(others, after, strict=True):
        np.testing.assert_array_equal(before, now)


def test_deterministic_given_the_seed_and_a_fixed_point():
    first, second, other = _dcgan(), _dcgan(), _dcgan()
    for generator, seed in ((first, 5), (second, 5), (other, 6)):
        standing.recompute_batchnorm_statistics(generator, seed=seed, batches=2, batch_size=64)
    for mine, theirs, others in zip(_moving_statistics(first), _moving_statistics(second), _moving_statistics(other),
                                    strict=True):
        np.testing.assert_array_equal(mine, theirs)
        assert not np.array_equal(mine, others)
    # Each layer's input depends only on the layers before it: recomputing with the same seed changes nothing.
    standing.recompute_batchnorm_statistics(first, seed=5, batches=2, batch_size=64)
    for again, theirs in zip(_moving_statistics(first), _moving_statistics(second), strict=True):
        np.testing.assert_allclose(again, theirs, rtol=1e-5, atol=1e-7)


def test_copy_leaves_the_ema_generator_alone():
    generator = _dcgan()
    before = generator.get_weights()
    copy = standing.with_standing_statistics(generator, seed=0, batches=2, batch_size=64)
    assert copy is not generator and copy.name == generator.name
    assert [getattr(t, "name", "") for t in copy.inputs] == ["latent"]
    for kept, now in zip(before, generator.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, now)
    assert all(np.abs(mean - 3.0).max() > 0.5 for mean in _moving_statistics(copy)[::2])
    images = sampling.sample(copy, 16, seed=0)
    assert images.shape == (16, *IMAGE_SHAPE) and np.isfinite(images).all()


@pytest.mark.parametrize("num_classes", [0, 3])
def test_generator_without_batchnorm_is_unchanged(num_classes):
    generator = networks.build_generator("mlp", LATENT_DIM, IMAGE_SHAPE, 8, num_classes)
    before = generator.get_weights()
    assert standing.recompute_batchnorm_statistics(generator, seed=0) == []
    assert standing.with_standing_statistics(generator, seed=0) is generator
    for kept, now in zip(before, generator.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, now)


@pytest.mark.parametrize(("side", "batches"), [(8, 32), (28, 32), (32, 24), (64, 6), (128, 4)])
def test_larger_images_get_fewer_calibration_latents(side, batches):
    """The full 32 × 256 latents up to 28×28; beyond, in proportion to the pixels, never under 4 batches."""
    generator = networks.build_generator("dcgan", LATENT_DIM, (side, side, 1), 4)
    assert standing.default_batches(generator) == batches
