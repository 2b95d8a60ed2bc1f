"""`ganops promote` on a real SQLite store: the gate, its tags, idempotence and --force, invoked through
the real typer app (CliRunner) and once through the installed console script."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from ganops import tracking
from ganops.cli import app
from ganops.config import PromoteConfig
from ganops.errors import GanopsError
from ganops.registry import promotion
from tests.helpers import (
    VENV_BIN,
    clean_env,
    metrics,
    register_version,
    write_params,
)

NAME = "gan-generator"


@pytest.fixture
def params(tmp_path):
    return write_params(tmp_path / "params.yaml", register={"max_images_per_request": 16},
                        promote={"metric": "fd", "confidence": 0.95})


def promote(params, *extra):
    """(exit code, the command's own last line); MLflow may log a store migration before it."""
    result = CliRunner().invoke(app, ["promote", "--params", str(params), *extra])
    return result.exit_code, result.output.strip().splitlines()[-1]


def aliases():
    return {alias: str(version) for alias, version in tracking.client().get_registered_model(NAME).aliases.items()}


def tags(version):
    return tracking.client().get_model_version(NAME, version).tags


def test_promote_on_an_empty_registry_is_a_one_line_error(store, params):
    code, output = promote(params)
    assert code == 1
    assert output.startswith("ganops promote: error: models:/gan-generator@candidate: no such model version")


def test_first_registered_version_becomes_champion(store, tiny_generator, params):
    first = register_version(tiny_generator, metrics(5.0))
    assert first["champion"] == "1"
    assert aliases() == {"candidate": "1", "champion": "1"}
    assert tags("1")["promotion.reason"] == "first registered version: no champion yet"
    code, output = promote(params)
    assert (code, output) == (0, "no change: v1 is already champion")


def test_better_candidate_is_promoted_once_then_nothing_changes(store, tiny_generator, params, tmp_path):
    register_version(tiny_generator, metrics(5.0))
    register_version(tiny_generator, metrics(3.0))
    assert aliases() == {"candidate": "2", "champion": "1"}

    code, output = promote(params, "--out", str(tmp_path / "decision.json"))
    assert code == 0
    assert output == ("promoted gan-generator v2 to champion (was v1): fd 6 vs champion v1 10 (lower is better; "
                      "difference -4 to -4), candidate better in 100.0% of 200 paired bootstrap replicates, at "
                      "least the 95% required")
    assert aliases() == {"candidate": "2", "champion": "2"}
    assert tags("2")["promotion.decision"] == "promoted"
    assert tags("2")["promotion.replaced"] == "1" and tags("1")["promotion.replaced_by"] == "2"
    assert '"changed": true' in (tmp_path / "decision.json").read_text()

    before = tracking.client().get_model_version(NAME, "2")
    code, output = promote(params)
    assert (code, output) == (0, "no change: v2 is already champion")
    after = tracking.client().get_model_version(NAME, "2")
    assert aliases() == {"candidate": "2", "champion": "2"}
    assert after.tags == before.tags and after.last_updated_timestamp == before.last_updated_timestamp


def test_worse_candidate_is_rejected_with_its_reason_and_force_overrides(store, tiny_generator, params):
    register_version(tiny_generator, metrics(3.0))
    register_version(tiny_generator, metrics(4.0))

    code, output = promote(params)
    assert code == 0
    assert output.startswith("kept gan-generator v1 as champion, candidate v2 rejected: fd 8 vs champion v1 6 ")
    assert output.endswith("candidate better in 0.0% of 200 paired bootstrap replicates, below the 95% required")
    assert aliases() == {"candidate": "2", "champion": "1"}
    assert tags("2")["promotion.decision"] == "rejected"
    assert promote(params) == (code, output)  # a second refusal changes nothing either

    code, output = promote(params, "--force")
    assert code == 0 and output.startswith("forced gan-generator v2 to champion (was v1): --force; fd 8")
    assert aliases() == {"candidate": "2", "champion": "2"}
    assert tags("2")["promotion.decision"] == "forced"


def registry_state():
    """Everything a promotion may touch: the aliases and every version's tags and last update."""
    versions = tracking.client().search_model_versions(f"name='{NAME}'")
    return aliases(), {v.version: (v.tags, v.last_updated_timestamp) for v in versions}


@pytest.mark.parametrize("fd_ratios, extra, decision", [
    ((5.0, 3.0), (), "promoted gan-generator v2 to champion (was v1): fd 6 vs champion v1 10"),
    ((3.0, 4.0), (), "kept gan-generator v1 as champion, candidate v2 rejected: fd 8 vs champion v1 6"),
    ((3.0, 4.0), ("--force",), "forced gan-generator v2 to champion (was v1): --force; fd 8"),
])
def test_dry_run_prints_the_decision_and_changes_nothing(store, tiny_generator, params, tmp_path, fd_ratios,
                                                         extra, decision):
    for fd_ratio in fd_ratios:
        register_version(tiny_generator, metrics(fd_ratio))
    before = registry_state()

    code, output = promote(params, "--dry-run", *extra, "--out", str(tmp_path / "decision.json"))
    assert code == 0
    assert output.startswith(f"dry run, nothing changed; the gate would decide: {decision}")
    assert registry_state() == before
    written = json.loads((tmp_path / "decision.json").read_text())
    assert written["dry_run"] is True and written["changed"] is False and written["line"] == output

    # The real run takes exactly the decision the dry run announced.
    code, real = promote(params, *extra)
    assert code == 0 and output == f"dry run, nothing changed; the gate would decide: {real}"
    assert registry_state() != before


def test_dry_run_on_an_empty_registry_is_the_same_one_line_error(store, params):
    code, output = promote(params, "--dry-run")
    assert code == 1
    assert output.startswith("ganops promote: error: models:/gan-generator@candidate: no such model version")


def test_candidate_from_another_featurizer_is_not_compared(store, tiny_generator, params):
    register_version(tiny_generator, metrics(3.0, featurizer="a" * 40))
    register_version(tiny_generator, metrics(1.0, featurizer="b" * 40))
    code, output = promote(params)
    assert code == 0 and "featurizer bbbbbbbbbbbb differs from the champion's aaaaaaaaaaaa" in output
    assert aliases()["champion"] == "1"


def test_unknown_gate_metric_fails_when_params_load(store, tmp_path):
    params = write_params(tmp_path / "params.yaml", promote={"metric": "kid"})
    code, output = promote(params)
    assert code == 1
    assert output.endswith("promote.metric: 'kid' is not a metric the gate can decide on (one of fd, precision, "
                           "recall: those with paired bootstrap replicates)")


@pytest.mark.parametrize("metric, margin, candidate, champion, share", [
    ("fd", 0.0, [1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0], 1.0),  # better in every paired replicate
    ("fd", 0.0, [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], 0.0),  # a tie is no win
    ("fd", 1.5, [1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0], 0.0),  # better, but not by more than the margin
    ("fd", 0.0, [1.0, 3.5, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0], 0.75),
    ("recall", 0.0, [0.9, 0.9, 0.7, 0.9], [0.8, 0.8, 0.8, 0.8], 0.75),  # higher is better
])
def test_paired_comparison_counts_replicates_the_candidate_wins(metric, margin, candidate, champion, share):
    gate = PromoteConfig(metric=metric, min_improvement=margin)

    def evidence(replicates):  # estimates equal to the replicates' means: no centring shift
        return {metric: replicates, "estimates": {metric: float(np.mean(replicates))}}

    assert promotion.paired_comparison(gate, evidence(candidate), evidence(champion)).win_share == share


def test_pipeline_stage_refuses_a_candidate_it_did_not_register(store, tiny_generator):
    register_version(tiny_generator, metrics(3.0))
    register_version(tiny_generator, metrics(2.0))
    cfg = load_params_with_defaults()
    with pytest.raises(GanopsError, match="is v2, not the v1 this pipeline registered; nothing changed"):
        promotion.promote(cfg.registry, cfg.promote, expected_candidate="1")
    assert aliases()["champion"] == "1"
    assert promotion.promote(cfg.registry, cfg.promote, expected_candidate="2").champion_after == "2"


def test_installed_console_script(store, tiny_generator, tmp_path):
    register_version(tiny_generator, metrics(3.0))
    register_version(tiny_generator, metrics(2.0))
    params = write_params(tmp_path / "params.yaml")
    script = subprocess.run([str(VENV_BIN / "ganops"), "promote", "--params", str(params)],
                            env=clean_env(MLFLOW_TRACKING_URI=store), check=False, capture_output=True, text=True,
                            timeout=120)
    assert script.returncode == 0, script.stderr
    assert script.stdout.startswith("promoted gan-generator v2 to champion (was v1)")
    assert aliases()["champion"] == "2"


def load_params_with_defaults():
    from ganops.config import Params

    return Params()


def test_opt_in_promote_stage_is_valid_once_uncommented(repo_root):
    import yaml

    lines = (repo_root / "dvc.yaml").read_text().splitlines()
    start = lines.index("  # promote:")
    block = []
    for line in lines[start:]:
        if not line.startswith("  #"):
            break
        block.append("  " + line[len("  # "):])
    stage = yaml.safe_load("\n".join(block))["promote"]
    script, *args = stage["cmd"].split()[1:]
    assert (repo_root / script).exists() and script in stage["deps"]
    assert args[args.index("--registered") + 1] in stage["deps"]
    assert list(stage["outs"][0]) == [args[args.index("--out") + 1]]
    assert stage["params"] == ["promote"]
    assert "promote" not in yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]  # off by default


def test_a_version_without_evidence_is_refused_unless_forced(store, tiny_generator, params):
    register_version(tiny_generator, metrics(3.0))
    register_version(tiny_generator, metrics(2.0), evidence={})  # as if registered before evidence was kept
    code, output = promote(params)
    assert code == 1 and "v2: no paired bootstrap evidence with its model" in output
    assert aliases()["champion"] == "1"
    code, output = promote(params, "--force")
    assert code == 0 and output.startswith("forced gan-generator v2 to champion (was v1): --force; no verdict: ")
    assert aliases()["champion"] == "2"
