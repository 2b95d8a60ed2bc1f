"""The promotion gate: whether the candidate version replaces the champion, decided on the paired bootstrap
evidence each version carries (`EVIDENCE_KEY`), and the champion alias moved with the reason tagged on both
versions. Imports no TensorFlow: `ganops promote` starts in seconds."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from ganops import artifacts, metric_specs, tracking
from ganops.config import PromoteConfig, RegisterConfig
from ganops.errors import GanopsError

EVIDENCE_KEY = "ganops_evidence"  # the logged model's metadata entry holding evaluate's paired evidence
# What must be equal for two versions' bootstrap replicates to be paired: the same test data, featurizer,
# sample count and draws.
PAIRING_KEYS = ("data_hash", "featurizer_hash", "num_samples", "bootstrap_replicates", "seed")


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the gate decided for one candidate: the champion alias before and after, and why."""

    name: str
    alias: str  # the champion alias
    candidate: str  # version numbers, as strings
    champion_before: str | None
    champion_after: str | None
    outcome: str  # promoted | forced | rejected | unchanged
    reason: str
    dry_run: bool = False  # computed only: no alias moved, no tag set

    @property
    def moves_champion(self) -> bool:
        return self.champion_before != self.champion_after

    @property
    def changed(self) -> bool:
        """Whether the champion alias moved: never for a dry run (see `moves_champion`)."""
        return self.moves_champion and not self.dry_run

    def line(self) -> str:
        prefix = "dry run, nothing changed; the gate would decide: " if self.dry_run else ""
        if self.outcome in ("promoted", "forced"):
            was = f" (was v{self.champion_before})" if self.champion_before else ""
            return f"{prefix}{self.outcome} {self.name} v{self.candidate} to {self.alias}{was}: {self.reason}"
        if self.outcome == "rejected":
            return (f"{prefix}kept {self.name} v{self.champion_before} as {self.alias}, candidate v{self.candidate} "
                    f"rejected: {self.reason}")
        return f"{prefix}no change: {self.reason}"


def alias_version(client, name: str, alias: str) -> Any | None:
    """The version `alias` points at; None when the model or the alias does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        # A missing model is RESOURCE_DOES_NOT_EXIST; a missing alias only says so in its message.
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            return None
        raise


def _evidence(name: str, version: Any) -> dict:
    """The evaluate stage's paired evidence stored with a version's logged model."""
    try:
        info = mlflow.models.get_model_info(f"models:/{name}/{version.version}")
    except MlflowException as exc:
        raise GanopsError(f"{name} v{version.version}: cannot read its logged model ({str(exc).splitlines()[0]})"
                          ) from None
    evidence = (info.metadata or {}).get(EVIDENCE_KEY)
    if not evidence:
        raise GanopsError(f"{name} v{version.version}: no paired bootstrap evidence with its model (registered "
                          "before the gate needed it); re-register it or use --force")
    return evidence


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The paired bootstrap verdict on one gate metric: candidate vs champion on the same draws."""

    metric: str
    direction: str
    candidate: float
    champion: float
    win_share: float  # share of paired replicates in which the candidate is better by > min_improvement
    difference_interval: tuple[float, float]  # candidate − champion, 95% (centred replicates)
    replicates: int

    def wins(self, confidence: float) -> bool:
        return self.win_share >= confidence


def paired_comparison(gate: PromoteConfig, candidate: dict, champion: dict) -> Comparison:
    """Compare the candidate's and the champion's replicates of `gate.metric` pairwise (replicate b of each
    resampled the same rows of the same reference): the candidate wins when it is better in at least
    `gate.confidence` of the replicates."""
    from ganops.features import metrics  # numpy only: no TensorFlow

    direction = metric_specs.BY_NAME[gate.metric].direction
    differences = np.asarray(candidate[gate.metric], np.float64) - np.asarray(champion[gate.metric], np.float64)
    sign = 1.0 if direction == "lower" else -1.0
    # Centred on the difference of the point estimates the metrics report, as every interval here is.
    estimate = candidate["estimates"][gate.metric] - champion["estimates"][gate.metric]
    centred = metrics.centred_replicates(differences, estimate)
    win_share = float(np.mean(sign * centred < -gate.min_improvement))
    return Comparison(gate.metric, direction, candidate["estimates"][gate.metric],
                      champion["estimates"][gate.metric], win_share,
                      metrics.percentile_interval(centred), len(differences))


