"""Distances between sets of feature vectors. Each metric is implemented once, here, and used by every
caller (evaluate stage, training monitor, registry gate)."""

from __future__ import annotations

import numpy as np
from scipy import linalg

# Added to both covariances: a tiny ridge keeps the matrix square root finite when features are
# (nearly) collinear, which happens with few samples or a collapsed generator.
COVARIANCE_EPS = 1e-6


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½), the FID formula in our classifier's feature space."""
    features_a, features_b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mean_a, mean_b = features_a.mean(axis=0), features_b.mean(axis=0)
    ridge = COVARIANCE_EPS * np.eye(features_a.shape[1])
    cov_a = np.cov(features_a, rowvar=False) + ridge
    cov_b = np.cov(features_b, rowvar=False) + ridge
    covmean = linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)  # numerical noise can add a tiny imaginary part
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * covmean)
    return float(max(distance, 0.0))
