"""benchmarks/large_data.py at a tiny size: its images, its npz written piece by piece, and the table it prints
(prepare from npz and from PNGs, and the input pipeline's pass), so the benchmark stays runnable."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import large_data  # noqa: E402


def test_the_synthetic_images_are_seeded_varied_and_labelled_by_shape():
    images, labels = large_data.make_chunk(100, 50)
    again, _ = large_data.make_chunk(100, 50)
    assert images.shape == (50, 64, 64, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, large_data.chunk_labels(100, 50))
    assert images.reshape(50, -1).std(axis=1).min() > 5  # no blank image: validation would refuse it
    assert len(np.unique(images.reshape(50, -1), axis=0)) == 50


def test_the_npz_written_piece_by_piece_is_what_numpy_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(large_data, "CHUNK", 7)  # several pieces
    large_data.write_npz(tmp_path / "images.npz", 20)
    with np.load(tmp_path / "images.npz") as archive:
        np.testing.assert_array_equal(archive["x"][7:14], large_data.make_chunk(7, 7)[0])
        np.testing.assert_array_equal(archive["y"][14:], large_data.chunk_labels(14, 6))
    with zipfile.ZipFile(tmp_path / "images.npz") as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def test_a_tiny_run_prints_its_table_and_headline(tmp_path):
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "large_data.py"), "--count", "400",
                           "--png-count", "40", "--stages", "prepare_png,input,disk", "--keep", str(tmp_path),
                           "--set", "base_filters=48"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    train = yaml.safe_load((tmp_path / "params.yaml").read_text())["train"]
    assert train["arch"] == "dcgan" and train["base_filters"] == 48  # the repo's defaults, then --set
    lines = done.stdout.strip().splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.split()[0] in large_data.STAGES}
    assert set(rows) == {"prepare", "prepare_png", "input", "disk"}
    assert rows["prepare"][1] == "400" and rows["prepare_png"][1] == "40" and rows["disk"][1] == "400"
    assert lines[-1].startswith("max_peak_mb=")
