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

The checks themselves, one declarative table, live in `ganops.data.gx_checks`. Every check is a real GX
expectation in a real validation run. `run` writes the GX results, a flat
DVC-metrics summary and a Data Docs site into one folder in a single atomic swap, then raises
`GanopsError` when any check failed, so the Data Docs describing the failure are already on disk.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ganops import artifacts, offline_assets
from ganops.config import ValidateConfig
from ganops.data import gx_checks
from ganops.errors import GanopsError

RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.json"
DOCS_DIR = "docs"

_SITE_NAME = "ganops"
_DATA_SOURCE = "ganops"
_RUN_NAME = "ganops-validate"
_HTML_SPECIAL = re.compile(r"[&<>\"']")


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
    checked = gx_checks.tables(gxe, summary, info, cfg)
    with artifacts.atomic_path(out_dir) as tmp:
        tmp.mkdir()
        # GX resolves a relative base_directory against its own context root, not the working directory.
        results, report = _validate(gx, checked, docs_dir=(tmp / DOCS_DIR).resolve())
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


def _validate(gx, tables: list[gx_checks.Table], docs_dir: Path) -> tuple[dict[str, Any], ValidationReport]:
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
    run_id = RunIdentifier(run_name=_RUN_NAME, run_time=datetime.datetime.now(datetime.UTC))

    results, checks, failures = {}, {}, []
    for table in tables:
        batch = (data_source.add_dataframe_asset(table.name)
                 .add_batch_definition_whole_dataframe(table.name))
        suite = context.suites.add_or_update(gx.ExpectationSuite(
            name=table.name, expectations=[check.expectation for check in table.checks]))
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=table.name, data=batch, suite=suite))
        result = definition.run(
            batch_parameters={"dataframe": _html_safe(table.frame)}, run_id=run_id,
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


def _html_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its text values HTML-escaped. GX's Data Docs write a failed check's offending values into
    the page as raw HTML, and text such as `source` file names comes from the user's data; GX's results (and
    result.json) therefore hold the escaped text, the failure lines unescape it. A frame without `&<>"'` is not
    copied."""
    escaped = frame
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue
        special = values.map(lambda v: isinstance(v, str) and _HTML_SPECIAL.search(v) is not None)
        if special.any():
            if escaped is frame:
                escaped = frame.copy()
            escaped.loc[special, column] = values[special].map(html.escape)
    return escaped


def _failure_line(check: gx_checks.Check, outcome) -> str:
    error = _exception_message(outcome.exception_info or {})
    if error is not None:
        return f"{check.name}: could not be evaluated ({error.splitlines()[0] if error else 'no message'})"
    # The values GX saw were HTML-escaped for its pages (`_html_safe`); the terminal line shows them as written.
    return html.unescape(check.describe(outcome.result or {}))


def _exception_message(info: dict) -> str | None:
    # Either {"raised_exception": …, "exception_message": …} or one such dict per metric.
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "")
    return None
