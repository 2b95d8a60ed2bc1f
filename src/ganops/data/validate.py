"""Validate: a Great Expectations gate over the prepared data, run before anything trains on it.

GX checks the per-image summary table written by prepare (checking raw pixels one column at a time
would be far too slow) and, for the facts that belong to the whole dataset rather than to one image,
small tables derived from it:

- `images`: one row per image: schema, row count, pixel range, finiteness, blank images, labels,
  duplicate fraction, original shapes;
- `hashes`: one row per distinct image hash, with the number of splits it occurs in (leaks between train,
  validation and test);
- `classes`: one row per class, with its image count as a share of the largest class (labelled data only);
- `splits`: one row with the size of each split, next to what `dataset.json` says.

Every check is a real GX expectation in a real validation run. `run` writes the GX results, a flat
DVC-metrics summary and a Data Docs site into one folder in a single atomic swap, then raises
`GanopsError` when any check failed, so the Data Docs describing the failure are already on disk.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ganops import artifacts, offline_assets
from ganops.config import ValidateConfig
from ganops.errors import GanopsError

RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.json"
DOCS_DIR = "docs"

# The prepared format's pixel range (see `artifacts`): a contract, not a tunable threshold.
PIXEL_LOW, PIXEL_HIGH = -1.0, 1.0
INTEGER_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
ORIG_SHAPE_COLUMNS = ("orig_height", "orig_width", "orig_channels")
EXAMPLES_IN_MESSAGE = 3  # how many offending rows a failure line names

_SITE_NAME = "ganops"
_DATA_SOURCE = "ganops"
_RUN_NAME = "ganops-validate"


@dataclasses.dataclass(frozen=True)
class ValidationReport:
    success: bool
    failures: list[str]  # one readable line per failed check, in check order
    checks: dict[str, bool]  # every check by name: passed or not
    rows: int = 0  # images validated (rows of the per-image summary table)

    @property
    def evaluated(self) -> int:
        return len(self.checks)

    @property
    def passed(self) -> int:
        return sum(self.checks.values())

    def summary(self) -> dict[str, Any]:
        """Every check by name, written as `summary.json` beside the Data Docs."""
        return {"success": self.success, "evaluated": self.evaluated,
                "successful": self.passed, "failed": self.evaluated - self.passed, **self.checks}

    def verdict(self) -> artifacts.ValidationVerdict:
        """The slim record for `dvc exp show` and MLflow's dataset records: success, counts, failed names."""
        return artifacts.ValidationVerdict(
            success=self.success, rows=self.rows, checks=self.evaluated, failed=self.evaluated - self.passed,
            failed_checks=", ".join(name for name, ok in self.checks.items() if not ok))


# A failure describer turns a GX expectation result (its `result` dict) into one readable line.
Describe = Callable[[dict[str, Any]], str]


@dataclasses.dataclass(frozen=True)
class _Check:
    name: str  # the key in summary.json
    expectation: Any  # a great_expectations.expectations.Expectation
    describe: Describe


@dataclasses.dataclass(frozen=True)
class _Table:
    name: str  # GX asset, suite and validation definition name
    frame: pd.DataFrame
    index_columns: list[str]  # identify offending rows in results and Data Docs
    checks: list[_Check]


def run(prepared_dir: str | Path, cfg: ValidateConfig, out_dir: str | Path,
        verdict_path: str | Path | None = None) -> ValidationReport:
    """Validate `prepared_dir`; write result.json, summary.json and docs/ into `out_dir`, and the slim verdict
    (`ValidationReport.verdict`) to `verdict_path` when given.

    Raises GanopsError after writing the outputs when any check fails.
    """
    prepared_dir, out_dir = Path(prepared_dir), Path(out_dir)
    prepared = artifacts.PreparedData(prepared_dir)
    summary = artifacts.read_summary(prepared.summary_path)
    info = prepared.read_info()
    missing = [column for column in artifacts.SUMMARY_COLUMNS if column not in summary.columns]
    if missing:  # the derived tables need every column; GX then checks there are no extra ones
        raise GanopsError(f"{prepared.summary_path}: missing columns {missing}")

    gx, gxe = _import_gx()
    tables = _tables(gxe, summary, info, cfg)
    with artifacts.atomic_path(out_dir) as tmp:
        tmp.mkdir()
        # GX resolves a relative base_directory against its own context root, not the working directory.
        results, report = _validate(gx, tables, docs_dir=(tmp / DOCS_DIR).resolve())
        # GX's pages load their styling, icons and scripts from CDNs; point them at local pinned copies.
        docs = offline_assets.localize_data_docs(tmp / DOCS_DIR)
        if docs.warning:
            print(f"validate: warning: {docs.warning}", file=sys.stderr, flush=True)
        (tmp / RESULT_FILE).write_text(json.dumps({
            "failures": report.failures,
            "validations": {name: result.to_json_dict() for name, result in results.items()},
        }, indent=2) + "\n")
        artifacts.write_json(tmp / SUMMARY_FILE, report.summary())
    if verdict_path is not None:
        artifacts.write_record(verdict_path, report.verdict())

    if not report.success:
        raise GanopsError(
            f"validation failed: {len(report.failures)} of {report.evaluated} checks failed: "
            f"{report.failures[0]}; see {out_dir / DOCS_DIR / 'index.html'}")
    return report