def _not_comparable(candidate: dict, champion: dict) -> str | None:
    for key in PAIRING_KEYS:
        if candidate.get(key) != champion.get(key):
            return (f"{key} differs ({str(candidate.get(key))[:12]} vs the champion's {str(champion.get(key))[:12]}):"
                    " the bootstrap replicates are not paired")
    return None


def gate_verdict(gate: PromoteConfig, candidate: dict, champion: dict, champion_version: str) -> tuple[bool, str]:
    """(promote?, the evidence in one clause) for two versions' evidence."""
    if candidate["copying"] > candidate["copying_floor_high"]:
        return False, (f"copying {candidate['copying']:.3f} is above the real floor's interval (up to "
                       f"{candidate['copying_floor_high']:.3f}): its samples sit nearer the training images "
                       "than new real images do")
    if gate.require_same_featurizer and candidate.get("featurizer_hash") != champion.get("featurizer_hash"):
        return False, (f"featurizer {str(candidate.get('featurizer_hash'))[:12]} differs from the champion's "
                       f"{str(champion.get('featurizer_hash'))[:12]}, so {gate.metric} is not comparable "
                       "(promote.require_same_featurizer)")
    problem = _not_comparable(candidate, champion)
    if problem:
        return False, problem
    result = paired_comparison(gate, candidate, champion)
    low, high = result.difference_interval
    margin = f" by more than {gate.min_improvement:g}" if gate.min_improvement else ""
    evidence = (f"{result.metric} {result.candidate:.4g} vs champion v{champion_version} {result.champion:.4g} "
                f"({result.direction} is better; difference {low:+.3g} to {high:+.3g}), candidate better{margin} in "
                f"{result.win_share:.1%} of {result.replicates} paired bootstrap replicates, "
                f"{'at least' if result.wins(gate.confidence) else 'below'} the {gate.confidence:.0%} required")
    return result.wins(gate.confidence), evidence


def _record(client, decision: Decision) -> None:
    """Apply a decision to the registry: move the champion alias and tag both versions with why. A server that
    refuses (MLflow authentication: PERMISSION_DENIED) raises a GanopsError naming the permission needed."""
    try:
        _apply(client, decision)
    except MlflowException as exc:
        if exc.error_code != "PERMISSION_DENIED":
            raise
        raise GanopsError(permission_denied(decision)) from None


def permission_denied(decision: Decision) -> str:
    """One line: who lacks which permission on what, for what (the alias is moved first, so nothing changed)."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    who = f"user {user}" if user else "this client (no MLFLOW_TRACKING_USERNAME)"
    action = (f"to move the {decision.alias} alias to v{decision.candidate}" if decision.moves_champion
              else f"to record the decision on v{decision.candidate} as version tags")
    return (f"{tracking.tracking_uri()}: permission denied: {who} needs EDIT or MANAGE on registered model "
            f"{decision.name} {action}; {decision.alias} is unchanged")


def _apply(client, decision: Decision) -> None:
    name, version, before = decision.name, decision.candidate, decision.champion_before
    if decision.outcome in ("promoted", "forced"):
        client.set_registered_model_alias(name, decision.alias, version)
    if decision.outcome != "unchanged":
        client.set_model_version_tag(name, version, "promotion.decision", decision.outcome)
        client.set_model_version_tag(name, version, "promotion.reason", decision.reason)
    if decision.moves_champion and before:
        client.set_model_version_tag(name, version, "promotion.replaced", before)
        client.set_model_version_tag(name, before, "promotion.replaced_by", version)


def edge_version(client, name: str, newest: bool) -> str | None:
    """The number of the model's newest (else oldest) version still in the registry, as a string."""
    order = "DESC" if newest else "ASC"
    found = client.search_model_versions(f"name = '{name}'", max_results=1, order_by=[f"version_number {order}"])
    return str(found[0].version) if found else None


