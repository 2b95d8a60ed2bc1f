import numpy as np
import pytest

from ganops import artifacts, shards
from ganops.errors import GanopsError


def test_atomic_write_keeps_previous_file_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    artifacts.write_json(target, {"fd": 1.0})
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert artifacts.read_json(target) == {"fd": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp leftovers


def test_atomic_folder_swap(tmp_path):
    target = tmp_path / "out"
    with artifacts.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("old")
    with artifacts.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_split_round_trip_with_and_without_labels(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 1), dtype=np.uint8)
    images = shards.to_signed(pixels)  # values on the uint8 grid come back exactly
    for labels in (np.arange(5), None):
        artifacts.write_split(tmp_path / "s", artifacts.Split(images, labels))
        back = artifacts.read_split(tmp_path / "s")
        np.testing.assert_array_equal(back.images, images)
        assert back.images.dtype == np.float32
        assert (back.labels is None) == (labels is None)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # swapped in whole, no temporary left
    off_grid = np.random.default_rng(1).uniform(-1, 1, (5, 4, 4, 1)).astype(np.float32)
    artifacts.write_split(tmp_path / "s", artifacts.Split(off_grid, None))
    assert np.abs(artifacts.read_split(tmp_path / "s").images - off_grid).max() <= 1 / 255 + 1e-6  # half a step


def test_shards_split_by_bytes_and_read_in_chunks_and_rows(tmp_path):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (23, 4, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 23)
    artifacts.write_split(tmp_path / "s", artifacts.Split(pixels, labels), shard_bytes=5 * 48 + 47)  # 5 per shard
    split = shards.ShardedSplit.open(tmp_path / "s")
    assert split.counts == (5, 5, 5, 5, 3) and len(split) == 23 and split.shape == (4, 4, 3)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(
        ["index.json", *(f"{kind}-{n:05d}.npy" for kind in ("images", "labels") for n in range(5))])
    assert split.shard_images(0).dtype == np.uint8 and isinstance(split.shard_images(0), np.memmap)
    chunks = list(split.chunks(3))
    assert [len(images) for images, _ in chunks] == [3, 2] * 4 + [3]  # never across a shard
    np.testing.assert_array_equal(np.concatenate([images for images, _ in chunks]), pixels)
    np.testing.assert_array_equal(np.concatenate([chunk_labels for _, chunk_labels in chunks]), labels)
    rows = np.array([22, 0, 7, 7, 13, 4])
    images, row_labels = split.gather(rows)
    np.testing.assert_array_equal(images, pixels[rows])
    np.testing.assert_array_equal(row_labels, labels[rows])
    assert shards.shard_capacity((64, 64, 3)) == 5461  # 64 MiB of 64×64×3 images


def test_rows_are_read_into_our_own_buffers_not_through_the_mapping(tmp_path):
    """`gather` and `chunks` read by positioned reads (each run of consecutive rows at once), so the pages of
    a split read over an epoch are not left resident in the process; a truncated shard is a one-line error."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (40, 2, 3, 1), dtype=np.uint8)
    artifacts.write_split(tmp_path / "s", artifacts.Split(pixels, None), shard_bytes=16 * 6)  # 16 per shard
    split = shards.ShardedSplit.open(tmp_path / "s")
    everything = np.arange(40)
    for rows in (everything, rng.permutation(everything), np.array([3, 4, 5, 9, 9, 10, 31, 30, 16, 15, 39]),
                 np.array([], np.int64)):
        np.testing.assert_array_equal(split.gather(rows)[0], pixels[rows])
    np.testing.assert_array_equal(np.concatenate([images for images, _ in split.chunks(7)]), pixels)
    shard = tmp_path / "s" / split.image_files[1]
    shard.write_bytes(shard.read_bytes()[:-6])  # the last image of shard 1 lost after the split was opened
    with pytest.raises(GanopsError, match="shorter than its header says"):
        split.gather(np.array([31]))


def test_quantisation_is_defined_once_and_inverts():
    pixels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(shards.from_signed(shards.to_signed(pixels)), pixels)
    np.testing.assert_array_equal(shards.quantize(pixels / np.float32(255)), pixels)
    assert shards.to_signed(np.array([0, 255], np.uint8)).tolist() == [-1.0, 1.0]


def test_dataset_info_round_trip_and_stale_two_split_info(tmp_path):
    info = artifacts.DatasetInfo(source="digits", height=8, width=8, channels=1, num_classes=10,
                                 train_count=195, validation_count=45, test_count=60, data_hash="ab12")
    artifacts.write_dataset_info(tmp_path / "dataset.json", info)
    assert artifacts.read_dataset_info(tmp_path / "dataset.json") == info
    assert info.image_shape == (8, 8, 1) and info.labelled

    # A dataset.json from the train/holdout layout is a one-line error naming the file, not a silent misread.
    stale = {key: value for key, value in artifacts.read_json(tmp_path / "dataset.json").items()
             if key not in ("validation_count", "test_count")}
    artifacts.write_json(tmp_path / "old.json", {**stale, "holdout_count": 60})
    with pytest.raises(GanopsError, match="old.json: unexpected dataset info .*holdout_count") as caught:
        artifacts.read_dataset_info(tmp_path / "old.json")
    assert "\n" not in str(caught.value)


def test_missing_inputs_name_the_file(tmp_path):
    with pytest.raises(GanopsError, match="nothing: prepared split not found .run the prepare stage"):
        artifacts.read_split(tmp_path / "nothing")
    (tmp_path / "old.npz").write_bytes(b"")
    with pytest.raises(GanopsError, match="old: prepared split not found .old.npz is the old float32 format"):
        artifacts.read_split(tmp_path / "old")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(GanopsError, match="bad.json: not valid JSON"):
        artifacts.read_json(tmp_path / "bad.json")
