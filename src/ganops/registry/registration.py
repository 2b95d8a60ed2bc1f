"""Registration: the EMA generator logged as a pyfunc model in this execution's MLflow record and registered
as a new version, carrying its metrics as version tags, a description, and the gate's paired evidence in its
metadata (`promotion.EVIDENCE_KEY`); the candidate alias set, and the first version made champion.

The logged model is "models from code" rather than a pickled object: its code file (`MODEL_CODE`) only imports
`GeneratorModel` from the ganops package the model carries (`code_paths`), so loading never unpickles anything
and the model keeps working with the code it was registered with.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ganops import artifacts, lineage, metric_specs, tracking
from ganops.config import RegisterConfig
from ganops.errors import GanopsError
from ganops.registry import promotion, serving

ARTIFACT_NAME = "generator"  # the logged model's name within the run
SETTINGS_FILE = "settings.json"
MODEL_CODE_FILE = "ganops_generator_model.py"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/ganops: the code the logged model carries
METRIC_TAG = "metric."  # version tag prefix of each evaluate metric: metric.fd_ratio, ...
MODEL_PARAMS_PREFIX = "train."  # the record's params the logged model carries too
REGISTERED_TAG = "ganops.registered_version"  # on the record: which version it registered
FEATURIZER_TAG = "featurizer_hash"
ALIAS_ATTEMPTS = 20  # rounds of setting the candidate alias while parallel registrations add versions

# The whole model file that MLflow stores and executes at load time ("models from code").
MODEL_CODE = '''\
"""ganops generator as an MLflow pyfunc model; the class lives in the ganops package shipped in code/."""
import mlflow

from ganops.registry.serving import GeneratorModel

mlflow.models.set_model(GeneratorModel())
'''


def _tag_value(value: Any) -> str:
    # str(float) is the shortest text that reads back as the same float: the gate compares exact values.
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, list | dict) else str(value)


def tagged_metrics(tags: dict[str, str]) -> dict[str, float]:
    """The numeric `metric.*` tags of a version, without the prefix (unparsable values are skipped)."""
    values = {}
    for key, raw in tags.items():
        if key.startswith(METRIC_TAG):
            try:
                values[key.removeprefix(METRIC_TAG)] = float(raw)
            except ValueError:
                continue
    return values


def version_tags(metrics: dict[str, Any], record_tags: dict[str, str]) -> dict[str, str]:
    """What a version carries for the gate and for operators: evaluate's model metrics, the featurizer and
    data hashes, the git commit and DVC experiment of its record. Params stay on the record (the run) and
    the logged model; the version's own run id links to them."""
    tags = {}
    for key, value in metrics.items():
        if key == FEATURIZER_TAG:
            tags[FEATURIZER_TAG] = str(value)
        elif isinstance(value, bool | int | float):
            tags[f"{METRIC_TAG}{key}"] = _tag_value(value)
    # The record's lineage tags, under the version's own names.
    for tag, key in ((lineage.DATA_HASH_TAG, "data_hash"), (lineage.COMMIT_TAG, "git_commit"),
                     (lineage.EXPERIMENT_TAG, "dvc_experiment")):
        if record_tags.get(tag):
            tags[key] = record_tags[tag]
    if "git_commit" not in tags and (commit := tracking.git_commit()):
        tags["git_commit"] = commit
    return tags


def describe(run_id: str, tags: dict[str, str], settings: dict[str, Any]) -> str:
    # Rounded for reading; the tags keep the exact values the gate compares.
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(tagged_metrics(tags).items()))
    kind = (f"conditional on {settings['num_classes']} labels" if settings["num_classes"]
            else "unconditional")
    short = {k: (tags.get(k) or "unknown")[:12] for k in ("git_commit", "data_hash", FEATURIZER_TAG)}
    experiment = f" of DVC experiment {tags['dvc_experiment']}" if tags.get("dvc_experiment") else ""
    return (f"EMA generator of run {run_id}{experiment}, {kind}, latent_dim "
            f"{settings['latent_dim']}, images {'x'.join(map(str, settings['image_shape']))}.\n"
            f"Metrics: {metrics or 'none'}.\n"
            f"Commit {short['git_commit']}, data {short['data_hash']}, featurizer {short['featurizer_hash']}.\n"
            f'Request rows: {{"n": count, "seed": s}} or {{"latent": [{settings["latent_dim"]} numbers]}}, '
            'plus "label" when conditional; n, seed and label are whole numbers, as ints or floats (the '
            f'signature types them Any: the model checks them); at most {settings["max_images_per_request"]} '
            'images per request; params {"format": "png"} returns base64 PNGs instead of NHWC floats in [-1, 1].')


