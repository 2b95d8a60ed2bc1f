"""The Great Expectations checks of the validate gate, as a declarative table: which small tables are derived from
the per-image summary, which GX expectation each check is, and how its failure reads as one line.

`ganops.data.validate` runs them; this module only declares them and knows nothing of GX contexts or outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ganops import artifacts
from ganops.config import ValidateConfig

# The prepared format's pixel range (see `artifacts`): a contract, not a tunable threshold.
PIXEL_LOW, PIXEL_HIGH = -1.0, 1.0
INTEGER_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
ORIG_SHAPE_COLUMNS = ("orig_height", "orig_width", "orig_channels")
EXAMPLES_IN_MESSAGE = 3  # how many offending rows a failure line names

# A failure describer turns a GX expectation result (its `result` dict) into one readable line.
Describe = Callable[[dict[str, Any]], str]


@dataclasses.dataclass(frozen=True)
class Check:
    name: str  # the key in summary.json
    expectation: Any  # a great_expectations.expectations.Expectation
    describe: Describe


@dataclasses.dataclass(frozen=True)
class Table:
    name: str  # GX asset, suite and validation definition name
    frame: pd.DataFrame
    index_columns: list[str]  # identify offending rows in results and Data Docs
    checks: list[Check]


# --- the tables and their checks -------------------------------------------------------------------

def tables(gxe, summary: pd.DataFrame, info: artifacts.DatasetInfo, cfg: ValidateConfig) -> list[Table]:
    """The derived tables, each with its checks, in the order they are validated (images first: its row count is
    the report's)."""
    derived = [
        Table("images", summary, ["split", "index"], _image_checks(gxe, info, cfg)),
        Table("hashes", _hash_table(summary), ["hash"], _hash_checks(gxe)),
    ]
    if info.labelled:
        classes = _class_table(summary, info.num_classes)
        derived.append(Table("classes", classes, ["label", "images"],
                             _class_checks(gxe, cfg, largest=int(classes["images"].max()))))
    derived.append(Table("splits", _split_table(summary), [], _split_checks(gxe, info, cfg)))
    return derived


def _hash_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct image: how many images share it and in how many splits it occurs."""
    grouped = summary.groupby("hash", sort=False)["split"]
    return pd.DataFrame({"images": grouped.size(), "splits": grouped.nunique()}).reset_index()


def _class_table(summary: pd.DataFrame, num_classes: int) -> pd.DataFrame:
    """One row per class in [0, num_classes), over both splits, absent classes counted as 0 images.

    GX has no class-balance expectation, so balance becomes a per-row fact: each class's count as a
    share of the largest class's, which must be at least `min_class_ratio`. The smallest class passing
    is exactly "smallest >= ratio x largest", and a failure names every class that is too small. Labels
    outside the range are left to the `labels_in_range` check.
    """
    counts = summary["label"].value_counts().reindex(range(num_classes), fill_value=0)
    largest = int(counts.max()) if len(counts) else 0
    share = counts / largest if largest else counts.astype(float)
    return pd.DataFrame({"label": np.arange(num_classes, dtype=np.int64),
                         "images": counts.to_numpy(dtype=np.int64),
                         "share_of_largest": share.to_numpy(dtype=np.float64)})


def _split_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row: the size of each split (a missing split counts 0)."""
    counts = summary["split"].value_counts()
    return pd.DataFrame({f"{split}_images": [int(counts.get(split, 0))] for split in artifacts.SPLITS})


def _image_checks(gxe, info: artifacts.DatasetInfo, cfg: ValidateConfig) -> list[Check]:
    checks = [
        Check("columns_match", gxe.ExpectTableColumnsToMatchSet(
            column_set=list(artifacts.SUMMARY_COLUMNS), exact_match=True),
            lambda r: f"columns: the summary table has columns {r.get('observed_value')}, "
                      f"expected {list(artifacts.SUMMARY_COLUMNS)}"),
        Check("row_count_in_range", gxe.ExpectTableRowCountToBeBetween(
            min_value=cfg.min_rows, max_value=cfg.max_rows), lambda r: _row_count_line(r, cfg)),
        # First among pixel checks: a NaN pixel also turns the image's min/max/std into NaN.
        Check("pixels_finite", gxe.ExpectColumnValuesToBeBetween(
            column="nonfinite", min_value=0, max_value=0),
            lambda r: f"nonfinite: {_count(r)} images contain NaN or infinite pixels{_examples(r)}"),
        Check("pixel_min_in_range", gxe.ExpectColumnValuesToBeBetween(column="min", min_value=PIXEL_LOW),
            lambda r: f"min: {_count(r)} images have pixels below {PIXEL_LOW:g}, outside the prepared range "
                      f"[{PIXEL_LOW:g}, {PIXEL_HIGH:g}]{_examples(r)}"),
        Check("pixel_max_in_range", gxe.ExpectColumnValuesToBeBetween(column="max", max_value=PIXEL_HIGH),
            lambda r: f"max: {_count(r)} images have pixels above {PIXEL_HIGH:g}, outside the prepared range "
                      f"[{PIXEL_LOW:g}, {PIXEL_HIGH:g}]{_examples(r)}"),
        Check("no_constant_images", gxe.ExpectColumnValuesToBeBetween(
            column="std", min_value=cfg.min_image_std, strict_min=True),
            lambda r: f"std: {_count(r)} images are constant (pixel std <= validate.min_image_std="
                      f"{cfg.min_image_std:g}){_examples(r)}"),
    ]
    if info.labelled:
        checks.append(Check("labels_in_range", gxe.ExpectColumnValuesToBeBetween(
            column="label", min_value=0, max_value=info.num_classes - 1),
            lambda r: f"label: {_count(r)} images have a label outside [0, {info.num_classes}) "
                      f"(dataset.json num_classes={info.num_classes}){_examples(r, values=True)}"))
    else:
        checks.append(Check("labels_in_range", gxe.ExpectColumnValuesToBeInSet(
            column="label", value_set=[-1]),
            lambda r: f"label: {_count(r)} images have a label but dataset.json says the data is unlabelled"
                      f"{_examples(r, values=True)}"))
    checks.append(Check("duplicate_fraction_ok", gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
        # unique proportion = distinct hashes / images = 1 - duplicate fraction
        column="hash", min_value=1.0 - cfg.max_duplicate_fraction),
        lambda r: f"hash: duplicate fraction {_duplicate_fraction(r)} is above "
                  f"validate.max_duplicate_fraction={cfg.max_duplicate_fraction:g}"))
    checks.append(Check("splits_known", gxe.ExpectColumnValuesToBeInSet(
        column="split", value_set=list(artifacts.SPLITS)),
        lambda r: f"split: {_count(r)} rows have a split other than {'/'.join(artifacts.SPLITS)}"
                  f"{_examples(r, values=True)}"))
    checks += [Check(f"{column}_integer", gxe.ExpectColumnValuesToBeInTypeList(
                   column=column, type_list=INTEGER_DTYPES), _not_integer_line(column))
               for column in (*ORIG_SHAPE_COLUMNS, "label", "nonfinite")]
    checks += [Check(f"{column}_positive", gxe.ExpectColumnValuesToBeBetween(
                   column=column, min_value=1), _not_positive_line(column))
               for column in ORIG_SHAPE_COLUMNS]
    # Range and set expectations skip missing values, so every column is also checked for them.
    checks += [Check(f"{column}_not_null", gxe.ExpectColumnValuesToNotBeNull(column=column), _null_line(column))
               for column in artifacts.SUMMARY_COLUMNS]
    return [_named(check) for check in checks]


