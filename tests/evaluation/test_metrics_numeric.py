"""The numeric core against values worked out by hand on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest

from ganops.features import metrics


def test_frechet_distance_of_two_samples_of_one_gaussian_is_near_zero():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((20_000, 3)), rng.standard_normal((20_000, 3))
    assert metrics.frechet_distance(a, b) == pytest.approx(0.0, abs=2e-3)


def test_frechet_distance_in_one_dimension_is_mean_and_std_gap():
    # 1-D: (μa − μb)² + (σa − σb)². a = {−1, 1}: μ 0, σ² 2 (ddof 1); b = {2, 4, 6}: μ 4, σ² 4.
    a, b = np.array([[-1.0], [1.0]]), np.array([[2.0], [4.0], [6.0]])
    expected = 16.0 + (np.sqrt(2.0) - 2.0) ** 2
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, abs=1e-5)


def test_kid_of_one_distribution_is_zero_within_its_error_and_positive_otherwise():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2000, 8)), rng.standard_normal((2000, 8))
    kid, error = metrics.kernel_inception_distance(a, b, subset_size=500, num_subsets=50, seed=0)
    assert error > 0 and abs(kid) < 3 * error
    shifted, shifted_error = metrics.kernel_inception_distance(a, b + 0.5, subset_size=500, num_subsets=50, seed=0)
    assert shifted > 10 * shifted_error


def test_kid_of_one_subset_matches_the_unbiased_formula_by_hand():
    # d = 1, k(x, y) = (xy + 1)³. x = {0, 1}, y = {0, 2}:
    # k_xx off-diagonal: k(0,1) = 1 (twice); k_yy: k(0,2) = 1; k_xy: k(0,0)=1, k(0,2)=1, k(1,0)=1, k(1,2)=27.
    # MMD² = (2 + 2) / 2 − 2 · 30 / 4 = 2 − 15 = −13.
    x, y = np.array([[0.0], [1.0]]), np.array([[0.0], [2.0]])
    kid, error = metrics.kernel_inception_distance(x, y, subset_size=2, num_subsets=3, seed=0)
    assert kid == pytest.approx(-13.0) and error == pytest.approx(0.0)


def test_nearest_neighbours_and_knn_radii_on_a_line():
    points = np.array([[0.0], [1.0], [3.0], [7.0]])
    distances, indices = metrics.nearest_neighbours(np.array([[0.9], [6.0]]), points)
    assert indices.tolist() == [1, 3] and distances == pytest.approx([0.1, 1.0], abs=1e-6)
    # Second-nearest other point of 0, 1, 3, 7: 3, 2, 3, 6.
    assert metrics.knn_radii(points, k=2) == pytest.approx([3.0, 2.0, 3.0, 6.0])


def test_precision_recall_by_hand():
    # Real {0, 1, 2} with k = 1: radii 1, 1, 1 → manifold [−1, 3]. Generated {2.5, 10, 11}: radii 7.5, 1, 1.
    # Precision: only 2.5 lies in the real manifold → 1/3. Recall: 0, 1, 2 all lie within 7.5 of 2.5 → 1.
    real, generated = np.array([[0.0], [1.0], [2.0]]), np.array([[2.5], [10.0], [11.0]])
    precision, recall = metrics.precision_recall(real, generated, k=1)
    assert precision == pytest.approx(1 / 3) and recall == pytest.approx(1.0)


def test_chunked_distances_agree_with_direct_ones(monkeypatch):
    monkeypatch.setattr(metrics, "DISTANCE_CHUNK", 7)  # several blocks plus a ragged last one
    rng = np.random.default_rng(2)
    queries, reference = rng.standard_normal((30, 5)), rng.standard_normal((40, 5))
    direct = np.linalg.norm(queries[:, None] - reference[None], axis=2)
    distances, indices = metrics.nearest_neighbours(queries, reference)
    assert indices.tolist() == direct.argmin(axis=1).tolist()
    assert distances == pytest.approx(direct.min(axis=1), abs=1e-4)
    within = np.linalg.norm(reference[:, None] - reference[None], axis=2)
    assert metrics.knn_radii(reference, 3) == pytest.approx(np.sort(within, axis=1)[:, 3], abs=1e-4)


def test_a_large_reference_gets_fewer_rows_a_block_and_the_same_neighbours(monkeypatch):
    rng = np.random.default_rng(3)
    queries, reference = rng.standard_normal((30, 5)), rng.standard_normal((400, 5))
    expected = metrics.nearest_neighbours(queries, reference)
    monkeypatch.setattr(metrics, "DISTANCE_BLOCK_BYTES", 4 * 400 * 4)  # 4 rows of 400 float32 distances a block
    blocks = [len(block) for _, block in metrics._squared_distance_blocks(queries, reference)]
    assert blocks == [4] * 7 + [2]
    distances, indices = metrics.nearest_neighbours(queries, reference)
    assert indices.tolist() == expected[1].tolist() and distances == pytest.approx(expected[0], abs=1e-6)


def test_copying_indicators_compare_nearest_train_and_reference_distances():
    train, reference = np.array([[0.0], [10.0]]), np.array([[4.0], [6.0]])
    samples = np.array([[0.0], [1.0], [3.0], [5.0], [9.0]])
    assert metrics.copying_indicators(samples, train, reference).tolist() == [True, True, False, False, True]


def test_bootstrap_interval_of_a_real_vs_real_distance_contains_its_estimate():
    """Resampling with replacement inflates FD's small-sample bias; centred replicates do not."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((400, 16)), rng.standard_normal((400, 16))
    draws = metrics.BootstrapDraws.draw(400, 100, seed=0)
    raw = metrics.fd_replicates(a, draws, metrics.reference_replicate_stats(b, draws))
    estimate = metrics.frechet_distance(a, b)
    assert raw.min() > estimate  # every raw replicate lies above the estimate
    low, high = metrics.percentile_interval(metrics.centred_replicates(raw, estimate))
    assert low < estimate < high and high - low < estimate


