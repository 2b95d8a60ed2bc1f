"""Bad inputs fail the real prepare entry point with exit status 1, one line naming the file and the
problem, and nothing written; a previous good output survives a failed run untouched."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganops import artifacts
from ganops.config import DataConfig
from ganops.data import prepare
from ganops.errors import GanopsError
from tests.data.sample_files import sample_images, write_csv, write_folder, write_idx
from tests.helpers import write_params

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_prepare(params: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "pipeline/prepare.py", "--params", str(params), "--out", str(out)],
                          check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def png_folder(tmp_path: Path, count: int = 12) -> Path:
    images, labels = sample_images(count=count, side=8, classes=2)
    return write_folder(tmp_path / "pngs", images, labels)


def missing_path(tmp_path):
    return {"source": "npz", "path": str(tmp_path / "nope.npz")}, f"{tmp_path / 'nope.npz'}: not found (data.path)"


def empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return {"source": "folder", "path": str(tmp_path / "empty")}, "empty: no PNG, JPEG or BMP images found"


def corrupt_image(tmp_path):
    root = png_folder(tmp_path)
    (root / "1" / "bad.png").write_bytes(b"not a png at all")
    return {"source": "folder", "path": str(root)}, "1/bad.png: cannot read image (cannot identify image file"


def truncated_image(tmp_path):
    root = png_folder(tmp_path)
    victim = root / "0" / "00000.png"
    victim.write_bytes(victim.read_bytes()[:60])
    return {"source": "folder", "path": str(root)}, "0/00000.png: cannot read image ("


def idx_wrong_magic(tmp_path):
    labels = write_idx(tmp_path / "labels.gz", np.zeros(10, dtype=np.uint8))
    return ({"source": "idx", "path": str(labels)},
            "labels.gz: wrong magic number 2049 (0x00000801) for an IDX image file, expected 2051")


def idx_truncated_body(tmp_path):
    images, _ = sample_images(count=10, side=8)
    path = write_idx(tmp_path / "images.idx", images, compress=False)
    path.write_bytes(path.read_bytes()[:-100])
    return ({"source": "idx", "path": str(path)},
            "images.idx: truncated body: header says 10×8×8 values = 640 bytes, file has 540")


def idx_truncated_gzip(tmp_path):
    images, _ = sample_images(count=10, side=8)
    path = write_idx(tmp_path / "images.gz", images)
    path.write_bytes(path.read_bytes()[:-20])
    return {"source": "idx", "path": str(path)}, "images.gz: truncated gzip stream"


def count_mismatch(tmp_path):
    images, labels = sample_images(count=10, side=8)
    image_file = write_idx(tmp_path / "images.gz", images)
    label_file = write_idx(tmp_path / "labels.gz", labels[:9].astype(np.uint8))
    return ({"source": "idx", "path": str(image_file), "labels_path": str(label_file)},
            "labels.gz: 9 labels for 10 images in")


def csv_non_numeric(tmp_path):
    images, labels = sample_images(count=10, side=4)
    path = write_csv(tmp_path / "t.csv", images, labels)
    lines = path.read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0] + ",abc"
    path.write_text("\n".join(lines) + "\n")
    return {"source": "csv", "path": str(path)}, "t.csv: line 5, column 'p15': pixel 'abc' is not a number"


def csv_missing_pixel(tmp_path):
    images, labels = sample_images(count=10, side=4)
    path = write_csv(tmp_path / "t.csv", images, labels)
    lines = path.read_text().splitlines()
    cells = lines[7].split(",")
    cells[3] = ""
    lines[7] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return {"source": "csv", "path": str(path)}, "t.csv: line 8, column 'p2': missing or non-finite pixel value"


def mixed_channels(tmp_path):
    root = png_folder(tmp_path)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "1" / "rgb.png")
    return ({"source": "folder", "path": str(root)},
            f"mixed channel counts: {root / '0' / '00000.png'} is grayscale, {root / '1' / 'rgb.png'} is RGB")


def fractional_labels(tmp_path):
    images, labels = sample_images(count=10, side=8)
    np.savez(tmp_path / "d.npz", x=images, y=labels + np.where(np.arange(10) == 6, 0.5, 0.0))
    return {"source": "npz", "path": str(tmp_path / "d.npz")}, "d.npz: key 'y': index 6: label 0.5 is not an integer"


def text_labels(tmp_path):
    images, _ = sample_images(count=10, side=4)
    path = write_csv(tmp_path / "t.csv", images, np.array(["3"] * 9 + ["cat"]))
    return {"source": "csv", "path": str(path)}, "t.csv: line 11, column 'label': label 'cat' is not an integer"


def npz_misnamed_labels(tmp_path):
    images, labels = sample_images(count=10, side=8)
    np.savez(tmp_path / "d.npz", x=images, labels=labels)
    return ({"source": "npz", "path": str(tmp_path / "d.npz")},
            "d.npz: expected arrays 'x' and optionally 'y', found ['labels', 'x']")


def negative_labels(tmp_path):
    images, labels = sample_images(count=10, side=8)
    np.savez(tmp_path / "d.npz", x=images, y=labels - 1)
    return {"source": "npz", "path": str(tmp_path / "d.npz")}, "d.npz: key 'y': index 0: label -1 is negative"


def pixels_out_of_range(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.full((4, 8, 8), 300.0))
    return ({"source": "npz", "path": str(tmp_path / "d.npz")},
            "d.npz: key 'x': image 0: pixel value 300.0 is outside 0–255 and 0–1")


def csv_without_header(tmp_path):
    images, labels = sample_images(count=10, side=4)
    path = write_csv(tmp_path / "t.csv", images, labels)
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    return {"source": "csv", "path": str(path)}, "t.csv: the first line looks like data, not a header row"


def csv_missing_label_column(tmp_path):
    images, _ = sample_images(count=10, side=4)
    path = write_csv(tmp_path / "t.csv", images, None)
    return {"source": "csv", "path": str(path)}, "t.csv: no label column 'label' (data.label_column"


def folder_with_both_layouts(tmp_path):
    root = png_folder(tmp_path)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(root / "stray.png")
    return {"source": "folder", "path": str(root)}, "pngs: holds both images (stray.png, …) and class sub-folders"


BAD_INPUTS = [npz_misnamed_labels, negative_labels, pixels_out_of_range, csv_without_header,
              csv_missing_label_column, folder_with_both_layouts,
              missing_path, empty_folder, corrupt_image, truncated_image, idx_wrong_magic, idx_truncated_body,
              idx_truncated_gzip, count_mismatch, csv_non_numeric, csv_missing_pixel, mixed_channels,
              fractional_labels, text_labels]


@pytest.mark.parametrize("make_case", BAD_INPUTS, ids=lambda f: f.__name__)
def test_bad_input_fails_the_library_with_one_line(tmp_path, make_case):
    data, message = make_case(tmp_path)
    with pytest.raises(GanopsError) as caught:
        prepare.run(DataConfig(**data), tmp_path / "stage" / "prepared")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "stage").exists() or not any((tmp_path / "stage").iterdir())


# The entry point in a subprocess (about 2 s each, no TensorFlow): a few cases of each kind suffice
# for the exit status, since the library test above covers every message.
@pytest.mark.parametrize("make_case", [missing_path, truncated_image, idx_wrong_magic, csv_non_numeric,
                                       mixed_channels, text_labels], ids=lambda f: f.__name__)
def test_bad_input_exits_1_and_writes_nothing(tmp_path, make_case):
    data, message = make_case(tmp_path)
    stage = tmp_path / "stage"
    result = run_prepare(write_params(tmp_path / "params.yaml", data=data), stage / "prepared")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("ganops prepare: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert not stage.exists() or not any(stage.iterdir())


def test_failed_run_leaves_the_previous_output_untouched(prepared_digits, tmp_path):
    out = tmp_path / "stage" / "prepared"
    shutil.copytree(prepared_digits, out)  # a previous successful run's output
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    data, _ = truncated_image(tmp_path)
    result = run_prepare(write_params(tmp_path / "params.yaml", data=data), out)
    assert result.returncode == 1
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in (tmp_path / "stage").iterdir()] == ["prepared"]  # no temporary sibling left


def test_skip_unreadable_skips_and_reports_each_file(tmp_path):
    data, _ = corrupt_image(tmp_path)
    root = Path(data["path"])
    (root / "0" / "00002.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "prepared"
    result = run_prepare(write_params(tmp_path / "params.yaml",
                                      data={**data, "skip_unreadable": True, "image_size": 8}), out)
    assert result.returncode == 0, result.stderr
    skipped_lines = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped_lines) == 2 and "bad.png: cannot read image" in skipped_lines[1]
    provenance = prepare.artifacts.read_json(out / artifacts.PreparedData.SOURCE_FILE)
    assert [Path(s["file"]).name for s in provenance["skipped"]] == ["00002.png", "bad.png"]
    info = prepare.artifacts.read_dataset_info(out / artifacts.PreparedData.INFO_FILE)
    # 12 written, 00002.png broken, bad.png added
    assert info.train_count + info.validation_count + info.test_count == 11


def test_prepare_does_not_import_tensorflow_or_sklearn():
    heavy = "{'tensorflow', 'keras', 'great_expectations', 'sklearn'}"  # sklearn: a second of start-up
    code = f"import sys, ganops.data.prepare; print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
