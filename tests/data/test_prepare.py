import math
from fractions import Fraction

import numpy as np
import pytest

from ganops import artifacts, shards
from ganops.config import DataConfig
from ganops.data import prepare, splits
from ganops.errors import GanopsError


def test_digits_prepare_writes_scaled_disjoint_splits(prepared_digits):
    info = artifacts.read_dataset_info(prepared_digits / artifacts.PreparedData.INFO_FILE)
    splits = {name: artifacts.read_split(prepared_digits / artifacts.PreparedData.SPLIT_FILES[name]) for name in artifacts.SPLITS}
    summary = artifacts.read_summary(prepared_digits / artifacts.PreparedData.SUMMARY_FILE)

    assert artifacts.PreparedData.SPLIT_FILES == {"train": "train", "validation": "validation", "test": "test"}
    # validation ceil(0.15 × 300) = 45, test ceil(0.2 × 300) = 60, train the rest
    assert (info.train_count, info.validation_count, info.test_count) == (195, 45, 60)
    assert {name: len(split) for name, split in splits.items()} == {"train": 195, "validation": 45, "test": 60}
    for name, split in splits.items():
        assert split.images.shape[1:] == (8, 8, 1) and split.images.dtype == np.float32, name
        assert set(np.unique(split.labels)) == set(range(10)), name  # stratified: every class in every split
    train = splits["train"].images
    assert train.min() == -1.0 and train.max() == 1.0
    assert list(summary.columns) == list(artifacts.SUMMARY_COLUMNS)
    assert len(summary) == 300
    assert summary["split"].value_counts().to_dict() == {"train": 195, "validation": 45, "test": 60}
    assert (summary["orig_height"] == 8).all()
    sources = {name: set(summary.loc[summary.split == name, "source"]) for name in artifacts.SPLITS}
    assert sum(len(names) for names in sources.values()) == len(set().union(*sources.values())) == 300  # disjoint
    for name, split in splits.items():  # the summary describes each split file row by row
        rows = summary[summary.split == name]
        assert rows["index"].tolist() == list(range(len(split)))
        pixels, _ = artifacts.PreparedData(prepared_digits).open_split(name).read_all()
        assert pixels.dtype == np.uint8 and rows["hash"].tolist() == prepare.image_hashes(pixels)
        assert rows["label"].tolist() == split.labels.tolist()


def test_prepare_is_seeded(tmp_path):
    first = prepare.run(DataConfig(max_images=100, seed=3), tmp_path / "a")
    second = prepare.run(DataConfig(max_images=100, seed=3), tmp_path / "b")
    other = prepare.run(DataConfig(max_images=100, seed=4), tmp_path / "c")
    assert first.data_hash == second.data_hash != other.data_hash


def test_resize_to_28_uses_one_filter(tmp_path):
    info = prepare.run(DataConfig(max_images=50, image_size=28, channels=3), tmp_path / "p")
    split = artifacts.read_split(tmp_path / "p" / artifacts.PreparedData.SPLIT_FILES["train"])
    assert info.image_shape == (28, 28, 3)
    assert split.images.shape[1:] == (28, 28, 3)
    assert -1.0 <= split.images.min() and split.images.max() <= 1.0


def test_prepare_records_where_the_images_came_from(prepared_digits):
    provenance = artifacts.read_json(prepared_digits / artifacts.PreparedData.SOURCE_FILE)
    assert provenance == {"source": "digits", "path": None, "labels_path": None, "images_read": 1797,
                          "classes": None, "skipped": []}


def _held_out(fraction: float, count: int) -> int:
    """ceil(fraction × count) of the decimal as written, in exact arithmetic."""
    return math.ceil(Fraction(str(fraction)) * count)