def test_draws_are_seeded_and_shared():
    first, again = metrics.BootstrapDraws.draw(50, 10, seed=3), metrics.BootstrapDraws.draw(50, 10, seed=3)
    assert np.array_equal(first.sample, again.sample) and np.array_equal(first.reference, again.reference)
    assert len(first) == 10 and first.sample.shape == (10, 50) and first.sample.max() < 50


def test_fd_infinity_removes_the_one_over_n_bias():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2000, 8)), rng.standard_normal((2000, 8)) + 0.5  # true FD: 8 × 0.25 = 2
    assert metrics.fd_infinity(a, b, seed=0) == pytest.approx(2.0, abs=0.1)
    assert abs(metrics.fd_infinity(a, b, seed=0) - 2.0) < abs(metrics.frechet_distance(a, b) - 2.0) + 0.05


def test_classifier_score_spans_one_to_the_class_count():
    assert metrics.classifier_score(np.full((6, 3), 1 / 3)) == pytest.approx(1.0)
    assert metrics.classifier_score(np.eye(3)[[0, 1, 2, 0, 1, 2]]) == pytest.approx(3.0, rel=1e-6)
    assert metrics.classifier_score(np.eye(3)[[0] * 6]) == pytest.approx(1.0, rel=1e-6)


def test_class_histogram_coverage_entropy_and_per_class_accuracy():
    histogram = metrics.class_histogram(np.array([0, 0, 0, 1]), 4)
    reference = np.full(4, 0.25)
    assert histogram.tolist() == [0.75, 0.25, 0.0, 0.0]
    assert metrics.class_coverage(histogram, reference) == pytest.approx(0.5)  # classes 0 and 1 (≥ 0.125)
    assert metrics.class_entropy(reference) == pytest.approx(1.0)
    assert metrics.class_entropy(np.array([1.0, 0.0, 0.0])) == 0.0
    accuracy = metrics.per_class_accuracy(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 4)
    assert accuracy[:3].tolist() == [1.0, 1.0, 0.5] and np.isnan(accuracy[3])
