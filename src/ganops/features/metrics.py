"""Every evaluation metric, each implemented once, here, on arrays: feature vectors, class probabilities or
predicted labels. The evaluate stage, the training monitor and the registry gate all call these.

The functions are pure and vectorised: pairwise distances go through one matrix product per chunk of
rows in float32, so 10,000 × 10,000 comparisons take seconds and never hold the full matrix in memory.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

# Added to both covariances: a tiny ridge keeps the matrix square root finite when features are
# (nearly) collinear, which happens with few samples or a collapsed generator.
COVARIANCE_EPS = 1e-6
# Rows per block of a pairwise-distance computation: 2,048 × 10,000 float32 distances are 80 MB. Fewer
# against a reference of over 16,384 rows (a large train split: 2,048 × 195,000 would be 1.6 GB), so that
# a block stays within DISTANCE_BLOCK_BYTES whatever the split's size.
DISTANCE_CHUNK = 2048
DISTANCE_BLOCK_BYTES = 128 * 2**20
# A class counts as covered when the generator produces it at least this fraction as often as the
# reference data does (a generator that never or rarely draws a class has dropped that mode).
COVERAGE_MIN_SHARE = 0.5
# Subset sizes of the FD∞ line fit (Chong & Forsyth use 15 between 5,000 and 50,000).
FD_INFINITY_POINTS = 10


@dataclasses.dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance of a feature set: what the Fréchet distance compares."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> GaussianStats:
        features = np.asarray(features, np.float64)
        ridge = COVARIANCE_EPS * np.eye(features.shape[1])
        return cls(features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False)) + ridge)

    @functools.cached_property
    def cov_sqrt(self) -> np.ndarray:
        """The symmetric square root of the covariance (from its eigendecomposition)."""
        eigenvalues, eigenvectors = np.linalg.eigh(self.cov)
        return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def frechet_from_stats(a: GaussianStats, b: GaussianStats) -> float:
    """‖μa − μb‖² + Tr(Σa) + Tr(Σb) − 2 Tr((Σa Σb)^½).

    Σa Σb is similar to the symmetric Σb^½ Σa Σb^½, so Tr((Σa Σb)^½) is the sum of the square roots of that
    matrix's eigenvalues: a symmetric eigenvalue call (ten times faster than a general matrix square root at
    128 features), with Σb^½ computed once per reference — the bootstrap measures several sets against each."""
    eigenvalues = np.linalg.eigvalsh(b.cov_sqrt @ a.cov @ b.cov_sqrt)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    distance = np.sum((a.mean - b.mean) ** 2) + np.trace(a.cov) + np.trace(b.cov) - 2.0 * trace_sqrt
    return float(max(distance, 0.0))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The FID formula in our featurizer's space."""
    return frechet_from_stats(GaussianStats.of(features_a), GaussianStats.of(features_b))