def _assert_partition(count: int, parts: tuple[np.ndarray, ...], cfg: DataConfig) -> None:
    train, validation, test = parts
    for part in parts:
        assert part.dtype.kind == "i" and (np.diff(part) > 0).all()  # sorted positions, no repeats
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(count))  # disjoint and covering
    assert (len(validation), len(test)) == (_held_out(cfg.validation_fraction, count),
                                           _held_out(cfg.test_fraction, count))
    assert len(train) == count - len(validation) - len(test) > 0


def _labels(rng: np.random.Generator, class_counts: np.ndarray) -> np.ndarray:
    """Shuffled labels with `class_counts[i]` images of class 3·i (class numbers with gaps)."""
    return rng.permutation(np.repeat(np.arange(len(class_counts)) * 3, class_counts))


def test_stratified_splits_partition_and_keep_every_class_share():
    """Over many random label mixes and fractions: every split has its exact size, and each class's count
    in each split is its proportional share rounded down or up (so within ±1 of it)."""
    checked = 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        class_counts = rng.integers(3, 40, rng.integers(2, 25))
        labels = _labels(rng, class_counts)
        count = len(labels)
        cfg = DataConfig(validation_fraction=float(rng.choice([0.05, 0.1, 0.15, 0.2, 0.3])),
                         test_fraction=float(rng.choice([0.07, 0.1, 0.2, 0.25, 0.33])), seed=seed)
        try:
            parts = splits.split_indices(count, labels, cfg)
        except GanopsError as error:  # a split smaller than the class count: the error test covers it
            assert "with every class in each" in str(error)
            continue
        _assert_partition(count, parts, cfg)
        classes, totals = np.unique(labels, return_counts=True)
        for part in parts:
            in_split = np.array([(labels[part] == c).sum() for c in classes])
            proportional = totals * len(part) / count
            assert (np.abs(in_split - proportional) < 1).all(), (seed, in_split, proportional)
        checked += 1
    assert checked > 300


@pytest.mark.parametrize("labelled", [True, False])
def test_split_is_seeded(labelled):
    labels = _labels(np.random.default_rng(0), np.array([40, 25, 35])) if labelled else None
    first, again, other = (splits.split_indices(100, labels, DataConfig(seed=seed)) for seed in (1, 1, 2))
    for part, same in zip(first, again):
        np.testing.assert_array_equal(part, same)
    assert any(not np.array_equal(part, changed) for part, changed in zip(first, other))
    _assert_partition(100, first, DataConfig())


def test_split_sizes_use_the_fraction_as_written():
    # 0.07 × 100 is 7.000000000000001 in floats; its ceiling must still be 7.
    train, validation, test = splits.split_indices(100, None, DataConfig(validation_fraction=0.07,
                                                                         test_fraction=0.29))
    assert (len(train), len(validation), len(test)) == (64, 7, 29)
    train, validation, test = splits.split_indices(21, None, DataConfig(validation_fraction=0.15,
                                                                        test_fraction=0.2))
    assert (len(train), len(validation), len(test)) == (12, 4, 5)  # ceil(3.15), ceil(4.2)


def test_split_without_stratification_when_a_class_is_too_small_for_three_splits():
    labels = np.array([0] * 30 + [1] * 2)  # class 1 cannot give an image to each of three splits
    cfg = DataConfig(validation_fraction=0.15, test_fraction=0.2, seed=4)
    parts = splits.split_indices(32, labels, cfg)
    _assert_partition(32, parts, cfg)
    assert [len(part) for part in parts] == [20, 5, 7]
    for part, plain in zip(parts, splits.split_indices(32, None, cfg)):  # the unlabelled, seeded split
        np.testing.assert_array_equal(part, plain)

    labels = np.array([0] * 29 + [1] * 3)  # three images of class 1: stratified again, whatever the seed
    for seed in range(10):
        cfg = DataConfig(validation_fraction=0.15, test_fraction=0.2, seed=seed)
        parts = splits.split_indices(32, labels, cfg)
        _assert_partition(32, parts, cfg)
        # class 1's shares 1.875, 0.47, 0.66 rounded by largest remainder; class 0 takes the rest
        assert [np.count_nonzero(labels[part] == 1) for part in parts] == [2, 0, 1], seed


