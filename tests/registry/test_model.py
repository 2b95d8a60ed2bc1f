"""The registered pyfunc model itself: what a version carries, its signature, and the request rules."""

from __future__ import annotations

import shutil

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest

from ganops import tracking
from ganops.errors import GanopsError
from ganops.models import sampling
from ganops.registry import serving
from tests.helpers import LATENT_DIM, metrics, register_version


def test_version_carries_metrics_hashes_params_commit_and_a_signature(store, tiny_generator):
    registered = register_version(tiny_generator, metrics(2.5))
    version = tracking.client().get_model_version("gan-generator", "1")
    tags = version.tags
    assert tags["metric.fd_ratio"] == "2.5" and tags["metric.num_samples"] == "60"
    assert tags["featurizer_hash"] == "f" * 40 and tags["data_hash"] == "d" * 40
    # Params stay on the run and the logged model, not copied into tags a third time.
    assert not any(key.startswith("param.") for key in tags)
    assert version.source == f"models:/{registered['model_id']}"
    assert mlflow.get_logged_model(registered["model_id"]).params["train.arch"] == "mlp"
    assert len(tags["git_commit"]) == 40
    assert "Metrics: fd=5, fd_ratio=2.5, num_samples=60." in version.description

    info = mlflow.models.get_model_info("models:/gan-generator@champion")
    assert info.flavors["python_function"]["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    inputs = {spec["name"]: spec for spec in info.signature.inputs.to_dict()}
    assert set(inputs) == {"n", "seed", "label", "latent"}
    assert not any(spec["required"] for spec in inputs.values())
    assert inputs["latent"]["type"] == "array"
    # Typed Any so that ints and floats both reach the model's own checks (see serving.INPUT_SCHEMA).
    assert {inputs[name]["type"] for name in ("n", "seed", "label")} == {"any"}
    assert "n, seed and label are whole numbers, as ints or floats" in version.description
    assert info.signature.params.to_dict() == [{"name": "format", "default": "array", "shape": None,
                                                "type": "string"}]
    assert info.metadata["ganops"]["latent_dim"] == LATENT_DIM


@pytest.mark.parametrize("rows, message", [
    ([{"n": 2, "label": 12}], "row 0: unknown label 12 (this generator knows labels 0..9)"),
    ([{"n": 2, "label": -1}], "row 0: unknown label -1"),
    ([{"latent": [0.0] * LATENT_DIM}], "row 0: this generator is conditional: give label (0..9) with latent"),
    ([{"n": 2, "seed": -3}], "row 0: seed -3 is outside 0..2**53"),
    ([{"latent": [np.inf] + [0.0] * (LATENT_DIM - 1)}], "row 0: latent has non-finite values"),
    ([{"n": 1}, {"n": 0}], "row 1: n=0 is outside 1..16"),
    ([{"n": 1}] * 17, "request has 17 rows, so asks for more than 16 images"),
    ([{"latent": [0.5] * 10**6, "label": 1}], f"row 0: latent has 1000000 values; this generator takes {LATENT_DIM}"),
])
def test_bad_rows_are_named(rows, message):
    with pytest.raises(GanopsError) as caught:
        serving.parse_rows(pd.DataFrame(rows), LATENT_DIM, classes=10, limit=16)
    assert message in str(caught.value)


@pytest.fixture(scope="module")
def champion(tmp_path_factory, empty_store_template, tiny_generator):
    """The champion loaded the documented way, from a real store of its own (limit 16 images a request)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    shutil.copy(empty_store_template, path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{path}")
        patch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        register_version(tiny_generator, metrics(2.0))
        return mlflow.pyfunc.load_model("models:/gan-generator@champion")


@pytest.mark.parametrize("request_", [
    [{"n": 2, "seed": 3}],
    [{"n": 2.0, "seed": 3.0}],
    [{"n": 2, "seed": 3.0}],
    [{"n": np.int64(2), "seed": np.float32(3)}],
    {"n": 2, "seed": 3},
    {"n": 2.0, "seed": 3.0},
    pd.DataFrame([{"n": 2, "seed": 3}]),
    pd.DataFrame([{"n": 2.0, "seed": 3.0}]),
    pd.DataFrame({"n": np.array([2], np.int32), "seed": np.array([3], np.uint8)}),
    pd.DataFrame({"n": pd.array([2], "Int64"), "seed": pd.array([3], "Int64")}),
], ids=["records-int", "records-float", "records-mixed", "records-numpy", "dict-int", "dict-float", "frame-int64",
        "frame-float64", "frame-int32-uint8", "frame-nullable-Int64"])
def test_ints_and_floats_from_every_python_form(champion, request_):
    images = champion.predict(request_)
    expected = serving.generator_model(champion).images(2, seed=3)
    np.testing.assert_array_equal(images, expected)


def test_mixed_count_and_latent_rows_with_ints(champion):
    images = champion.predict([{"n": 2, "seed": 3, "latent": None}, {"latent": [1, -2, 0, 3]}])
    assert images.shape == (3, 8, 8, 1)
    np.testing.assert_array_equal(images[:2], serving.generator_model(champion).images(2, seed=3))
    np.testing.assert_array_equal(images[2:], champion.predict([{"latent": [1.0, -2.0, 0.0, 3.0]}]))
    np.testing.assert_array_equal(images[2:], champion.predict({"latent": [1, -2, 0, 3]}))  # a dict is one row
    frame = pd.DataFrame({"n": [2, None], "seed": [3, None], "latent": [None, np.array([1, -2, 0, 3])]})
    np.testing.assert_array_equal(images, champion.predict(frame))


@pytest.mark.parametrize("request_, message", [
    ([{"n": 2.5}], "row 0: n: 2.5 is not a whole number"),
    ({"n": 2, "seed": 1.5}, "row 0: seed: 1.5 is not a whole number"),
    (pd.DataFrame([{"n": float("inf")}]), "row 0: n: inf is not a whole number"),
    ([{"n": -1}], "row 0: n=-1 is outside 1..16"),
    ([{"n": 1}, {"n": 17.0}], "row 1: n=17 is outside 1..16"),
    ([{"n": 9}, {"n": 8}], "request asks for more than 16 images"),
    ([{"n": 2, "seed": -3}], "row 0: seed -3 is outside 0..2**53"),
    ([{"n": 2, "seed": 2**53 + 1}], "row 0: seed 9.0072e+15 is outside 0..2**53"),
    ([{"n": "16"}], "row 0: n: '16' is not a number"),
    ([{"n": True}], "row 0: n: True is not a number"),
    ([{"n": 2, "label": 1}], "row 0: this generator is unconditional and takes no label"),
    ([{"latent": ["1", 2, 3, 4]}], "row 0: latent must be a list of 4 numbers"),
    ([{"latent": [1, 2, 3]}], "row 0: latent has 3 values; this generator takes 4"),
])
def test_bad_values_fail_clearly(champion, request_, message):
    with pytest.raises(mlflow.exceptions.MlflowException) as caught:
        champion.predict(request_)
    assert message in str(caught.value)


def test_good_conditional_rows():
    draws = serving.parse_rows(pd.DataFrame([{"n": 3.0, "seed": 1.0, "label": 9.0, "latent": None},
                                              {"latent": [0.5] * LATENT_DIM, "label": 0}]),
                                LATENT_DIM, classes=10, limit=16)
    assert [(d.count, d.seed, d.label) for d in draws] == [(3, 1, 9), (1, 0, 0)]
    assert draws[1].latent.shape == (LATENT_DIM,)


def tiny_conditional_generator(classes: int = 10) -> keras.Model:
    """The shape the training code's conditional generators take: a second int input named "label"."""
    latent = keras.Input((LATENT_DIM,), name="latent")
    label = keras.Input((), dtype="int32", name="label")
    embedded = keras.layers.Embedding(classes, LATENT_DIM)(label)
    x = keras.layers.Dense(64, activation="tanh")(keras.layers.Concatenate()([latent, embedded]))
    return keras.Model([latent, label], keras.layers.Reshape((8, 8, 1))(x), name="generator")


def test_class_count_of_conditional_and_unconditional_generators(tiny_generator):
    assert serving.num_classes(tiny_conditional_generator(7)) == 7
    assert serving.num_classes(sampling.load_generator(tiny_generator)) == 0


@pytest.mark.skipif(not hasattr(sampling, "num_classes"), reason="conditional sampling API not merged yet")
def test_conditional_generator_serves_labels(store, tmp_path):
    path = tmp_path / "conditional.keras"
    tiny_conditional_generator().save(path)
    register_version(path, metrics(2.0))
    model = serving.load("models:/gan-generator@champion")
    images = model.predict(pd.DataFrame([{"n": 2.0, "label": 3.0}, {"n": 1.0, "label": None}]))
    assert images.shape == (3, 8, 8, 1)
    rows = [{"n": 2, "label": 3, "latent": None}, {"latent": [1, 0, -1, 2], "label": 9}]  # ints, mixed rows
    assert model.predict(rows).shape == (3, 8, 8, 1)
    with pytest.raises(mlflow.exceptions.MlflowException, match="unknown label 10"):
        model.predict(pd.DataFrame([{"n": 1.0, "label": 10.0}]))