def _hash_checks(gxe) -> list[Check]:
    return [_named(Check("no_split_overlap", gxe.ExpectColumnValuesToBeBetween(
        column="splits", max_value=1),
        lambda r: f"hash: {_count(r)} distinct images appear in more than one of "
                  f"{'/'.join(artifacts.SPLITS)}"
                  f"{_examples(r, key='hash', shorten=True)}"))]


def _class_checks(gxe, cfg: ValidateConfig, largest: int) -> list[Check]:
    return [_named(Check("class_balance", gxe.ExpectColumnValuesToBeBetween(
        column="share_of_largest", min_value=cfg.min_class_ratio),
        lambda r: f"label: {_count(r)} classes have fewer than validate.min_class_ratio="
                  f"{cfg.min_class_ratio:g} x the largest class ({largest} images){_class_examples(r)}"))]


def _split_checks(gxe, info: artifacts.DatasetInfo, cfg: ValidateConfig) -> list[Check]:
    checks = [Check("train_not_empty", gxe.ExpectColumnValuesToBeBetween(column="train_images", min_value=1),
                    lambda r: "split: the train split is empty")]
    checks += [Check(f"{split}_rows_ok", gxe.ExpectColumnValuesToBeBetween(
                   column=f"{split}_images", min_value=cfg.min_holdout_rows), _holdout_rows_line(split, cfg))
               for split in artifacts.SPLITS[1:]]
    expected = {split: getattr(info, f"{split}_count") for split in artifacts.SPLITS}
    checks += [Check(f"{split}_count_matches_info", gxe.ExpectColumnValuesToBeBetween(
                   column=f"{split}_images", min_value=expected[split], max_value=expected[split]),
                   _split_count_line(split, expected[split]))
               for split in artifacts.SPLITS]
    return [_named(check) for check in checks]


