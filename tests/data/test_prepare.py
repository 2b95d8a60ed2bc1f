import numpy as np
import pytest

from ganops import artifacts
from ganops.config import DataConfig
from ganops.data import prepare
from ganops.errors import GanopsError


def test_digits_prepare_writes_scaled_disjoint_splits(prepared_digits):
    info = artifacts.read_dataset_info(prepared_digits / prepare.INFO_FILE)
    train = artifacts.read_split(prepared_digits / prepare.TRAIN_FILE)
    holdout = artifacts.read_split(prepared_digits / prepare.HOLDOUT_FILE)
    summary = artifacts.read_summary(prepared_digits / prepare.SUMMARY_FILE)

    assert (info.train_count, info.holdout_count) == (240, 60)
    assert train.images.shape == (240, 8, 8, 1) and train.images.dtype == np.float32
    assert train.images.min() == -1.0 and train.images.max() == 1.0
    assert set(np.unique(holdout.labels)) == set(range(10))  # stratified split keeps every class
    assert list(summary.columns) == list(artifacts.SUMMARY_COLUMNS)
    assert len(summary) == 300
    assert (summary["orig_height"] == 8).all()
    train_hashes = set(summary.loc[summary.split == "train", "hash"])
    holdout_hashes = set(summary.loc[summary.split == "holdout", "hash"])
    assert len(train_hashes & holdout_hashes) <= 1  # digits has a few exact duplicates by nature


def test_prepare_is_seeded(tmp_path):
    first = prepare.run(DataConfig(max_images=100, seed=3), tmp_path / "a")
    second = prepare.run(DataConfig(max_images=100, seed=3), tmp_path / "b")
    other = prepare.run(DataConfig(max_images=100, seed=4), tmp_path / "c")
    assert first.data_hash == second.data_hash != other.data_hash


def test_resize_to_28_uses_one_filter(tmp_path):
    info = prepare.run(DataConfig(max_images=50, image_size=28, channels=3), tmp_path / "p")
    split = artifacts.read_split(tmp_path / "p" / prepare.TRAIN_FILE)
    assert info.image_shape == (28, 28, 3)
    assert split.images.shape[1:] == (28, 28, 3)
    assert -1.0 <= split.images.min() and split.images.max() <= 1.0


def test_prepare_records_where_the_images_came_from(prepared_digits):
    provenance = artifacts.read_json(prepared_digits / prepare.SOURCE_FILE)
    assert provenance == {"source": "digits", "path": None, "labels_path": None, "images_read": 1797,
                          "classes": None, "skipped": []}


@pytest.mark.parametrize(("count", "classes", "fraction", "seed"),
                         [(300, 10, 0.2, 0), (1797, 10, 0.2, 3), (101, 3, 0.33, 7), (50, 1, 0.1, 1),
                          (40, 4, 0.25, 2), (60, None, 0.2, 5)])
def test_split_matches_scikit_learn(count, classes, fraction, seed):
    """Our split draws exactly what train_test_split draws (it was the implementation before)."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    labels = None if classes is None else rng.integers(0, classes, count) * 2  # class numbers with gaps
    if labels is not None:
        labels[:2 * classes] = np.repeat(np.arange(classes) * 2, 2)  # ≥ 2 images per class
    train, holdout = prepare.split_indices(count, labels, DataConfig(holdout_fraction=fraction, seed=seed))
    expected = train_test_split(np.arange(count), test_size=fraction, random_state=seed, stratify=labels)
    np.testing.assert_array_equal(train, np.sort(expected[0]))
    np.testing.assert_array_equal(holdout, np.sort(expected[1]))


def test_split_without_stratification_when_a_class_has_one_image():
    labels = np.array([0] * 20 + [1])
    train, holdout = prepare.split_indices(21, labels, DataConfig(holdout_fraction=0.2, seed=0))
    assert (len(train), len(holdout)) == (16, 5) and not set(train) & set(holdout)
    with pytest.raises(GanopsError, match="data.holdout_fraction: cannot split 20 images of 10 classes into 18 "
                                          "train and 2 holdout images with every class in both"):
        prepare.split_indices(20, np.arange(10).repeat(2), DataConfig(holdout_fraction=0.1))


def test_statistics_and_hashes_match_numpy_per_image():
    rng = np.random.default_rng(0)
    images = rng.random((2500, 6, 6, 1), dtype=np.float32)  # more than one chunk
    images[7] = 0.25  # constant: std exactly 0
    images[9, 0, 0, 0], images[9, 1, 1, 0], images[11, 2, 2, 0] = np.nan, np.inf, -np.inf
    rows = np.arange(1, 2500, 2)  # images 7, 9, 11 are rows 3, 4, 5
    scaled, statistics, hashes = prepare.scale_and_summarise(images, rows)
    expected = images[rows] * np.float32(2) - np.float32(1)
    np.testing.assert_array_equal(scaled, expected)
    flat = expected.reshape(len(rows), -1)
    finite = np.isfinite(flat).all(axis=1)
    assert finite.sum() == len(rows) - 2
    np.testing.assert_allclose(statistics["mean"][finite], flat[finite].mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(statistics["std"][finite], flat[finite].std(axis=1), atol=1e-6)
    np.testing.assert_array_equal(statistics["min"][finite], flat[finite].min(axis=1))
    np.testing.assert_array_equal(statistics["max"][finite], flat[finite].max(axis=1))
    assert statistics["std"][3] == 0.0
    assert statistics["nonfinite"][[4, 5]].tolist() == [2, 1] and statistics["nonfinite"].sum() == 3
    assert hashes == prepare.image_hashes(expected)

    uint8 = (rng.random((300, 5, 5, 1)) * 255).astype(np.uint8)
    as_uint8, _, uint8_hashes = prepare.scale_and_summarise(uint8, np.arange(300))
    as_float, _, float_hashes = prepare.scale_and_summarise(uint8 / np.float32(255), np.arange(300))
    np.testing.assert_array_equal(as_uint8, as_float)  # the same bytes whichever kind a source returns
    assert uint8_hashes == float_hashes
