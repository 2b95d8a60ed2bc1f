"""Known-bad "generators" made from real images: what a feature space must tell apart from real data before a
distance measured in it (and its ratio to the real-vs-real floor) can be trusted.

Each one fails in a single, known way: wrong structure with the right pixel statistics, noise, lost detail,
lost modes. Pure numpy/scipy, seeded through the `numpy.random.Generator` passed in; images are float32 NHWC
in [-1, 1] like every split.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage

# Samples per matrix product in `pixel_gaussian`: 1,024 × 10,000 float32 normal draws are 41 MB.
GAUSSIAN_CHUNK = 1024
# Float32 pixels of the training images the pixel Gaussian is fitted to (`gaussian_fit_rows`): 5,461 images at
# 64×64×3, 85,598 at 28×28 (all of MNIST's train split), every one of smaller splits. The sampler costs
# n × images × pixels multiply-adds: all of 300,000 64×64×3 images would be 15 GB and hours on 2 CPU cores.
GAUSSIAN_FIT_BYTES = 256 * 2**20


def gaussian_fit_rows(count: int, image_shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Which of a split's `count` images to fit the pixel Gaussian to: all while their float32 pixels fit in
    GAUSSIAN_FIT_BYTES, else that many drawn at random (seeded; sorted, for reading). The fit's mean and
    covariance are then those of a uniform sample, unbiased for the split's: still a Gaussian with the data's
    pixel statistics, at a cost and memory that do not grow with the split."""
    limit = max(2, GAUSSIAN_FIT_BYTES // (4 * int(np.prod(image_shape))))
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng([seed, count, limit]).choice(count, limit, replace=False))


def _draw(images: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` of `images`, distinct while there are enough of them."""
    return images[rng.choice(len(images), n, replace=len(images) < n)]


def pixel_gaussian(train_images: np.ndarray, n: int, rng: np.random.Generator, clip: bool) -> np.ndarray:
    """A Gaussian fitted to the training pixels: the mean and full covariance over the flattened pixels,
    so it has the right mean image and every pixel pair's correlation, yet no strokes, shapes or classes.
    A featurizer that is an affine map of the pixels cannot tell it from real data. `clip`: clipped to
    [-1, 1] (a generator's tanh output range), which also makes its pixel statistics slightly wrong.
    All `n` samples at once: `pixel_gaussian_pieces` gives the same ones a block at a time."""
    pieces = list(pixel_gaussian_pieces(train_images, n, rng, clip))
    if not pieces:
        return np.empty((0, *train_images.shape[1:]), np.float32)
    return np.concatenate(pieces)


def pixel_gaussian_pieces(train_images: np.ndarray, n: int, rng: np.random.Generator, clip: bool, *,
                          centre_in_place: bool = False) -> Iterator[np.ndarray]:
    """`pixel_gaussian`'s `n` samples in order, `GAUSSIAN_CHUNK` at a time, so a consumer that measures them
    piece by piece never holds all `n`. `centre_in_place`: centre `train_images` (float32) in its own memory
    instead of a copy, for a caller that hands over an array it will not read again.

    Sampled without forming the covariance: mean + Z·(X − mean)/√(N − 1), with Z standard normal of shape
    (n, N), has exactly the sample covariance of the N training images X, so 64 × 64 RGB images (12,288
    pixels) need no 12,288² matrix or decomposition, and pixels that never vary (MNIST's corners) need
    no special case. The cost is n·N·pixels multiply-adds and N·pixels floats: a caller with a large split
    fits a bounded sample of it (`gaussian_fit_rows`)."""
    flat = train_images.reshape(len(train_images), -1)
    mean = flat.mean(axis=0, dtype=np.float64)
    scale = np.float32(np.sqrt(len(flat) - 1))
    in_place = centre_in_place and flat.dtype == np.float32 and flat.flags.writeable
    centred = flat if in_place else np.empty(flat.shape, np.float32)
    for start in range(0, len(flat), GAUSSIAN_CHUNK):  # a block at a time: no float64 copy of the images
        block = slice(start, start + GAUSSIAN_CHUNK)
        centred[block] = (flat[block] - mean).astype(np.float32) / scale
    mean32 = mean.astype(np.float32)
    for start in range(0, n, GAUSSIAN_CHUNK):
        rows = min(GAUSSIAN_CHUNK, n - start)
        samples = rng.standard_normal((rows, len(flat)), dtype=np.float32) @ centred
        samples += mean32
        if clip:
            np.clip(samples, -1.0, 1.0, out=samples)
        yield samples.reshape(rows, *train_images.shape[1:])


def noisy(images: np.ndarray, rng: np.random.Generator, sigma: float = 0.3) -> np.ndarray:
    """The images plus independent Gaussian pixel noise of standard deviation `sigma` on the [-1, 1] scale
    (0.3 there is 0.15 of the full range), clipped back to [-1, 1]: right content, visibly grainy. Called
    on consecutive pieces of a set, it gives the pieces of the whole set's result (the draws run in order)."""
    noise = rng.normal(0.0, sigma, images.shape)
    return np.clip(images + noise, -1.0, 1.0).astype(np.float32)


def blurred(images: np.ndarray, sigma_px: float = 1.0) -> np.ndarray:
    """Each image and channel blurred by a Gaussian of `sigma_px` pixels (edges reflected): right content
    and layout, lost fine detail, like a generator that produces over-smoothed images."""
    return ndimage.gaussian_filter(images.astype(np.float32), sigma=(0.0, sigma_px, sigma_px, 0.0),
                                   mode="reflect")


def half_classes(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` images drawn only from a random half of the classes (rounded down, at least one): perfect images,
    partial mode collapse. Pixel- and sample-quality metrics miss it; distribution distances and recall
    should not."""
    classes = np.unique(labels)
    kept = rng.choice(classes, max(len(classes) // 2, 1), replace=False)
    return _draw(images[np.isin(labels, kept)], n, rng)
