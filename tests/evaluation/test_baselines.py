"""The known-bad generators are what their docstrings say: seeded, in range, and each broken in its one way."""

from __future__ import annotations

import numpy as np

from ganops.evaluation import baselines


def _images(count: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Low-rank, correlated images in [-1, 1] with four classes, so covariances are worth comparing."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 4
    basis = rng.normal(size=(4, 6 * 6 * 1))
    flat = np.tanh(rng.normal(size=(count, 4)) @ basis * 0.3 + labels[:, None] * 0.2 - 0.3)
    return flat.reshape(count, 6, 6, 1).astype(np.float32), labels


def test_pixel_gaussian_matches_the_train_pixel_mean_and_covariance():
    train, _ = _images()
    samples = baselines.pixel_gaussian(train, 20_000, np.random.default_rng(1), clip=False)
    assert samples.shape == (20_000, 6, 6, 1) and samples.dtype == np.float32
    flat, drawn = train.reshape(len(train), -1), samples.reshape(len(samples), -1)
    np.testing.assert_allclose(drawn.mean(axis=0), flat.mean(axis=0), atol=0.01)
    np.testing.assert_allclose(np.cov(drawn, rowvar=False), np.cov(flat, rowvar=False), atol=0.01)


def test_pixel_gaussian_clips_when_asked_and_repeats_with_its_seed():
    train, _ = _images()
    unclipped = baselines.pixel_gaussian(train, 500, np.random.default_rng(2), clip=False)
    clipped = baselines.pixel_gaussian(train, 500, np.random.default_rng(2), clip=True)
    assert unclipped.min() < -1.0 or unclipped.max() > 1.0
    assert clipped.min() >= -1.0 and clipped.max() <= 1.0
    np.testing.assert_array_equal(clipped, np.clip(unclipped, -1.0, 1.0))


def test_noisy_adds_clipped_noise_of_the_given_scale():
    flat_grey = np.zeros((200, 6, 6, 1), np.float32)
    noisy = baselines.noisy(flat_grey, np.random.default_rng(3), sigma=0.3)
    assert noisy.dtype == np.float32 and abs(noisy.std() - 0.3) < 0.01
    assert baselines.noisy(flat_grey - 1.0, np.random.default_rng(3)).min() >= -1.0


def test_blurred_smooths_each_image_and_channel_separately():
    images = np.full((2, 9, 9, 3), -1.0, np.float32)
    images[0, 4, 4, 1] = 1.0  # one bright pixel in one channel of one image
    blurred = baselines.blurred(images, sigma_px=1.0)
    assert blurred[0, 4, 4, 1] < 1.0 and blurred[0, 4, 5, 1] > -1.0  # spread to its neighbours
    np.testing.assert_array_equal(blurred[0, ..., 0], images[0, ..., 0])  # not into other channels
    np.testing.assert_array_equal(blurred[1], images[1])  # nor into other images
    assert np.isclose(blurred[0, ..., 1].mean(), images[0, ..., 1].mean())


def test_half_classes_draws_from_half_of_the_classes():
    train, labels = _images()
    rng = np.random.default_rng(4)
    sample = baselines.half_classes(train, labels, rng, 150)  # of the 200 images of 2 of the 4 classes
    rows = [np.flatnonzero((train == image).all(axis=(1, 2, 3)))[0] for image in sample]
    assert len(np.unique(labels[rows])) == 2 and len(np.unique(rows)) == 150  # distinct while there are enough
