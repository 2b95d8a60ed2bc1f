"""The validate stage: real Great Expectations runs over a real prepared folder, tampered per bad case."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ganops import artifacts
from ganops.config import ValidateConfig, parse_params
from ganops.data import validate
from ganops.errors import GanopsError


@pytest.fixture(scope="module")
def prepared_source(prepare_digits) -> Path:
    """200 built-in digits through the real prepare stage: 130 train, 30 validation, 40 test, 10 classes."""
    return prepare_digits(max_images=200)


@pytest.fixture
def prepared(prepared_source, tmp_path) -> Path:
    """A private copy of the prepared folder that a test may tamper with."""
    return Path(shutil.copytree(prepared_source, tmp_path / "prepared"))


def tamper(prepared: Path, change: Callable[[pd.DataFrame], pd.DataFrame | None],
           recount: bool = False) -> None:
    """Rewrite summary.parquet through `change`; `recount` keeps dataset.json's split sizes in step."""
    summary = artifacts.read_summary(prepared / artifacts.PreparedData.SUMMARY_FILE)
    changed = change(summary)
    summary = summary if changed is None else changed.reset_index(drop=True)
    artifacts.write_summary(prepared / artifacts.PreparedData.SUMMARY_FILE, summary)
    if recount:
        info = artifacts.read_dataset_info(prepared / artifacts.PreparedData.INFO_FILE)
        sizes = summary["split"].value_counts()
        artifacts.write_dataset_info(prepared / artifacts.PreparedData.INFO_FILE, dataclasses.replace(
            info, **{f"{split}_count": int(sizes.get(split, 0)) for split in artifacts.SPLITS}))


def run_failing(prepared: Path, out: Path, cfg: ValidateConfig | None = None) -> tuple[str, dict]:
    with pytest.raises(GanopsError) as caught:
        validate.run(prepared, cfg or ValidateConfig(), out)
    return str(caught.value), json.loads((out / validate.SUMMARY_FILE).read_text())


def failed_checks(summary: dict) -> set[str]:
    return {key for key, value in summary.items() if value is False and key != "success"}


def test_good_data_passes_and_writes_result_summary_and_docs(prepared, tmp_path):
    out = tmp_path / "reports" / "validation"
    report = validate.run(prepared, ValidateConfig(), out)

    assert report.success and report.failures == []
    summary = json.loads((out / validate.SUMMARY_FILE).read_text())
    assert summary["success"] is True
    assert summary["evaluated"] == summary["successful"] == len(report.checks) > 20
    assert summary["failed"] == 0
    for key in ("row_count_in_range", "pixels_finite", "no_constant_images", "labels_in_range",
                "class_balance", "duplicate_fraction_ok", "splits_known", "no_split_overlap", "train_not_empty",
                "validation_rows_ok", "test_rows_ok", "train_count_matches_info",
                "validation_count_matches_info", "test_count_matches_info"):
        assert summary[key] is True, key

    result = json.loads((out / validate.RESULT_FILE).read_text())
    assert result["failures"] == []
    assert set(result["validations"]) == {"images", "hashes", "classes", "splits"}
    assert all(v["success"] and v["results"] for v in result["validations"].values())

    index = out / validate.DOCS_DIR / "index.html"
    assert index.is_file()
    html = index.read_text()
    for table in result["validations"]:  # each validation's page exists, linked relatively from the index
        pages = list((out / validate.DOCS_DIR / "validations" / table).rglob("*.html"))
        assert len(pages) == 1
        assert pages[0].relative_to(out / validate.DOCS_DIR).as_posix() in html
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # the temp folder is gone
    assert ".validation." not in html  # no link into the temporary build folder


def _leak_three_images(into: str, source: str = "test") -> Callable[[pd.DataFrame], None]:
    """Give three `into` rows the hashes of three `source` images: the same pictures in two splits."""
    def change(summary):
        leaked = summary.loc[summary["split"] == source, "hash"].to_numpy()[:3]
        summary.loc[summary.index[summary["split"] == into][:3], "hash"] = leaked
    return change