def reference_indices(count: int, reference_size: int, train_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the reference sample every distance compares against and of the train sample behind each floor
    (real images the reference has never met): `count` distinct rows of each, one seeded draw, so the evaluate
    stage and the training monitor draw the same way."""
    rng = np.random.default_rng(seed)
    return rng.choice(reference_size, count, replace=False), rng.choice(train_size, count, replace=False)


def floor_ratio(distance: float, floor: float) -> float:
    """A distance on the scale of its real-vs-real floor: 1 is as close as real images come; inf for a 0 floor."""
    return distance / floor if floor > 0 else float("inf")


@dataclasses.dataclass(frozen=True)
class BootstrapDraws:
    """Row indices of each bootstrap replicate, shared by every set measured against one reference: replicate
    b resamples the measured set with `sample[b]` and the reference with `reference[b]`. Sharing them makes
    the replicates of two sets (or of two generators evaluated with the same seed and n) paired."""

    sample: np.ndarray  # (replicates, n)
    reference: np.ndarray  # (replicates, n)

    @classmethod
    def draw(cls, count: int, replicates: int, seed: int) -> BootstrapDraws:
        rng = np.random.default_rng([seed, count, replicates])
        return cls(rng.integers(0, count, (replicates, count)), rng.integers(0, count, (replicates, count)))

    def __len__(self) -> int:
        return len(self.sample)


def reference_replicate_stats(reference: np.ndarray, draws: BootstrapDraws) -> list[GaussianStats]:
    """The reference side of every replicate, computed once for all the sets measured against it."""
    reference = np.asarray(reference, np.float64)
    return [GaussianStats.of(reference[rows]) for rows in draws.reference]


def fd_replicates(features: np.ndarray, draws: BootstrapDraws, reference_stats: list[GaussianStats]) -> np.ndarray:
    """The Fréchet distance of each bootstrap replicate of `features` against the resampled reference."""
    features = np.asarray(features, np.float64)
    return np.array([frechet_from_stats(GaussianStats.of(features[rows]), stats)
                     for rows, stats in zip(draws.sample, reference_stats, strict=True)])


def indicator_replicates(indicators: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The share of true `indicators` in each bootstrap replicate (`rows`: (replicates, n) indices)."""
    return np.asarray(indicators, np.float64)[rows].mean(axis=1)


def centred_replicates(replicates: np.ndarray, estimate: float) -> np.ndarray:
    """Replicates shifted so their mean is the estimate. Resampling with replacement repeats rows, which
    inflates the Fréchet distance's small-sample bias (a replicate holds about 63% distinct rows): uncorrected,
    the replicates of a real-vs-real distance lie wholly above its estimate. The shift removes the bootstrap's
    own bias estimate and keeps its spread, the estimate's variability at this n."""
    replicates = np.asarray(replicates, np.float64)
    return replicates - (replicates.mean() - estimate)


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The central `confidence` percentile interval of (centred) bootstrap replicates or subset estimates."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(np.asarray(replicates, np.float64), [tail, 100.0 - tail])
    return float(low), float(high)


def fd_infinity(features: np.ndarray, reference: np.ndarray, seed: int, points: int = FD_INFINITY_POINTS
                ) -> float:
    """FD∞ (Chong & Forsyth 2020): the Fréchet distance is biased upwards by about c/N for N samples, so fit
    FD(N) = FD∞ + c/N through random subsets of the set at `points` sizes from n/5 to n (against the whole
    reference) and read the line at 1/N = 0. NaN when n is too small for two sizes."""
    features = np.asarray(features, np.float64)
    reference_stats = GaussianStats.of(reference)
    count = len(features)
    sizes = np.unique(np.linspace(max(count // 5, 2), count, points).astype(int))
    if len(sizes) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    distances = [frechet_from_stats(GaussianStats.of(features[rng.choice(count, size, replace=False)]),
                                    reference_stats) for size in sizes]
    _, intercept = np.polyfit(1.0 / sizes, distances, 1)
    return float(intercept)


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


def kid_subset_estimates(features_a: np.ndarray, features_b: np.ndarray, subset_size: int,
                         num_subsets: int, seed: int) -> np.ndarray:
    """KID's single-subset estimates: the unbiased MMD² with a cubic polynomial kernel on `num_subsets` random
    subsets of `subset_size` rows from each side. KID is their mean; their spread is the error of *one*
    subset's estimate (wider than the mean's, since the subsets overlap). Unbiased, so estimates dip below 0
    when both sets come from one distribution."""
    a, b = np.asarray(features_a, np.float32), np.asarray(features_b, np.float32)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per side, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    return np.array([
        _mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
        for _ in range(num_subsets)
    ])


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray, subset_size: int,
                              num_subsets: int, seed: int) -> tuple[float, float]:
    """KID and the standard deviation of its single-subset estimates (`kid_subset_estimates`)."""
    estimates = kid_subset_estimates(features_a, features_b, subset_size, num_subsets, seed)
    return float(estimates.mean()), float(estimates.std(ddof=1) if num_subsets > 1 else 0.0)


def _squared_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _squared_distance_blocks(queries: np.ndarray, reference: np.ndarray):
    """Yield (start, block) with block[i, j] = ‖queries[start + i] − reference[j]‖², in float32."""
    queries, reference = np.asarray(queries, np.float32), np.asarray(reference, np.float32)
    reference_norms = _squared_norms(reference)
    rows = min(DISTANCE_CHUNK, max(1, DISTANCE_BLOCK_BYTES // (4 * max(1, len(reference)))))
    for start in range(0, len(queries), rows):
        block = queries[start:start + rows]
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


def precision_recall_indicators(real: np.ndarray, generated: np.ndarray, k: int,
                                real_radii: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample membership behind improved precision and recall (Kynkäänniemi et al. 2019): for each
    generated sample, whether it lies inside the real manifold (the union of balls reaching each real
    sample's k-th neighbour); for each real sample, whether it lies inside the generated manifold. Their
    means are precision and recall. `real_radii` (`knn_radii(real, k)`) saves recomputing them for several
    generated sets."""
    real_radii = knn_radii(real, k) if real_radii is None else real_radii
    generated_radii = knn_radii(generated, k)
    inside_real = np.zeros(len(generated), bool)
    inside_generated = np.zeros(len(real), bool)
    real_limit, generated_limit = real_radii**2, generated_radii**2
    for start, block in _squared_distance_blocks(generated, real):
        inside_real[start:start + len(block)] = (block <= real_limit[None, :]).any(axis=1)
        inside_generated |= (block <= generated_limit[start:start + len(block), None]).any(axis=0)
    return inside_real, inside_generated


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int,
                     real_radii: np.ndarray | None = None) -> tuple[float, float]:
    """Improved precision (low: unrealistic samples) and recall (low: missing modes)."""
    inside_real, inside_generated = precision_recall_indicators(real, generated, k, real_radii)
    return float(inside_real.mean()), float(inside_generated.mean())


def copying_indicators(samples: np.ndarray, train: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each sample, whether its nearest train image is nearer than its nearest reference image. A sample
    copied from train is at distance 0 from it, so a copier scores 1; new real images score what the sizes
    of the two sets make likely (above 0.5 when train is the larger), which is why it is read against a
    floor of real images measured the same way."""
    to_train, _ = nearest_neighbours(samples, train)
    to_reference, _ = nearest_neighbours(samples, reference)
    return to_train < to_reference


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
