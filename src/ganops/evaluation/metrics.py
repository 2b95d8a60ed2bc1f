"""Every evaluation metric, each implemented once, here, on arrays: feature vectors, class probabilities or
predicted labels. The evaluate stage, the training monitor and the registry gate all call these.

The functions are pure and vectorised: pairwise distances go through one matrix product per chunk of
rows in float32, so 10,000 × 10,000 comparisons take seconds and never hold the full matrix in memory.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

# Added to both covariances: a tiny ridge keeps the matrix square root finite when features are
# (nearly) collinear, which happens with few samples or a collapsed generator.
COVARIANCE_EPS = 1e-6
# Rows per block of a pairwise-distance computation: 2,048 × 10,000 float32 distances are 80 MB.
DISTANCE_CHUNK = 2048
# A class counts as covered when the generator produces it at least this fraction as often as the
# reference data does (a generator that never or rarely draws a class has dropped that mode).
COVERAGE_MIN_SHARE = 0.5


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½), the FID formula in our featurizer's space."""
    features_a, features_b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mean_a, mean_b = features_a.mean(axis=0), features_b.mean(axis=0)
    ridge = COVARIANCE_EPS * np.eye(features_a.shape[1])
    cov_a = np.atleast_2d(np.cov(features_a, rowvar=False)) + ridge
    cov_b = np.atleast_2d(np.cov(features_b, rowvar=False)) + ridge
    covmean = linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)  # numerical noise can add a tiny imaginary part
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * covmean)
    return float(max(distance, 0.0))


