"""The MLflow Model Registry side: the generator as a pyfunc model, registration with version tags, the
promotion gate that moves the champion alias, and loading by alias.

The logged model is "models from code" rather than a pickled object: its code file only imports
`GeneratorModel` from the ganops package the model carries (`code_paths`), so loading never unpickles
anything and the model keeps working with the code it was registered with.

Request contract (one pandas row per request line). Accepted from Python as a list of dicts, one dict
(one row), or a pandas DataFrame; over HTTP as JSON `dataframe_records`, `dataframe_split` or `inputs`
(a list of row objects, or one row object):
- `{"n": 16, "seed": 3}`: 16 images from latents drawn with `seed` (default 0);
- `{"latent": [..latent_dim numbers..]}`: one image from that latent vector;
- `"label": c` on either kind for a conditional generator (required with `latent`; with `n`, labels
  are drawn when absent); refused for an unconditional one.
`n`, `seed` and `label` are whole numbers given as ints or floats (16 and 16.0 alike, numpy and pandas
dtypes included), and a latent is a list of ints or floats; 2.5, strings, booleans, negatives, `n` outside
1..max and seeds above 2**53 are refused with a message naming the row (HTTP 400 when served). The signature
types `n`, `seed`, `label` as Any and `latent` as an array of Any, so these checks are the contract (see
INPUT_SCHEMA). Rows of both kinds share a request when each `n` row gives `"latent": null` (MLflow's schema
check refuses a missing array value; a missing `n` is fine), except in `inputs`, whose parser turns that
null into a 0-d array that the check refuses: there, send the two kinds in separate requests. The output stacks the rows' images in order:
NHWC float32 in [-1, 1], or base64 PNG strings with the request param `{"format": "png"}`. At most
`register.max_images_per_request` images per request.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.tracking import MlflowClient
from mlflow.types.schema import AnyType, Array, ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

from ganops import artifacts, metric_specs, tracking
from ganops.config import PromoteConfig, RegisterConfig
from ganops.errors import GanopsError

ARTIFACT_NAME = "generator"  # the logged model's name within the run
SETTINGS_FILE = "settings.json"
MODEL_CODE_FILE = "ganops_generator_model.py"
PACKAGE_DIR = Path(__file__).resolve().parent
OUTPUT_FORMATS = ("array", "png")
METRIC_TAG = "metric."  # version tag prefix of each evaluate metric: metric.fd_ratio, ...
MODEL_PARAMS_PREFIX = "train."  # the record's params the logged model carries too
REGISTERED_TAG = "ganops.registered_version"  # on the record: which version it registered
FEATURIZER_TAG = "featurizer_hash"
# Seeds travel as JSON numbers; above 2**53 a double no longer holds every integer.
MAX_SEED = 2**53

# The whole model file that MLflow stores and executes at load time ("models from code").
MODEL_CODE = '''\
"""ganops generator as an MLflow pyfunc model; the class lives in the ganops package shipped in code/."""
import mlflow

from ganops.registry import GeneratorModel

mlflow.models.set_model(GeneratorModel())
'''

# Count, seed and label are declared as `Any` and checked here (`parse_rows`), because no MLflow column type
# takes what people send: a `double` column refuses int64 from Python ("Can not safely convert int64 to
# float64"), a `long` column refuses floats from Python and truncates 2.5 to 2 when parsing JSON, and refuses
# the missing values of a request mixing `n` rows and `latent` rows. `AnyType` is MLflow's documented type
# for "the field can have multiple types"; it passes values through untouched, so the whole contract is
# enforced once, here, for Python callers and the scoring server alike. The latent is an array of Any for the
# same reason: an `Array("double")` refuses a latent of ints such as [1, 2, 0, -1] the same way.
INPUT_SCHEMA = Schema([
    ColSpec(AnyType(), "n", required=False),
    ColSpec(AnyType(), "seed", required=False),
    ColSpec(AnyType(), "label", required=False),
    ColSpec(Array(AnyType()), "latent", required=False),
])
PARAMS_SCHEMA = ParamSchema([ParamSpec("format", "string", "array")])


def _sampling():
    # Keras and TensorFlow load only where a generator is used, so `ganops promote` starts in seconds. The
    # pyfunc model loads in processes no entry point set up (`mlflow models serve`, a user's Python).
    from ganops import startup

    startup.setup()
    from ganops.models import sampling

    return sampling


@dataclasses.dataclass(frozen=True)
class Draw:
    """One request row, checked: either `count` images from `seed`, or one image from `latent`."""

    count: int
    seed: int
    label: int | None
    latent: np.ndarray | None  # shape (latent_dim,) when given


class GeneratorModel(mlflow.pyfunc.PythonModel):
    """Rows in, images out (see the module docstring for the request contract)."""

    def load_context(self, context):
        self.generator = _sampling().load_generator(context.artifacts["generator"])
        self.settings = json.loads(Path(context.artifacts["settings"]).read_text())

    @property
    def latent_dim(self) -> int:
        return int(self.settings["latent_dim"])

    @property
    def num_classes(self) -> int:
        return int(self.settings["num_classes"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        output = (params or {}).get("format", "array")
        try:
            if output not in OUTPUT_FORMATS:
                raise GanopsError(f"params.format: {output!r} is not one of {', '.join(OUTPUT_FORMATS)}")
            draws = parse_rows(model_input, self.latent_dim, self.num_classes,
                               int(self.settings["max_images_per_request"]))
        except GanopsError as exc:
            # The scoring server answers INVALID_PARAMETER_VALUE with 400 and this message; any other
            # exception would become a 400 with a generic text.
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        images = self.draw(draws)
        return images if output == "array" else [png_base64(image) for image in images]

    def draw(self, draws: list[Draw]) -> np.ndarray:
        """Images for checked rows, in row order. Explicit latents go through the network in one batch."""
        pieces: list[np.ndarray | None] = []
        latent_rows = [i for i, d in enumerate(draws) if d.latent is not None]
        for row in draws:
            pieces.append(None if row.latent is not None else self.images(row.count, row.seed, row.label))
        if latent_rows:
            latent = np.stack([draws[i].latent for i in latent_rows]).astype(np.float32)
            labels = None
            if self.num_classes:
                labels = np.array([draws[i].label for i in latent_rows], np.int64)
            batch = _generate(self.generator, latent, labels)
            for position, i in enumerate(latent_rows):
                pieces[i] = batch[position:position + 1]
        return np.concatenate(pieces)

    def images(self, count: int, seed: int = 0, label: int | None = None) -> np.ndarray:
        """`count` images drawn with `seed`, unbounded: for local callers such as `ganops generate`."""
        if label is not None:
            check_label(label, self.num_classes, "label")
        if not self.num_classes:
            return _sampling().sample(self.generator, count, seed)
        labels = None if label is None else np.full(count, label, np.int64)
        return _sampling().sample(self.generator, count, seed, labels=labels)


def _generate(generator, latent: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    if labels is None:
        return _sampling().generate(generator, latent)
    return _sampling().generate(generator, latent, labels=labels)


def num_classes(generator) -> int:
    """0 for an unconditional generator, else its class count."""
    return _sampling().num_classes(generator)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list | tuple | np.ndarray):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _whole(value: Any, where: str) -> int:
    """A whole number given as an int or a float (Python, numpy or pandas); anything else is refused."""
    if isinstance(value, np.generic):
        value = value.item()  # a Python scalar, shown as 2.5 rather than np.float64(2.5)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GanopsError(f"{where}: {value!r} is not a number")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise GanopsError(f"{where}: {value!r} is not a whole number")
    return int(value)


def _numbers(value: Any, problem: str) -> np.ndarray:
    """A flat list (or array) of ints and floats as float64; strings, booleans and nested lists are refused."""
    items = value.tolist() if isinstance(value, np.ndarray) else value
    if not isinstance(items, list | tuple) or not all(
            isinstance(item, int | float) and not isinstance(item, bool) for item in items):
        raise GanopsError(problem)
    return np.asarray(items, dtype=np.float64)


def check_label(label: int, classes: int, where: str) -> int:
    if not classes:
        raise GanopsError(f"{where}: this generator is unconditional and takes no label (got {label})")
    if not 0 <= label < classes:
        raise GanopsError(f"{where}: unknown label {label:.6g} (this generator knows labels 0..{classes - 1})")
    return label


def parse_rows(frame: pd.DataFrame, latent_dim: int, classes: int, limit: int) -> list[Draw]:
    """Check every request row; raise GanopsError naming the row and the problem."""
    rows = frame.to_dict(orient="records") if len(frame.columns) else []
    if not rows:
        raise GanopsError("request has no rows: give rows with n (a count) or latent "
                          f"(a vector of {latent_dim} numbers)")
    draws, total = [], 0
    for number, row in enumerate(rows):
        where = f"row {number}"
        count, latent = row.get("n"), row.get("latent")
        has_count, has_latent = not _missing(count), not _missing(latent)
        if has_count == has_latent:
            raise GanopsError(f"{where}: give either n (a count) or latent (a vector of {latent_dim} "
                              "numbers), " + ("not both" if has_count else "found neither"))
        seed = 0 if _missing(row.get("seed")) else _whole(row["seed"], f"{where}: seed")
        if not 0 <= seed <= MAX_SEED:
            raise GanopsError(f"{where}: seed {seed:.6g} is outside 0..2**53")
        label = None if _missing(row.get("label")) else _whole(row["label"], f"{where}: label")
        if label is not None:
            check_label(label, classes, where)
        if has_count:
            count = _whole(count, f"{where}: n")
            if not 1 <= count <= limit:
                raise GanopsError(f"{where}: n={count:.6g} is outside 1..{limit} "
                                  "(register.max_images_per_request)")
            draws.append(Draw(count, seed, label, None))
        else:
            vector = _numbers(latent, f"{where}: latent must be a list of {latent_dim} numbers")
            if vector.shape != (latent_dim,):
                raise GanopsError(f"{where}: latent has {vector.size} values; this generator takes "
                                  f"{latent_dim}")
            if not np.all(np.isfinite(vector)):
                raise GanopsError(f"{where}: latent has non-finite values")
            if classes and label is None:
                raise GanopsError(f"{where}: this generator is conditional: give label (0..{classes - 1}) "
                                  "with latent")
            draws.append(Draw(1, seed, label, vector))
        total += draws[-1].count
        if total > limit:
            raise GanopsError(f"request asks for more than {limit} images (register.max_images_per_request); "
                              "split it into several requests")
    return draws


def png_base64(image: np.ndarray) -> str:
    from PIL import Image

    from ganops import imaging

    pixels = imaging.to_uint8(image[None])[0]
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def signature(image_shape: tuple[int, int, int]) -> ModelSignature:
    return ModelSignature(inputs=INPUT_SCHEMA,
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *image_shape))]),
                          params=PARAMS_SCHEMA)


def input_example(classes: int) -> pd.DataFrame:
    row = {"n": 4, "seed": 0}
    if classes:
        row["label"] = 0
    return pd.DataFrame([row])


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
    from ganops import lineage  # not at module level: serving imports this module, not the pipeline's

    # The record's lineage tags, under the version's own names.
    for tag, key in ((lineage.DATA_HASH_TAG, "data_hash"), (lineage.COMMIT_TAG, "git_commit"),
                     (lineage.EXPERIMENT_TAG, "dvc_experiment")):
        if record_tags.get(tag):
            tags[key] = record_tags[tag]
    if "git_commit" not in tags and tracking.git_commit():
        tags["git_commit"] = tracking.git_commit()
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
    generator = _sampling().load_generator(generator_path)
    settings = {"max_images_per_request": cfg.max_images_per_request,
                "latent_dim": _sampling().latent_dim(generator),
                "num_classes": num_classes(generator),
                "image_shape": [int(d) for d in generator.outputs[0].shape[1:]]}
    client = tracking.client()
    run_id = mlflow.active_run().info.run_id
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
            signature=signature(tuple(settings["image_shape"])),
            input_example=input_example(settings["num_classes"]),
            # Stored in the MLmodel file: `promote` reads it without downloading the generator.
            metadata={"ganops": settings, EVIDENCE_KEY: evidence},
            # Listed, not inferred: inference loads the model in a subprocess and takes minutes.
            pip_requirements=_requirements(),
            # The hyperparameters that made this generator; the record holds every section.
            params={k: v for k, v in run.data.params.items() if k.startswith(MODEL_PARAMS_PREFIX)},
        )
    _ensure_registered_model(client, cfg.model_name)
    version = str(client.create_model_version(
        cfg.model_name, source=info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id,
        description=describe(run_id, tags, settings)).version)
    client.set_registered_model_alias(cfg.model_name, cfg.alias, version)
    registered = {"name": cfg.model_name, "version": version, "alias": cfg.alias, "run_id": run_id,
                  "model_uri": f"models:/{cfg.model_name}@{cfg.alias}", "model_id": info.model_id}
    if _alias_version(client, cfg.model_name, cfg.champion_alias) is None:
        decision = Decision(cfg.model_name, cfg.champion_alias, version, None, version, "promoted",
                            "first registered version: no champion yet")
        _record(client, decision)
        registered["champion"] = decision.champion_after
    mlflow.set_tag(REGISTERED_TAG, f"{cfg.model_name}/{version}")
    return registered


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


def load(model_uri: str) -> mlflow.pyfunc.PyFuncModel:
    """Load a registered generator (`models:/name@alias`, `models:/name/3`, `runs:/…`, or a folder)."""
    tracking.configure()
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except MlflowException as exc:
        raise GanopsError(f"{model_uri}: {str(exc).splitlines()[0]}") from None


def load_by_alias(name: str, alias: str) -> mlflow.pyfunc.PyFuncModel:
    return load(f"models:/{name}@{alias}")


def generator_model(pyfunc_model: mlflow.pyfunc.PyFuncModel) -> GeneratorModel:
    model = pyfunc_model.unwrap_python_model()
    if not isinstance(model, GeneratorModel):
        raise GanopsError(f"{pyfunc_model.metadata.model_uuid}: not a ganops generator model")
    return model


def generate_pngs(model_uri: str, count: int, seed: int, label: int | None, out_dir: str | Path) -> int:
    """Load a registered generator and write `count` PNGs plus `grid.png` into `out_dir`."""
    from ganops import imaging

    model = generator_model(load(model_uri))
    images = model.images(count, seed, label)
    out_dir = Path(out_dir)
    width = max(4, len(str(count - 1)))
    for index, image in enumerate(imaging.to_uint8(images)):
        imaging.save_png(out_dir / f"{index:0{width}d}.png", image)
    imaging.save_png(out_dir / "grid.png",
                     imaging.grid(images, upscale=imaging.upscale_for_display(images.shape[1])))
    return len(images)


# --- promotion gate ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Decision:
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


def _alias_version(client, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        # A missing model is RESOURCE_DOES_NOT_EXIST; a missing alias only says so in its message.
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            return None
        raise


EVIDENCE_KEY = "ganops_evidence"  # the logged model's metadata entry holding evaluate's paired evidence
# What must be equal for two versions' bootstrap replicates to be paired: the same test data, featurizer,
# sample count and draws.
PAIRING_KEYS = ("data_hash", "featurizer_hash", "num_samples", "bootstrap_replicates", "seed")


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
    from ganops.evaluation import metrics  # numpy only: no TensorFlow

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
    """Apply a decision to the registry: move the champion alias and tag both versions with why."""
    name, version, before = decision.name, decision.candidate, decision.champion_before
    if decision.outcome in ("promoted", "forced"):
        client.set_registered_model_alias(name, decision.alias, version)
    if decision.outcome != "unchanged":
        client.set_model_version_tag(name, version, "promotion.decision", decision.outcome)
        client.set_model_version_tag(name, version, "promotion.reason", decision.reason)
    if decision.moves_champion and before:
        client.set_model_version_tag(name, version, "promotion.replaced", before)
        client.set_model_version_tag(name, before, "promotion.replaced_by", version)


def decide(cfg: RegisterConfig, gate: PromoteConfig, force: bool = False,
           expected_candidate: str | None = None) -> Decision:
    """What `promote` would do, read from the registry without changing it."""
    client = tracking.client()
    candidate = _alias_version(client, cfg.model_name, cfg.alias)
    if candidate is None:
        raise GanopsError(f"models:/{cfg.model_name}@{cfg.alias}: no such model version in "
                          f"{tracking.tracking_uri()} (run the register stage first)")
    # Versions are ints from a SQLite store and strings from a tracking server: compare as strings.
    v = str(candidate.version)
    if expected_candidate is not None and v != str(expected_candidate):
        raise GanopsError(f"models:/{cfg.model_name}@{cfg.alias} is v{candidate.version}, not the v"
                          f"{expected_candidate} this pipeline registered; nothing changed")
    champion = _alias_version(client, cfg.model_name, cfg.champion_alias)
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


def gate_evidence(metrics: dict[str, Any], paired: dict[str, Any]) -> dict[str, Any]:
    """What the gate needs of a version: evaluate's paired replicates and their pairing keys, plus the point
    estimates the replicates are centred on."""
    return {**paired, "estimates": {name: metrics[name] for name in metric_specs.GATE_METRICS if name in metrics}}


def run(cfg: RegisterConfig, model_dir: str | Path, metrics_path: str | Path, paired_path: str | Path,
        out_path: str | Path, inputs: Any) -> dict:
    """The register stage, in this execution's MLflow record (`inputs` describe it, should the record start
    here: a `dvc exp run` that changed only register's params): a `lineage.Inputs`."""
    from ganops import lineage
    from ganops.training.train import GENERATOR_FILE, RUN_FILE

    model_dir = Path(model_dir)
    metrics = artifacts.read_json(metrics_path)
    if not isinstance(metrics, dict):
        raise GanopsError(f"{metrics_path}: expected a JSON object of metrics")
    paired = artifacts.read_json(paired_path)
    missing = [key for key in (*PAIRING_KEYS, *metric_specs.GATE_METRICS, "copying", "copying_floor_high")
               if key not in paired]
    if missing:
        raise GanopsError(f"{paired_path}: lacks {', '.join(missing)} (rerun the evaluate stage)")
    with lineage.open_record(inputs):
        lineage.note_training_run(artifacts.read_json(model_dir / RUN_FILE).get("run_id"))
        registered = log_and_register(cfg, model_dir / GENERATOR_FILE, metrics, gate_evidence(metrics, paired))
    artifacts.write_json(out_path, registered)
    first = " and champion (the first version)" if registered.get("champion") else ""
    print(f"registered {registered['name']} version {registered['version']} as @{registered['alias']}{first}",
          flush=True)
    return registered
