"""The champion as data: the version the champion alias points at, with its featurizer hash and metric tags.

The evaluate stage's entry point looks it up and hands it to `evaluation.evaluate.run`, whose report compares the
new model with it, so evaluation itself never imports the registry."""

from __future__ import annotations

from mlflow.exceptions import MlflowException

from ganops import tracking
from ganops.config import RegisterConfig
from ganops.registry import registration


def summary(cfg: RegisterConfig) -> dict | None:
    """The `cfg.champion_alias` version of `cfg.model_name`: its number, run, featurizer hash and `metric.*` tags;
    None when there is no such model or alias yet, or the registry cannot say."""
    try:
        version = tracking.client().get_model_version_by_alias(cfg.model_name, cfg.champion_alias)
    except MlflowException:
        return None
    return {"name": cfg.model_name, "alias": cfg.champion_alias, "version": str(version.version),
            "run_id": version.run_id, "featurizer_hash": version.tags.get(registration.FEATURIZER_TAG),
            "metrics": registration.tagged_metrics(version.tags)}
