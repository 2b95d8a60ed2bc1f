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


def _whole_array_gaussian(train: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The sampler as it was before it worked a block at a time: the figures the blocks must reproduce."""
    flat = train.reshape(len(train), -1)
    mean = flat.mean(axis=0, dtype=np.float64)
    centred = (flat - mean).astype(np.float32) / np.float32(np.sqrt(len(flat) - 1))
    samples = np.empty((n, flat.shape[1]), np.float32)
    for start in range(0, n, baselines.GAUSSIAN_CHUNK):
        rows = min(baselines.GAUSSIAN_CHUNK, n - start)
        samples[start:start + rows] = rng.standard_normal((rows, len(flat)), dtype=np.float32) @ centred
    samples += mean.astype(np.float32)
    return np.clip(samples, -1.0, 1.0).reshape(n, *train.shape[1:])


def test_pixel_gaussian_pieces_are_the_whole_array_sampler_block_by_block():
    train, _ = _images(count=2 * baselines.GAUSSIAN_CHUNK + 100)  # centred over several blocks too
    n = 2 * baselines.GAUSSIAN_CHUNK + 7
    expected = _whole_array_gaussian(train, n, np.random.default_rng(4))
    pieces = list(baselines.pixel_gaussian_pieces(train, n, np.random.default_rng(4), clip=True))
    assert [len(piece) for piece in pieces] == [baselines.GAUSSIAN_CHUNK] * 2 + [7]
    np.testing.assert_array_equal(np.concatenate(pieces), expected)
    np.testing.assert_array_equal(baselines.pixel_gaussian(train, n, np.random.default_rng(4), clip=True), expected)
    handed_over = train.copy()
    in_place = baselines.pixel_gaussian_pieces(handed_over, n, np.random.default_rng(4), clip=True,
                                               centre_in_place=True)
    np.testing.assert_array_equal(np.concatenate(list(in_place)), expected)
    assert not np.array_equal(handed_over, train)  # its memory held the centred images


def test_noisy_on_consecutive_pieces_is_noisy_on_the_whole_set():
    images, _ = _images(count=300)
    rng = np.random.default_rng(5)
    pieces = [baselines.noisy(images[start:start + 128], rng) for start in range(0, len(images), 128)]
    np.testing.assert_array_equal(np.concatenate(pieces), baselines.noisy(images, np.random.default_rng(5)))


def test_gaussian_fit_rows_keep_a_small_split_and_sample_a_large_one():
    np.testing.assert_array_equal(baselines.gaussian_fit_rows(1000, (64, 64, 3), seed=0), np.arange(1000))
    limit = baselines.GAUSSIAN_FIT_BYTES // (4 * 64 * 64 * 3)
    rows = baselines.gaussian_fit_rows(300_000, (64, 64, 3), seed=0)
    assert len(rows) == limit == 5461 and len(np.unique(rows)) == limit
    assert np.all(np.diff(rows) > 0) and rows[0] >= 0 and rows[-1] < 300_000
    np.testing.assert_array_equal(rows, baselines.gaussian_fit_rows(300_000, (64, 64, 3), seed=0))
    assert not np.array_equal(rows, baselines.gaussian_fit_rows(300_000, (64, 64, 3), seed=1))
    assert len(baselines.gaussian_fit_rows(70_000, (28, 28, 1), seed=0)) == 70_000  # MNIST: all of it


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
