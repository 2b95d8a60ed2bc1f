import numpy as np
import pytest

from ganops.features import metrics


def test_frechet_distance_of_identical_gaussians_is_near_zero():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((5000, 4))
    assert metrics.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_closed_form_for_shifted_scaled_gaussians():
    # N(0, I) vs N(m, s²I) in d dims: ‖m‖² + d (1 − s)².
    rng = np.random.default_rng(1)
    d, shift, scale = 3, 2.0, 3.0
    a = rng.standard_normal((200_000, d))
    b = shift + scale * rng.standard_normal((200_000, d))
    expected = d * shift**2 + d * (1 - scale) ** 2
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=0.02)