def reference_indices(count: int, holdout_size: int, train_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the holdout sample every distance compares against and of the train sample behind each floor
    (real images the reference has never met): `count` distinct rows of each, one seeded draw, so the evaluate
    stage and the training monitor compare against the same reference and floor."""
    rng = np.random.default_rng(seed)
    return rng.choice(holdout_size, count, replace=False), rng.choice(train_size, count, replace=False)


def floor_ratio(distance: float, floor: float) -> float:
    """A distance on the scale of its real-vs-real floor: 1 is as close as real images come; inf for a 0 floor."""
    return distance / floor if floor > 0 else float("inf")


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # (x·y / d + 1)³: the kernel of the KID paper (Bińkowski et al. 2018), no bandwidth to tune.
    # In place and by multiplication (`** 3` is a slow general power): this is most of KID's time.
    kernel = x @ y.T
    kernel *= 1.0 / x.shape[1]
    kernel += 1.0
    cube = kernel * kernel
    cube *= kernel
    return cube


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m = len(x)
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    # Kernels in float32, sums in float64: MMD² is a small difference of large sums.
    sum_xx = k_xx.sum(dtype=np.float64) - np.trace(k_xx, dtype=np.float64)
    sum_yy = k_yy.sum(dtype=np.float64) - np.trace(k_yy, dtype=np.float64)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum(dtype=np.float64) / (m * m))


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray, subset_size: int,
                              num_subsets: int, seed: int) -> tuple[float, float]:
    """KID: the unbiased MMD² with a cubic polynomial kernel, averaged over `num_subsets` random subsets of
    `subset_size` rows from each side. Returns (mean, standard deviation over subsets): the second is the
    standard error of one subset's estimate, the scale on which a KID near 0 is "0 within its error".
    Unbiased, so it can dip below 0 when both sets come from one distribution."""
    a, b = np.asarray(features_a, np.float32), np.asarray(features_b, np.float32)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per side, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    estimates = np.array([
        _mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
        for _ in range(num_subsets)
    ])
    return float(estimates.mean()), float(estimates.std(ddof=1) if num_subsets > 1 else 0.0)


def _squared_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _squared_distance_blocks(queries: np.ndarray, reference: np.ndarray):
    """Yield (start, block) with block[i, j] = ‖queries[start + i] − reference[j]‖², in float32."""
    queries, reference = np.asarray(queries, np.float32), np.asarray(reference, np.float32)
    reference_norms = _squared_norms(reference)
    for start in range(0, len(queries), DISTANCE_CHUNK):
        block = queries[start:start + DISTANCE_CHUNK]
        # One allocation per block, the rest in place: at 10,000 columns the element-wise passes cost
        # more than the matrix product.
        squared = block @ reference.T
        squared *= -2.0
        squared += _squared_norms(block)[:, None]
        squared += reference_norms[None, :]
        yield start, np.maximum(squared, 0.0, out=squared)


def nearest_neighbours(queries: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, (Euclidean distance to, index of) its nearest row of `reference`."""
    distances = np.empty(len(queries), np.float32)
    indices = np.empty(len(queries), np.int64)
    for start, block in _squared_distance_blocks(queries, reference):
        nearest = block.argmin(axis=1)
        indices[start:start + len(block)] = nearest
        distances[start:start + len(block)] = np.sqrt(block[np.arange(len(block)), nearest])
    return distances, indices


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest *other* row of the same set: the radius of its ball in
    the k-NN manifold estimate of Kynkäänniemi et al. (2019)."""
    if not 1 <= k < len(features):
        raise ValueError(f"k must lie in 1..{len(features) - 1} for {len(features)} samples, got {k}")
    radii = np.empty(len(features), np.float32)
    for start, block in _squared_distance_blocks(features, features):
        # Position 0 of each sorted row is the row itself (distance 0), so position k is the k-th neighbour.
        radii[start:start + len(block)] = np.sqrt(np.partition(block, k, axis=1)[:, k])
    return radii


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int,
                     real_radii: np.ndarray | None = None) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): precision is the share of generated samples
    inside the real manifold (the union of balls reaching each real sample's k-th neighbour); recall is the
    share of real samples inside the generated manifold. Low precision: unrealistic samples; low recall:
    missing modes. `real_radii` (`knn_radii(real, k)`) saves recomputing them for several generated sets."""
    real_radii = knn_radii(real, k) if real_radii is None else real_radii
    generated_radii = knn_radii(generated, k)
    inside_real = np.zeros(len(generated), bool)
    inside_generated = np.zeros(len(real), bool)
    real_limit, generated_limit = real_radii**2, generated_radii**2
    for start, block in _squared_distance_blocks(generated, real):
        inside_real[start:start + len(block)] = (block <= real_limit[None, :]).any(axis=1)
        inside_generated |= (block <= generated_limit[start:start + len(block), None]).any(axis=0)
    return float(inside_real.mean()), float(inside_generated.mean())


def memorisation_threshold(holdout_to_train: np.ndarray, quantile: float) -> float:
    """The typical distance from a new real image to its nearest training image (the median for 0.5)."""
    return float(np.quantile(holdout_to_train, quantile))


def memorisation_fraction(to_train: np.ndarray, threshold: float) -> float:
    """Share of samples whose nearest training image is closer than `threshold`. New real images score the
    quantile the threshold was taken at (0.5 for the median); a generator that copies its training images
    scores near 1."""
    return float(np.mean(np.asarray(to_train) < threshold))


def classifier_score(probabilities: np.ndarray) -> float:
    """The Inception Score with our classifier: exp(E_x KL(p(y|x) ‖ p(y))). From 1 (every sample gets the
    same uncertain prediction) up to the class count (confident predictions, all classes equally often)."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


def class_histogram(predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Share of samples per class (sums to 1)."""
    counts = np.bincount(np.asarray(predicted), minlength=num_classes).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def class_coverage(histogram: np.ndarray, reference_histogram: np.ndarray) -> float:
    """Share of the reference's classes that the samples produce at least COVERAGE_MIN_SHARE times as
    often as the reference does: 1 when no mode is missing, 1/C for a single-class collapse."""
    present = reference_histogram > 0
    covered = histogram[present] >= COVERAGE_MIN_SHARE * reference_histogram[present]
    return float(covered.mean())


def class_entropy(histogram: np.ndarray) -> float:
    """Entropy of the class histogram divided by log(C): 1 when all classes are equally frequent, 0 for one."""
    p = histogram[histogram > 0]
    return float(max(-(p * np.log(p)).sum() / np.log(len(histogram)), 0.0)) if len(histogram) > 1 else 0.0


def per_class_accuracy(predicted: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy for each target class (NaN for a class without samples)."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    correct = np.bincount(target, weights=(predicted == target), minlength=num_classes)
    total = np.bincount(target, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / np.maximum(total, 1), np.nan)