def test_split_errors_name_the_fraction_and_the_sizes():
    with pytest.raises(GanopsError, match="data.test_fraction: cannot split 30 images of 10 classes into 21 train, "
                                          "3 validation and 6 test images with every class in each"):
        splits.split_indices(30, np.arange(10).repeat(3), DataConfig(validation_fraction=0.1, test_fraction=0.2))
    with pytest.raises(GanopsError, match="data.test_fraction: cannot split 10 images into 5 validation and 5 test "
                                          "images and leave any for training"):
        splits.split_indices(10, None, DataConfig(validation_fraction=0.45, test_fraction=0.45))


def test_statistics_and_hashes_match_numpy_per_image():
    rng = np.random.default_rng(0)
    images = rng.random((2500, 6, 6, 1), dtype=np.float32)  # more than one chunk
    images[7] = 0.25  # constant: std exactly 0
    images[9, 0, 0, 0], images[9, 1, 1, 0], images[11, 2, 2, 0] = np.nan, np.inf, -np.inf
    rows = np.arange(1, 2500, 2)  # images 7, 9, 11 are rows 3, 4, 5
    quantized, statistics, hashes = prepare.quantize_and_summarise(images, rows)
    finite = np.ones(len(rows), bool)
    finite[[4, 5]] = False
    assert quantized.dtype == np.uint8
    np.testing.assert_array_equal(quantized[finite], np.rint(images[rows][finite] * 255).astype(np.uint8))
    flat = shards.to_signed(quantized).reshape(len(rows), -1)  # statistics of the pixels consumers read
    np.testing.assert_allclose(statistics["mean"], flat.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(statistics["std"], flat.std(axis=1), atol=1e-6)
    np.testing.assert_array_equal(statistics["min"], flat.min(axis=1))
    np.testing.assert_array_equal(statistics["max"], flat.max(axis=1))
    assert statistics["std"][3] == 0.0
    assert statistics["nonfinite"][[4, 5]].tolist() == [2, 1] and statistics["nonfinite"].sum() == 3
    assert hashes == prepare.image_hashes(quantized)

    uint8 = (rng.random((300, 5, 5, 1)) * 255).astype(np.uint8)
    as_uint8, _, uint8_hashes = prepare.quantize_and_summarise(uint8, np.arange(300))
    as_float, _, float_hashes = prepare.quantize_and_summarise(uint8 / np.float32(255), np.arange(300))
    np.testing.assert_array_equal(as_uint8, as_float)  # the same bytes whichever kind a source returns
    np.testing.assert_array_equal(as_uint8, uint8)
    assert uint8_hashes == float_hashes


def test_interrupted_prepare_leaves_the_previous_output_and_no_partial_shard(tmp_path, monkeypatch):
    out = tmp_path / "prepared"
    monkeypatch.setattr(shards, "SHARD_BYTES", 64 * 40)  # 40 digits a shard: several shards per split
    before = prepare.run(DataConfig(max_images=300, seed=1), out)
    listing = {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert len(artifacts.PreparedData(out).open_split("train").counts) == 5  # 195 train images

    real_save, saved = np.save, []

    def save_then_fail(file, array, *args, **kwargs):
        if len(saved) == 3:  # the second images shard of the first split: a kill mid-write
            raise KeyboardInterrupt
        saved.append(file)
        real_save(file, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", save_then_fail)
    with pytest.raises(KeyboardInterrupt):
        prepare.run(DataConfig(max_images=300, seed=2), out)
    assert saved  # it was interrupted while writing shards, not before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]  # no temporary folder left visible
    assert {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()} == listing
    assert artifacts.read_dataset_info(artifacts.PreparedData(out).info_path) == before