def _move_one_validation_image_to_test(summary):
    summary.loc[summary.index[summary["split"] == "validation"][0], "split"] = "test"


def _nan_pixels(summary):
    summary.loc[5, ["min", "max", "mean", "std"]] = np.nan  # what prepare records for NaN pixels
    summary.loc[5, "nonfinite"] = 7


def _constant_image(summary):
    summary.loc[4, ["min", "max", "mean"]] = -1.0
    summary.loc[4, "std"] = 0.0


def _starve_class_zero(summary):
    zeros = summary.index[summary["label"] == 0]
    summary.loc[zeros[2:], "label"] = 1  # class 0 keeps 2 images; class 1 grows


def _duplicate_train_images(summary):
    train = summary.index[summary["split"] == "train"]
    summary.loc[train[1:16], "hash"] = summary.loc[train[0], "hash"]  # 15 of 200 are copies: 7.5%


CASES = {
    # name: (tamper, recount dataset.json, the first failing check, text of its line)
    "too_few_rows": (lambda s: s.iloc[::3], True, "row_count_in_range",
                     "row count 67 is below validate.min_rows=100"),
    "train_test_overlap": (_leak_three_images(into="train"), False, "no_split_overlap",
                           "hash: 3 of 197 distinct images appear in more than one of train/validation/test"),
    "validation_test_overlap": (_leak_three_images(into="validation"), False, "no_split_overlap",
                                "hash: 3 of 197 distinct images appear in more than one of "
                                "train/validation/test"),
    "train_validation_overlap": (_leak_three_images(into="train", source="validation"), False,
                                 "no_split_overlap", "hash: 3 of 197 distinct images appear in more than one of "
                                                     "train/validation/test"),
    "nan_pixels": (_nan_pixels, False, "pixels_finite",
                   "nonfinite: 1 of 200 images contain NaN or infinite pixels (e.g. train #5)"),
    "pixel_out_of_range": (lambda s: s.__setitem__("max", s["max"].where(s.index != 9, 1.5)), False,
                           "pixel_max_in_range", "max: 1 of 200 images have pixels above 1"),
    "constant_image": (_constant_image, False, "no_constant_images",
                       "std: 1 of 200 images are constant (pixel std <= validate.min_image_std=0.001)"),
    "label_out_of_range": (lambda s: s.__setitem__("label", s["label"].where(s.index != 3, 10)), False,
                           "labels_in_range", "label: 1 of 200 images have a label outside [0, 10)"),
    "class_imbalance": (_starve_class_zero, False, "class_balance",
                        "classes have fewer than validate.min_class_ratio=0.5 x the largest class"),
    "duplicates": (_duplicate_train_images, False, "duplicate_fraction_ok",
                   "hash: duplicate fraction 0.075 is above validate.max_duplicate_fraction=0.05"),
    "empty_validation": (lambda s: s[s["split"] != "validation"], True, "validation_rows_ok",
                         "split: validation has 0 images, below validate.min_holdout_rows=1"),
    "empty_test": (lambda s: s[s["split"] != "test"], True, "test_rows_ok",
                   "split: test has 0 images, below validate.min_holdout_rows=1"),
    "unknown_split": (lambda s: s.__setitem__("split", s["split"].where(s.index != 0, "holdout")), False,
                      "splits_known",
                      "split: 1 of 200 rows have a split other than train/validation/test (e.g. 'holdout')"),
    "counts_disagree_with_info": (_move_one_validation_image_to_test, False, "validation_count_matches_info",
                                  "split: validation has 29 images but dataset.json says 30"),
}
# Cases that break one thing fail exactly these checks (NaN pixels also leave the image's stats empty).
EXACT_FAILURES = {
    "train_test_overlap": {"no_split_overlap"},
    "validation_test_overlap": {"no_split_overlap"},
    "train_validation_overlap": {"no_split_overlap"},
    "empty_validation": {"validation_rows_ok"},
    "empty_test": {"test_rows_ok"},
    "counts_disagree_with_info": {"validation_count_matches_info", "test_count_matches_info"},
    "nan_pixels": {"pixels_finite", "min_not_null", "max_not_null", "mean_not_null", "std_not_null"},
    "pixel_out_of_range": {"pixel_max_in_range"},
    "constant_image": {"no_constant_images"},
    "label_out_of_range": {"labels_in_range"},
    "duplicates": {"duplicate_fraction_ok"},
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_fails_naming_the_check_after_writing_outputs(case, prepared, tmp_path):
    change, recount, check, line = CASES[case]
    tamper(prepared, change, recount=recount)
    out = tmp_path / "validation"

    message, summary = run_failing(prepared, out)

    assert "\n" not in message
    assert message.startswith("validation failed: ")
    first_failure = message.split(" checks failed: ", 1)[1].split("; see ")[0]
    assert line in first_failure, message
    assert f"see {out / 'docs' / 'index.html'}" in message
    assert summary["success"] is False and summary[check] is False
    assert summary["failed"] == len(failed_checks(summary)) >= 1
    if case in EXACT_FAILURES:
        assert failed_checks(summary) == EXACT_FAILURES[case]
    assert (out / "docs" / "index.html").is_file()  # the Data Docs describing the failure are there
    result = json.loads((out / validate.RESULT_FILE).read_text())
    assert result["failures"][0] in message


def test_class_imbalance_names_the_small_class(prepared, tmp_path):
    tamper(prepared, _starve_class_zero)
    message, _ = run_failing(prepared, tmp_path / "validation")
    assert "class 0: 2 images" in message


def test_thresholds_come_from_params(prepared, tmp_path):
    tamper(prepared, _duplicate_train_images)  # 7.5% duplicates
    report = validate.run(prepared, ValidateConfig(max_duplicate_fraction=0.1), tmp_path / "validation")
    assert report.success

    message, summary = run_failing(prepared, tmp_path / "validation",
                                   ValidateConfig(max_duplicate_fraction=0.1, min_holdout_rows=31))
    assert failed_checks(summary) == {"validation_rows_ok"}  # validation has 30 images, test 40
    assert "validation has 30 images, below validate.min_holdout_rows=31" in message

    _, summary = run_failing(prepared, tmp_path / "validation",
                             ValidateConfig(max_duplicate_fraction=0.1, min_holdout_rows=41))
    assert failed_checks(summary) == {"validation_rows_ok", "test_rows_ok"}


def test_unlabelled_data_passes_and_rejects_stray_labels(prepared, tmp_path):
    tamper(prepared, lambda s: s.__setitem__("label", -1))
    info = artifacts.read_dataset_info(prepared / artifacts.PreparedData.INFO_FILE)
    artifacts.write_dataset_info(prepared / artifacts.PreparedData.INFO_FILE, dataclasses.replace(info, num_classes=0))

    report = validate.run(prepared, ValidateConfig(), tmp_path / "ok")
    assert report.success and "class_balance" not in report.checks

    tamper(prepared, lambda s: s.__setitem__("label", s["label"].where(s.index != 0, 4)))
    message, summary = run_failing(prepared, tmp_path / "bad")
    assert failed_checks(summary) == {"labels_in_range"}
    assert "dataset.json says the data is unlabelled" in message


def test_failed_rerun_replaces_previous_outputs(prepared, tmp_path):
    out = tmp_path / "validation"
    validate.run(prepared, ValidateConfig(), out)
    tamper(prepared, _nan_pixels)
    _, summary = run_failing(prepared, out)
    assert summary["success"] is False
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_summary_missing_a_column_is_a_one_line_error(prepared, tmp_path):
    summary = artifacts.read_summary(prepared / artifacts.PreparedData.SUMMARY_FILE)
    summary.drop(columns=["hash"]).to_parquet(prepared / artifacts.PreparedData.SUMMARY_FILE, index=False)
    with pytest.raises(GanopsError, match=r"summary.parquet: missing columns \['hash'\]"):
        validate.run(prepared, ValidateConfig(), tmp_path / "validation")


def test_row_bounds_must_be_ordered():
    with pytest.raises(GanopsError, match=r"validate.min_rows: 500 is above validate.max_rows \(400\)"):
        parse_params({"validate": {"min_rows": 500, "max_rows": 400}})