def _import_gx():
    # GX reads this at import time; the pipeline never sends usage statistics.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx, gxe


def _validate(gx, tables: list[_Table], docs_dir: Path) -> tuple[dict[str, Any], ValidationReport]:
    """Run one GX validation per table in one ephemeral context; build Data Docs into `docs_dir`."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    # The ephemeral context's own site writes to a temporary folder; ours lives in the stage output.
    context.add_data_docs_site(site_name=_SITE_NAME, site_config={
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
    })
    data_source = context.data_sources.add_pandas(_DATA_SOURCE)
    run_id = RunIdentifier(run_name=_RUN_NAME, run_time=datetime.datetime.now(datetime.timezone.utc))

    results, checks, failures = {}, {}, []
    for table in tables:
        batch = (data_source.add_dataframe_asset(table.name)
                 .add_batch_definition_whole_dataframe(table.name))
        suite = context.suites.add_or_update(gx.ExpectationSuite(
            name=table.name, expectations=[check.expectation for check in table.checks]))
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=table.name, data=batch, suite=suite))
        result = definition.run(
            batch_parameters={"dataframe": table.frame}, run_id=run_id,
            result_format={"result_format": "SUMMARY", "unexpected_index_column_names": table.index_columns})
        results[table.name] = result
        by_check = {r.expectation_config.meta["check"]: r for r in result.results}
        for check in table.checks:
            outcome = by_check[check.name]
            checks[check.name] = bool(outcome.success)
            if not outcome.success:
                failures.append(_failure_line(check, outcome))

    context.build_data_docs(site_names=[_SITE_NAME])
    return results, ValidationReport(success=not failures, failures=failures, checks=checks,
                                     rows=len(tables[0].frame))  # tables[0]: one row per image


def _failure_line(check: _Check, outcome) -> str:
    error = _exception_message(outcome.exception_info or {})
    if error is not None:
        return f"{check.name}: could not be evaluated ({error.splitlines()[0] if error else 'no message'})"
    return check.describe(outcome.result or {})


def _exception_message(info: dict) -> str | None:
    # Either {"raised_exception": …, "exception_message": …} or one such dict per metric.
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "")
    return None


# --- the tables and their checks -------------------------------------------------------------------

def _tables(gxe, summary: pd.DataFrame, info: artifacts.DatasetInfo, cfg: ValidateConfig) -> list[_Table]:
    tables = [
        _Table("images", summary, ["split", "index"], _image_checks(gxe, info, cfg)),
        _Table("hashes", _hash_table(summary), ["hash"], _hash_checks(gxe)),
    ]
    if info.labelled:
        classes = _class_table(summary, info.num_classes)
        tables.append(_Table("classes", classes, ["label", "images"],
                             _class_checks(gxe, cfg, largest=int(classes["images"].max()))))
    tables.append(_Table("splits", _split_table(summary), [], _split_checks(gxe, info, cfg)))
    return tables


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


def _image_checks(gxe, info: artifacts.DatasetInfo, cfg: ValidateConfig) -> list[_Check]:
    checks = [
        _Check("columns_match", gxe.ExpectTableColumnsToMatchSet(
            column_set=list(artifacts.SUMMARY_COLUMNS), exact_match=True),
            lambda r: f"columns: the summary table has columns {r.get('observed_value')}, "
                      f"expected {list(artifacts.SUMMARY_COLUMNS)}"),
        _Check("row_count_in_range", gxe.ExpectTableRowCountToBeBetween(
            min_value=cfg.min_rows, max_value=cfg.max_rows), lambda r: _row_count_line(r, cfg)),
        # First among pixel checks: a NaN pixel also turns the image's min/max/std into NaN.
        _Check("pixels_finite", gxe.ExpectColumnValuesToBeBetween(
            column="nonfinite", min_value=0, max_value=0),
            lambda r: f"nonfinite: {_count(r)} images contain NaN or infinite pixels{_examples(r)}"),
        _Check("pixel_min_in_range", gxe.ExpectColumnValuesToBeBetween(column="min", min_value=PIXEL_LOW),
            lambda r: f"min: {_count(r)} images have pixels below {PIXEL_LOW:g}, outside the prepared range "
                      f"[{PIXEL_LOW:g}, {PIXEL_HIGH:g}]{_examples(r)}"),
        _Check("pixel_max_in_range", gxe.ExpectColumnValuesToBeBetween(column="max", max_value=PIXEL_HIGH),
            lambda r: f"max: {_count(r)} images have pixels above {PIXEL_HIGH:g}, outside the prepared range "
                      f"[{PIXEL_LOW:g}, {PIXEL_HIGH:g}]{_examples(r)}"),
        _Check("no_constant_images", gxe.ExpectColumnValuesToBeBetween(
            column="std", min_value=cfg.min_image_std, strict_min=True),
            lambda r: f"std: {_count(r)} images are constant (pixel std <= validate.min_image_std="
                      f"{cfg.min_image_std:g}){_examples(r)}"),
    ]
    if info.labelled:
        checks.append(_Check("labels_in_range", gxe.ExpectColumnValuesToBeBetween(
            column="label", min_value=0, max_value=info.num_classes - 1),
            lambda r: f"label: {_count(r)} images have a label outside [0, {info.num_classes}) "
                      f"(dataset.json num_classes={info.num_classes}){_examples(r, values=True)}"))
    else:
        checks.append(_Check("labels_in_range", gxe.ExpectColumnValuesToBeInSet(
            column="label", value_set=[-1]),
            lambda r: f"label: {_count(r)} images have a label but dataset.json says the data is unlabelled"
                      f"{_examples(r, values=True)}"))
    checks.append(_Check("duplicate_fraction_ok", gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
        # unique proportion = distinct hashes / images = 1 - duplicate fraction
        column="hash", min_value=1.0 - cfg.max_duplicate_fraction),
        lambda r: f"hash: duplicate fraction {_duplicate_fraction(r)} is above "
                  f"validate.max_duplicate_fraction={cfg.max_duplicate_fraction:g}"))
    checks.append(_Check("splits_known", gxe.ExpectColumnValuesToBeInSet(
        column="split", value_set=list(artifacts.SPLITS)),
        lambda r: f"split: {_count(r)} rows have a split other than {'/'.join(artifacts.SPLITS)}"
                  f"{_examples(r, values=True)}"))
    for column in (*ORIG_SHAPE_COLUMNS, "label", "nonfinite"):
        checks.append(_Check(f"{column}_integer", gxe.ExpectColumnValuesToBeInTypeList(
            column=column, type_list=INTEGER_DTYPES),
            lambda r, column=column: f"{column}: dtype {r.get('observed_value')} is not an integer type"))
    for column in ORIG_SHAPE_COLUMNS:
        checks.append(_Check(f"{column}_positive", gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=1),
            lambda r, column=column: f"{column}: {_count(r)} images have a non-positive original size"
                                     f"{_examples(r)}"))
    # Range and set expectations skip missing values, so every column is also checked for them.
    for column in artifacts.SUMMARY_COLUMNS:
        checks.append(_Check(f"{column}_not_null", gxe.ExpectColumnValuesToNotBeNull(column=column),
            lambda r, column=column: f"{column}: {_count(r)} rows have no value{_examples(r)}"))
    return [_named(check) for check in checks]


def _hash_checks(gxe) -> list[_Check]:
    return [_named(_Check("no_split_overlap", gxe.ExpectColumnValuesToBeBetween(
        column="splits", max_value=1),
        lambda r: f"hash: {_count(r)} distinct images appear in more than one of "
                  f"{'/'.join(artifacts.SPLITS)}"
                  f"{_examples(r, key='hash', shorten=True)}"))]


def _class_checks(gxe, cfg: ValidateConfig, largest: int) -> list[_Check]:
    return [_named(_Check("class_balance", gxe.ExpectColumnValuesToBeBetween(
        column="share_of_largest", min_value=cfg.min_class_ratio),
        lambda r: f"label: {_count(r)} classes have fewer than validate.min_class_ratio="
                  f"{cfg.min_class_ratio:g} x the largest class ({largest} images){_class_examples(r)}"))]


def _split_checks(gxe, info: artifacts.DatasetInfo, cfg: ValidateConfig) -> list[_Check]:
    def observed(r: dict) -> Any:
        values = r.get("partial_unexpected_list") or ["?"]
        return values[0]

    checks = [_Check("train_not_empty", gxe.ExpectColumnValuesToBeBetween(column="train_images", min_value=1),
                     lambda r: "split: the train split is empty")]
    for split in artifacts.SPLITS[1:]:
        checks.append(_Check(f"{split}_rows_ok", gxe.ExpectColumnValuesToBeBetween(
            column=f"{split}_images", min_value=cfg.min_holdout_rows),
            lambda r, split=split: f"split: {split} has {observed(r)} images, below "
                                   f"validate.min_holdout_rows={cfg.min_holdout_rows}"))
    for split in artifacts.SPLITS:
        expected = getattr(info, f"{split}_count")
        checks.append(_Check(f"{split}_count_matches_info", gxe.ExpectColumnValuesToBeBetween(
            column=f"{split}_images", min_value=expected, max_value=expected),
            lambda r, split=split, expected=expected: f"split: {split} has {observed(r)} images but "
                                                      f"dataset.json says {expected}"))
    return [_named(check) for check in checks]


def _named(check: _Check) -> _Check:
    """Tag the expectation with its check name: results are matched back through `meta`."""
    expectation = check.expectation
    expectation.meta = {**(expectation.meta or {}), "check": check.name}
    return check


# --- failure lines ---------------------------------------------------------------------------------

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