def _named(check: Check) -> Check:
    """Tag the expectation with its check name: results are matched back through `meta`."""
    expectation = check.expectation
    expectation.meta = {**(expectation.meta or {}), "check": check.name}
    return check


# --- failure lines ---------------------------------------------------------------------------------
# The per-column and per-split describers are built by a function each, so every one keeps its own column.

def _not_integer_line(column: str) -> Describe:
    return lambda r: f"{column}: dtype {r.get('observed_value')} is not an integer type"


def _not_positive_line(column: str) -> Describe:
    return lambda r: f"{column}: {_count(r)} images have a non-positive original size{_examples(r)}"


def _null_line(column: str) -> Describe:
    return lambda r: f"{column}: {_count(r)} rows have no value{_examples(r)}"


def _holdout_rows_line(split: str, cfg: ValidateConfig) -> Describe:
    return lambda r: (f"split: {split} has {_observed(r)} images, below "
                      f"validate.min_holdout_rows={cfg.min_holdout_rows}")


def _split_count_line(split: str, expected: int) -> Describe:
    return lambda r: f"split: {split} has {_observed(r)} images but dataset.json says {expected}"


def _observed(result: dict) -> Any:
    values = result.get("partial_unexpected_list") or ["?"]
    return values[0]


def _row_count_line(result: dict, cfg: ValidateConfig) -> str:
    rows = result.get("observed_value")
    if isinstance(rows, int) and rows < cfg.min_rows:
        return f"row count {rows} is below validate.min_rows={cfg.min_rows}"
    return f"row count {rows} is above validate.max_rows={cfg.max_rows}"


def _count(result: dict) -> str:
    count, total = result.get("unexpected_count"), result.get("element_count")
    return f"{count} of {total}" if total is not None else str(count)


def _duplicate_fraction(result: dict) -> str:
    unique = result.get("observed_value")
    return f"{1.0 - unique:.4g}" if isinstance(unique, (int, float)) else "unknown"


def _class_examples(result: dict) -> str:
    rows = (result.get("partial_unexpected_index_list") or [])[:EXAMPLES_IN_MESSAGE]
    shown = [f"class {row.get('label')}: {row.get('images')} images" for row in rows]
    return f" ({', '.join(shown)})" if shown else ""


def _examples(result: dict, values: bool = False, key: str | None = None,
              shorten: bool = False) -> str:
    """' (e.g. train #3, test #7)' from the offending rows GX reports, or the offending values."""
    if values:
        shown = [repr(v) for v in (result.get("partial_unexpected_list") or [])[:EXAMPLES_IN_MESSAGE]]
    else:
        rows = (result.get("partial_unexpected_index_list") or [])[:EXAMPLES_IN_MESSAGE]
        if key is not None:
            shown = [str(row.get(key))[:12] if shorten else str(row.get(key)) for row in rows]
        else:
            shown = [f"{row.get('split')} #{row.get('index')}" for row in rows if isinstance(row, dict)]
    return f" (e.g. {', '.join(shown)})" if shown else ""
