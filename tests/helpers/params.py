"""The one way tests shrink the pipeline's config: the repository's own `params.yaml` with a few small values
(300 digits, a few epochs, tiny networks, few samples), through the real validation (`parse_params`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from ganops.config import Params, parse_params
from tests.helpers.paths import REPO_ROOT

PARAMS_FILE = REPO_ROOT / "params.yaml"

# Small enough for seconds on 2 CPU cores; a test that depends on a value states it as an override.
SHRINK: dict[str, dict] = {
    "data": {"max_images": 300},  # 195 train + 45 validation + 60 test built-in digits
    "featurize": {"epochs": 3, "min_steps": 0, "feature_dim": 16},
    # max_seconds null: a run trains exactly its epochs, however busy the machine.
    "train": {"epochs": 2, "batch_size": 32, "latent_dim": 16, "base_filters": 8, "max_seconds": None},
    "evaluate": {"num_samples": 60, "bootstrap_replicates": 20, "kid_subsets": 5, "cas_steps": 50},
}


def _merged(overrides: dict[str, dict]) -> dict:
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    for changes in (SHRINK, overrides):
        for section, values in changes.items():
            raw[section] = {**raw.get(section, {}), **values}
    return raw


def shrunk_params(**overrides: dict) -> Params:
    """`params.yaml` shrunk by SHRINK, then each section updated by its override, e.g.
    `shrunk_params(train={"arch": "dcgan"}).train`. Invalid values fail as they would in `params.yaml`."""
    return parse_params(_merged(overrides), source="shrunk params.yaml")


def write_shrunk_params(path: Path, **overrides: dict) -> Path:
    """Write what `shrunk_params(**overrides)` holds as a `params.yaml` (every section and key, in the
    repository's order) for a stage process or `dvc repro`."""
    raw = _merged(overrides)
    parse_params(raw, source="shrunk params.yaml")
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def write_params(path: Path, **sections: dict) -> Path:
    """A params file holding exactly `sections` (unvalidated, the rest left to the defaults): for tests of
    specific values, invalid ones included."""
    path.write_text(yaml.safe_dump(sections))
    return path