def crown_first_version(client, cfg: RegisterConfig, version: str) -> str | None:
    """Make `version` champion when it is the model's first (lowest-numbered) version and there is no champion
    yet, recorded like any promotion; return the champion's version then, else None.

    Only the first version is ever crowned here: parallel first registrations (queued experiments) may all find
    no champion, and MLflow has no set-if-absent, so "the one that finds none" would crown several in turn."""
    if (str(version) != edge_version(client, cfg.model_name, newest=False)
            or alias_version(client, cfg.model_name, cfg.champion_alias) is not None):
        return None
    decision = Decision(cfg.model_name, cfg.champion_alias, version, None, version, "promoted",
                        "first registered version: no champion yet")
    _record(client, decision)
    return decision.champion_after


def decide(cfg: RegisterConfig, gate: PromoteConfig, force: bool = False,
           expected_candidate: str | None = None) -> Decision:
    """What `promote` would do, read from the registry without changing it."""
    client = tracking.client()
    candidate = alias_version(client, cfg.model_name, cfg.alias)
    if candidate is None:
        raise GanopsError(f"models:/{cfg.model_name}@{cfg.alias}: no such model version in "
                          f"{tracking.tracking_uri()} (run the register stage first)")
    # Versions are ints from a SQLite store and strings from a tracking server: compare as strings.
    v = str(candidate.version)
    if expected_candidate is not None and v != str(expected_candidate):
        raise GanopsError(f"models:/{cfg.model_name}@{cfg.alias} is v{candidate.version}, not the v"
                          f"{expected_candidate} this pipeline registered; nothing changed")
    champion = alias_version(client, cfg.model_name, cfg.champion_alias)
    if champion is None:
        return Decision(cfg.model_name, cfg.champion_alias, v, None, v, "promoted", "no champion yet")
    previous = str(champion.version)
    if previous == v:
        return Decision(cfg.model_name, cfg.champion_alias, v, v, v, "unchanged",
                        f"v{v} is already {cfg.champion_alias}")

    try:
        wins, why = gate_verdict(gate, _evidence(cfg.model_name, candidate), _evidence(cfg.model_name, champion),
                                 previous)
    except GanopsError as exc:  # e.g. a version registered without evidence: --force still moves the alias
        if not force:
            raise
        wins, why = False, f"no verdict: {exc}"
    if force:
        return Decision(cfg.model_name, cfg.champion_alias, v, previous, v, "forced", f"--force; {why}")
    if wins:
        return Decision(cfg.model_name, cfg.champion_alias, v, previous, v, "promoted", why)
    return Decision(cfg.model_name, cfg.champion_alias, v, previous, previous, "rejected", why)


def promote(cfg: RegisterConfig, gate: PromoteConfig, force: bool = False,
            expected_candidate: str | None = None, dry_run: bool = False) -> Decision:
    """Move the champion alias to the candidate when the gate finds it better on evidence (`gate_verdict`), or
    when forced, or when there is no champion, and record why as version tags. Idempotent: a second call finds
    nothing to change.

    `expected_candidate`: refuse, changing nothing, unless the candidate alias points at this version.
    `dry_run`: return the same decision (its `line()` says it is a dry run) without moving an alias or
    setting a tag."""
    decision = decide(cfg, gate, force=force, expected_candidate=expected_candidate)
    if dry_run:
        return dataclasses.replace(decision, dry_run=True)
    _record(tracking.client(), decision)
    return decision


def write_decision(path: str | Path, decision: Decision) -> None:
    artifacts.write_json(path, {**dataclasses.asdict(decision), "changed": decision.changed,
                                "line": decision.line()})
