"""Serving a registered generator: the pyfunc model that MLflow loads (`GeneratorModel`), its request parsing,
signature and input example, and loading a registered version by URI or alias.

The logged model is "models from code" (see `registration.MODEL_CODE`): loading never unpickles anything, and
this module is all the model needs, so it imports no pipeline-only module (lineage, training) at import time.

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
null into a 0-d array that the check refuses: there, send the two kinds in separate requests. The output
stacks the rows' images in order: NHWC float32 in [-1, 1], or base64 PNG strings with the request param
`{"format": "png"}`. At most `register.max_images_per_request` images per request.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PyFuncModel
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import (
    AnyType,
    Array,
    ColSpec,
    ParamSchema,
    ParamSpec,
    Schema,
    TensorSpec,
)

from ganops import artifacts, imaging, shards, tracking
from ganops.errors import GanopsError

OUTPUT_FORMATS = ("array", "png")
# Seeds travel as JSON numbers; above 2**53 a double no longer holds every integer.
MAX_SEED = 2**53

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


def load_sampling():
    """`ganops.models.sampling`, imported on first use.

    Keras and TensorFlow load only where a generator is used, so `ganops promote` starts in seconds. The
    pyfunc model loads in processes no entry point set up (`mlflow models serve`, a user's Python)."""
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


class GeneratorModel(PythonModel):
    """Rows in, images out (see the module docstring for the request contract)."""

    def load_context(self, context):
        self.generator = load_sampling().load_generator(context.artifacts["generator"])
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
        if output == "array":
            return images
        return [imaging.png_base64(picture) for picture in shards.from_signed(images)]

    def draw(self, draws: list[Draw]) -> np.ndarray:
        """Images for checked rows, in row order. Explicit latents go through the network in one batch."""
        latent_rows = [i for i, d in enumerate(draws) if d.latent is not None]
        pieces = {i: self.images(row.count, row.seed, row.label)
                  for i, row in enumerate(draws) if row.latent is None}
        if latent_rows:
            latent = np.stack([d.latent for d in draws if d.latent is not None]).astype(np.float32)
            labels = None
            if self.num_classes:
                labels = np.array([draws[i].label for i in latent_rows], np.int64)
            batch = _generate(self.generator, latent, labels)
            for position, i in enumerate(latent_rows):
                pieces[i] = batch[position:position + 1]
        return np.concatenate([pieces[i] for i in range(len(draws))])

    def images(self, count: int, seed: int = 0, label: int | None = None) -> np.ndarray:
        """`count` images drawn with `seed`, unbounded: for local callers such as `ganops generate`."""
        if label is not None:
            check_label(label, self.num_classes, "label")
        if not self.num_classes:
            return load_sampling().sample(self.generator, count, seed)
        labels = None if label is None else np.full(count, label, np.int64)
        return load_sampling().sample(self.generator, count, seed, labels=labels)


def _generate(generator, latent: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    if labels is None:
        return load_sampling().generate(generator, latent)
    return load_sampling().generate(generator, latent, labels=labels)


def num_classes(generator) -> int:
    """0 for an unconditional generator, else its class count."""
    return load_sampling().num_classes(generator)


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


def _latent(value: Any, latent_dim: int, where: str) -> np.ndarray:
    """A flat list (or array) of `latent_dim` ints and floats as float64; strings, booleans and nested lists are
    refused. The length is checked before any item is looked at, so a latent of 10**7 numbers costs nothing here."""
    problem = f"{where}: latent must be a list of {latent_dim} numbers"
    if not isinstance(value, list | tuple | np.ndarray) or getattr(value, "ndim", 1) != 1:
        raise GanopsError(problem)
    if len(value) != latent_dim:
        raise GanopsError(f"{where}: latent has {len(value)} values; this generator takes {latent_dim}")
    items = value.tolist() if isinstance(value, np.ndarray) else value
    if not all(isinstance(item, int | float) and not isinstance(item, bool) for item in items):
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
    if len(frame) > limit:  # every row asks for at least one image: refuse before looking at any
        raise GanopsError(f"request has {len(frame)} rows, so asks for more than {limit} images "
                          "(register.max_images_per_request); split it into several requests")
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
            vector = _latent(latent, latent_dim, where)
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


def signature(image_shape: tuple[int, int, int]) -> ModelSignature:
    return ModelSignature(inputs=INPUT_SCHEMA,
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *image_shape))]),
                          params=PARAMS_SCHEMA)


def input_example(classes: int) -> pd.DataFrame:
    row = {"n": 4, "seed": 0}
    if classes:
        row["label"] = 0
    return pd.DataFrame([row])


def load(model_uri: str) -> PyFuncModel:
    """Load a registered generator (`models:/name@alias`, `models:/name/3`, `runs:/…`, or a folder)."""
    tracking.configure()
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except MlflowException as exc:
        raise GanopsError(f"{model_uri}: {str(exc).splitlines()[0]}") from None


def load_by_alias(name: str, alias: str) -> PyFuncModel:
    return load(f"models:/{name}@{alias}")


def generator_model(pyfunc_model: PyFuncModel) -> GeneratorModel:
    model = pyfunc_model.unwrap_python_model()
    if not isinstance(model, GeneratorModel):
        raise GanopsError(f"{pyfunc_model.metadata.model_uuid}: not a ganops generator model")
    return model


def generate_pngs(model_uri: str, count: int, seed: int, label: int | None, out_dir: str | Path) -> int:
    """Load a registered generator and write `count` PNGs plus `grid.png` into `out_dir`."""
    model = generator_model(load(model_uri))
    images = model.images(count, seed, label)
    out_dir = Path(out_dir)
    width = max(4, len(str(count - 1)))
    for index, image in enumerate(shards.from_signed(images)):
        imaging.save_png(out_dir / f"{index:0{width}d}.png", image)
    imaging.save_png(out_dir / "grid.png",
                     imaging.grid(images, upscale=imaging.upscale_for_display(images.shape[1])))
    return len(images)



def generate_class_folders(model_uri: str, per_class: int, seed: int, out_dir: str | Path) -> int:
    """A labelled image set from a conditional generator: `per_class` PNGs of every class in `out_dir/<class>/`,
    the layout the folder source reads back with the folder names as labels. The folder must be new or empty;
    it appears whole or not at all. Class c's latents come from seed `seed × classes + c`."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise GanopsError(f"{out_dir}: exists and is not an empty folder; give a new one for --per-class")
    model = generator_model(load(model_uri))
    classes = model.num_classes
    if not classes:
        raise GanopsError(f"{model_uri}: --per-class needs a conditional generator; this one is unconditional")
    width = max(4, len(str(per_class - 1)))
    with artifacts.atomic_path(out_dir) as tmp:
        for label in range(classes):
            images = model.images(per_class, seed * classes + label, label)
            for index, image in enumerate(shards.from_signed(images)):
                imaging.save_png(tmp / str(label) / f"{index:0{width}d}.png", image)
    return classes * per_class
