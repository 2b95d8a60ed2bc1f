"""The registered pyfunc model itself: what a version carries, its signature, and the request rules."""

from __future__ import annotations

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
from registry_helpers import LATENT_DIM, metrics, register_version

from ganops import registry, tracking
from ganops.errors import GanopsError
from ganops.models import sampling


def test_version_carries_metrics_hashes_params_commit_and_a_signature(store, tiny_generator):
    register_version(tiny_generator, metrics(2.5))
    version = tracking.client().get_model_version("gan-generator", "1")
    tags = version.tags
    assert tags["metric.fd_ratio"] == "2.5" and tags["metric.num_samples"] == "60"
    assert tags["featurizer_hash"] == "f" * 40 and tags["data_hash"] == "d" * 40
    assert tags["param.train.arch"] == "mlp" and tags["run_id"] == version.run_id
    assert len(tags["git_commit"]) == 40
    assert "Metrics: fd=5, fd_ratio=2.5, num_samples=60." in version.description

    info = mlflow.models.get_model_info("models:/gan-generator@champion")
    assert info.flavors["python_function"]["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    inputs = {spec["name"]: spec for spec in info.signature.inputs.to_dict()}
    assert set(inputs) == {"n", "seed", "label", "latent"}
    assert not any(spec["required"] for spec in inputs.values())
    assert inputs["latent"]["type"] == "array"
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
])
def test_bad_rows_are_named(rows, message):
    with pytest.raises(GanopsError) as caught:
        registry.parse_rows(pd.DataFrame(rows), LATENT_DIM, classes=10, limit=16)
    assert message in str(caught.value)


def test_good_conditional_rows():
    draws = registry.parse_rows(pd.DataFrame([{"n": 3.0, "seed": 1.0, "label": 9.0, "latent": None},
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
    assert registry.num_classes(tiny_conditional_generator(7)) == 7
    assert registry.num_classes(sampling.load_generator(tiny_generator)) == 0


@pytest.mark.skipif(not hasattr(sampling, "num_classes"), reason="conditional sampling API not merged yet")
def test_conditional_generator_serves_labels(store, tmp_path):
    path = tmp_path / "conditional.keras"
    tiny_conditional_generator().save(path)
    register_version(path, metrics(2.0))
    model = registry.load("models:/gan-generator@champion")
    images = model.predict(pd.DataFrame([{"n": 2.0, "label": 3.0}, {"n": 1.0, "label": None}]))
    assert images.shape == (3, 8, 8, 1)
    with pytest.raises(mlflow.exceptions.MlflowException, match="unknown label 10"):
        model.predict(pd.DataFrame([{"n": 1.0, "label": 10.0}]))
