import numpy as np
import pytest

from ganops import artifacts
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
    images = np.random.default_rng(0).uniform(-1, 1, (5, 4, 4, 1)).astype(np.float32)
    for labels in (np.arange(5), None):
        artifacts.write_split(tmp_path / "s.npz", artifacts.Split(images, labels))
        back = artifacts.read_split(tmp_path / "s.npz")
        np.testing.assert_array_equal(back.images, images)
        assert (back.labels is None) == (labels is None)


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
    with pytest.raises(GanopsError, match="nothing.npz: file not found"):
        artifacts.read_split(tmp_path / "nothing.npz")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(GanopsError, match="bad.json: not valid JSON"):
        artifacts.read_json(tmp_path / "bad.json")
