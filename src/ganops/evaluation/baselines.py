"""Known-bad "generators" made from real images: what a feature space must tell apart from real data before a
distance measured in it (and its ratio to the real-vs-real floor) can be trusted.

Each one fails in a single, known way: wrong structure with the right pixel statistics, noise, lost detail,
lost modes. Pure numpy/scipy, seeded through the `numpy.random.Generator` passed in; images are float32 NHWC
in [-1, 1] like every split.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Samples per matrix product in `pixel_gaussian`: 1,024 × 10,000 float32 normal draws are 41 MB.
GAUSSIAN_CHUNK = 1024


def _draw(images: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` of `images`, distinct while there are enough of them."""
    return images[rng.choice(len(images), n, replace=len(images) < n)]


def pixel_gaussian(train_images: np.ndarray, n: int, rng: np.random.Generator, clip: bool) -> np.ndarray:
    """A Gaussian fitted to the training pixels: the mean and full covariance over the flattened pixels,
    so it has the right mean image and every pixel pair's correlation, yet no strokes, shapes or classes.
    A featurizer that is an affine map of the pixels cannot tell it from real data. `clip`: clipped to
    [-1, 1] (a generator's tanh output range), which also makes its pixel statistics slightly wrong.

    Sampled without forming the covariance: mean + Z·(X − mean)/√(N − 1), with Z standard normal of shape
    (n, N), has exactly the sample covariance of the N training images X, so 64 × 64 RGB images (12,288
    pixels) need no 12,288² matrix or decomposition, and pixels that never vary (MNIST's corners) need
    no special case."""
    flat = train_images.reshape(len(train_images), -1)
    mean = flat.mean(axis=0, dtype=np.float64)
    centred = (flat - mean).astype(np.float32) / np.float32(np.sqrt(len(flat) - 1))
    samples = np.empty((n, flat.shape[1]), np.float32)
    for start in range(0, n, GAUSSIAN_CHUNK):
        rows = min(GAUSSIAN_CHUNK, n - start)
        samples[start:start + rows] = rng.standard_normal((rows, len(flat)), dtype=np.float32) @ centred
    samples += mean.astype(np.float32)
    if clip:
        np.clip(samples, -1.0, 1.0, out=samples)
    return samples.reshape(n, *train_images.shape[1:])


def noisy(images: np.ndarray, rng: np.random.Generator, sigma: float = 0.3) -> np.ndarray:
    """The images plus independent Gaussian pixel noise of standard deviation `sigma` on the [-1, 1] scale
    (0.3 there is 0.15 of the full range), clipped back to [-1, 1]: right content, visibly grainy."""
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
