"""Class and file names are the user's text: folders named like HTML tags go through the real prepare and
validate stages and into the report, and no HTML page written on the way shows them as markup."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ganops import artifacts, imaging
from ganops.config import DataConfig, ValidateConfig
from ganops.data import prepare, validate
from ganops.errors import GanopsError
from ganops.evaluation import report
from tests.data.sample_files import sample_images, write_folder

# Linux allows everything but "/" (and NUL) in a name, so no closing tags.
HOSTILE_CLASS = "<img src=x onerror=alert(1)>"
OTHER_CLASS = "\"'><svg onload=alert(2)>"
HOSTILE_FILE = "x<script>alert(3)&'\".png"
HOSTILE = (HOSTILE_CLASS, OTHER_CLASS, HOSTILE_FILE.removesuffix(".png"))
MARKUP = ("<img src=x onerror", "<svg onload", "<script>alert")  # what a browser would run, unescaped


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """120 distinct 8×8 images in three class folders, two named like HTML, one file named like a script."""
    root = tmp_path_factory.mktemp("hostile")
    images, labels = sample_images(count=120, side=8, classes=3)
    write_folder(root / "images", images, labels)
    for label, name in enumerate((HOSTILE_CLASS, OTHER_CLASS, "plain")):
        (root / "images" / str(label)).rename(root / "images" / name)
    (root / "images" / HOSTILE_CLASS / "00000.png").rename(root / "images" / HOSTILE_CLASS / HOSTILE_FILE)
    out = root / "prepared"
    prepare.run(DataConfig(source="folder", path=str(root / "images"), image_size=8), out)
    return out


def assert_inert(page: str, where: str) -> None:
    for text in (*HOSTILE, *MARKUP):
        assert text not in page, f"{where}: unescaped {text!r}"


def docs_pages(validation_dir: Path) -> dict[str, str]:
    pages = {str(p.relative_to(validation_dir)): p.read_text(encoding="utf-8")
             for p in (validation_dir / validate.DOCS_DIR).rglob("*.html")}
    assert pages
    return pages


def test_prepare_keeps_the_names_as_data(prepared):
    source = json.loads(artifacts.PreparedData(prepared).source_path.read_text())
    names = sorted((HOSTILE_CLASS, OTHER_CLASS, "plain"))  # labels number the sorted names
    assert source["classes"] == {str(label): name for label, name in enumerate(names)}
    summary = artifacts.read_summary(artifacts.PreparedData(prepared).summary_path)
    assert f"{HOSTILE_CLASS}/{HOSTILE_FILE}" in set(summary["source"])


def test_data_docs_show_the_names_escaped(prepared, tmp_path):
    passed = validate.run(prepared, ValidateConfig(), tmp_path / "passed")
    assert passed.success
    for name, page in docs_pages(tmp_path / "passed").items():
        assert_inert(page, name)

    # A failed check puts the offending values into the page, which GX writes as raw HTML: a summary whose
    # split column holds the hostile file's path shows it, escaped once.
    tampered = Path(shutil.copytree(prepared, tmp_path / "tampered"))
    summary = artifacts.read_summary(tampered / artifacts.PreparedData.SUMMARY_FILE)
    hostile_path = f"{HOSTILE_CLASS}/{HOSTILE_FILE}"
    summary.loc[summary["source"] == hostile_path, "split"] = hostile_path
    artifacts.write_summary(tampered / artifacts.PreparedData.SUMMARY_FILE, summary)
    with pytest.raises(GanopsError, match="validation failed") as failed:
        validate.run(tampered, ValidateConfig(), tmp_path / "failed")
    assert hostile_path in str(failed.value)  # the terminal line names the value as written, not escaped
    pages = docs_pages(tmp_path / "failed")
    for name, page in pages.items():
        assert_inert(page, name)
    assert any(html.escape(hostile_path) in page for page in pages.values())
    assert not any("&amp;lt;" in page for page in pages.values())  # escaped once, not twice


def test_report_shows_outside_text_escaped_and_loads_nothing(prepared, tmp_path):
    """The report shows no class names (its class charts are labelled by index); the free text it does show, a
    path, the champion's name and an omitted metric's reason, carries the data's names here."""
    classes = json.loads(artifacts.PreparedData(prepared).source_path.read_text())["classes"]
    picture = tmp_path / "samples.png"
    imaging.save_png(picture, imaging.grid(-np.ones((4, 8, 8, 1), np.float32)))
    metrics = {"fd": 2.0, "real": {"fd": 1.0}, "num_samples": 4, "featurizer_hash": HOSTILE_FILE,
               "featurizer": OTHER_CLASS, "omitted": {"class_coverage": f"no class {classes['0']}"}}
    champion = {"name": classes["1"], "alias": HOSTILE_CLASS, "version": "3", "run_id": HOSTILE_FILE,
                "featurizer_hash": "other", "metrics": {"fd": 1.5}}
    table = pd.DataFrame({"class": np.arange(len(classes)), "generated": [0.2, 0.3, 0.5],
                          "real": [0.3, 0.3, 0.4], "test": [0.3, 0.4, 0.3]})
    path = tmp_path / "report.html"
    report.write(path, report.Context(
        run_id=classes["0"], metrics=metrics, champion=champion, samples=picture, class_grid=picture,
        neighbours=None, class_table=table, neighbour_distances=np.zeros(0),
        history=tmp_path / classes["0"] / "history.csv", conditional=False))
    page = path.read_text(encoding="utf-8")

    assert_inert(page, "report.html")
    for text in HOSTILE:
        assert html.escape(text) in page
    assert "<h2>Classes</h2>" in page
    assert not re.search(r"<script|<link|@import|url\(", page, re.IGNORECASE)
    assert not re.search(r'(src|href)\s*=\s*"?(https?:)?//', page, re.IGNORECASE)