def log_and_register(cfg: RegisterConfig, generator_path: Path, metrics: dict[str, Any],
                     evidence: dict[str, Any]) -> dict:
    """Log the generator as a pyfunc model into the active run (this execution's record), register it as a
    new version with its tags and description in one call, point `cfg.alias` at it, and make it champion
    when there is none yet."""
    generator = serving.load_sampling().load_generator(generator_path)
    settings = {"max_images_per_request": cfg.max_images_per_request,
                "latent_dim": serving.load_sampling().latent_dim(generator),
                "num_classes": serving.num_classes(generator),
                "image_shape": [int(d) for d in generator.outputs[0].shape[1:]]}
    client = tracking.client()
    run_id = tracking.active_run_id()
    run = client.get_run(run_id)
    tags = version_tags(metrics, run.data.tags)
    with tempfile.TemporaryDirectory() as tmp:
        settings_path = Path(tmp) / SETTINGS_FILE
        settings_path.write_text(json.dumps(settings))
        code_path = Path(tmp) / MODEL_CODE_FILE
        code_path.write_text(MODEL_CODE)
        info = mlflow.pyfunc.log_model(
            name=ARTIFACT_NAME,
            python_model=str(code_path),
            artifacts={"generator": str(generator_path), "settings": str(settings_path)},
            code_paths=[str(PACKAGE_DIR)],  # the model carries its own ganops code
            signature=serving.signature(tuple(settings["image_shape"])),
            input_example=serving.input_example(settings["num_classes"]),
            # Stored in the MLmodel file: `promote` reads it without downloading the generator.
            metadata={"ganops": settings, promotion.EVIDENCE_KEY: evidence},
            # Listed, not inferred: inference loads the model in a subprocess and takes minutes.
            pip_requirements=_requirements(),
            # The hyperparameters that made this generator; the record holds every section.
            params={k: v for k, v in run.data.params.items() if k.startswith(MODEL_PARAMS_PREFIX)},
        )
    _ensure_registered_model(client, cfg.model_name)
    version = str(client.create_model_version(
        cfg.model_name, source=info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id,
        description=describe(run_id, tags, settings)).version)
    point_at_newest(client, cfg.model_name, cfg.alias, version)
    registered = {"name": cfg.model_name, "version": version, "alias": cfg.alias, "run_id": run_id,
                  "model_uri": f"models:/{cfg.model_name}@{cfg.alias}", "model_id": info.model_id}
    champion = promotion.crown_first_version(client, cfg, version)
    if champion is not None:
        registered["champion"] = champion
    mlflow.set_tag(REGISTERED_TAG, f"{cfg.model_name}/{version}")
    return registered


def point_at_newest(client: MlflowClient, name: str, alias: str, version: str) -> str:
    """Point `alias` at `version`, or at a newer version when a parallel registration (queued experiments) made
    one: MLflow has no compare-and-set, so each registration re-reads the newest version after setting the alias
    and sets it again until they agree. Whichever writes last has then seen the newest. Returns the version the
    alias points at."""
    target = str(version)
    for _ in range(ALIAS_ATTEMPTS):
        client.set_registered_model_alias(name, alias, target)
        newest = promotion.edge_version(client, name, newest=True)
        if newest is None or int(newest) <= int(target):
            return target
        target = newest
    raise GanopsError(f"models:/{name}@{alias}: newer versions kept appearing; set the alias by hand")


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):  # another execution made it
            raise


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in
            ("tensorflow", "keras", "mlflow", "numpy", "pandas", "pillow")]


def gate_evidence(metrics: dict[str, Any], paired: dict[str, Any]) -> dict[str, Any]:
    """What the gate needs of a version: evaluate's paired replicates and their pairing keys, plus the point
    estimates the replicates are centred on."""
    return {**paired, "estimates": {name: metrics[name] for name in metric_specs.GATE_METRICS if name in metrics}}


def run(cfg: RegisterConfig, model_dir: str | Path, metrics_path: str | Path, paired_path: str | Path,
        out_path: str | Path, inputs: lineage.Inputs) -> dict:
    """The register stage, in this execution's MLflow record (`inputs` describe it, should the record start
    here: a `dvc exp run` that changed only register's params)."""
    model_folder = artifacts.ModelFolder(Path(model_dir))
    metrics = artifacts.read_json(metrics_path)
    if not isinstance(metrics, dict):
        raise GanopsError(f"{metrics_path}: expected a JSON object of metrics")
    paired = artifacts.read_json(paired_path)
    needed = (*promotion.PAIRING_KEYS, *metric_specs.GATE_METRICS, "copying", "copying_floor_high")
    missing = [key for key in needed if key not in paired]
    if missing:
        raise GanopsError(f"{paired_path}: lacks {', '.join(missing)} (rerun the evaluate stage)")
    with lineage.open_record(inputs):
        lineage.note_training_run(model_folder.read_run().run_id)
        registered = log_and_register(cfg, model_folder.generator_path, metrics, gate_evidence(metrics, paired))
    artifacts.write_record(out_path, artifacts.RegisteredVersion(**registered))
    first = " and champion (the first version)" if registered.get("champion") else ""
    print(f"registered {registered['name']} version {registered['version']} as @{registered['alias']}{first}",
          flush=True)
    return registered
