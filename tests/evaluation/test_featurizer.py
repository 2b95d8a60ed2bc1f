"""The featurizer's kinds on every supported image shape, the saved file `load` reads back, and the InceptionV3
path with randomly initialised weights in a local file (nothing downloaded)."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from ganops import artifacts, shards
from ganops.config import FeaturizeConfig, parse_params
from ganops.errors import GanopsError
from ganops.features import featurizer
from tests.helpers import shrunk_params

ONE_EPOCH = shrunk_params(featurize={"epochs": 1, "batch_size": 8}).featurize


def _split(shape: tuple[int, int, int], count: int, labelled: bool, seed: int = 0) -> artifacts.Split:
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1.0, 1.0, (count, *shape)).astype(np.float32)
    return artifacts.Split(images, np.arange(count) % 2 if labelled else None)


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3), (64, 64, 3)])
@pytest.mark.parametrize("labelled", [True, False], ids=["classifier", "autoencoder"])
def test_each_kind_trains_on_each_shape_and_survives_a_save(shape, labelled, tmp_path):
    split = _split(shape, 16, labelled)
    model, score = featurizer.train(ONE_EPOCH, split, split, num_classes=2 if labelled else 0)
    assert model.kind == ("classifier" if labelled else "autoencoder")
    assert set(score) == ({"validation_accuracy"} if labelled else {"validation_reconstruction_mse"})
    assert model.network.output.shape[1:] == ((2,) if labelled else shape)  # odd sides cropped back: 28 → 4 → 28
    features, probabilities = model.features_and_probabilities(split.images)
    assert features.shape == (16, 16) and features.min() >= -1.0  # after the ELU
    assert (probabilities is not None) == labelled
    # The augmentation shapes training batches only: the saved network holds none of it.
    assert not any(layer.name.startswith("random_") for layer in model.network.layers)

    model.network.save(tmp_path / "featurizer.keras")
    loaded = featurizer.load(tmp_path / "featurizer.keras")
    assert (loaded.kind, loaded.hash, loaded.num_classes) == (model.kind, model.hash, model.num_classes)
    np.testing.assert_allclose(loaded.features(split.images), features, rtol=1e-5, atol=1e-5)


def test_training_is_repeatable_with_its_seed():
    split = _split((8, 8, 1), 32, labelled=True)
    first, _ = featurizer.train(ONE_EPOCH, split, split, num_classes=2)
    second, _ = featurizer.train(ONE_EPOCH, split, split, num_classes=2)
    assert first.hash == second.hash


def test_training_and_features_from_shards_match_the_in_memory_split(tmp_path, monkeypatch):
    """The stage reads shards batch by batch and chunk by chunk; on the same pixels that is the in-memory
    result exactly: the same weights, the same features."""
    pixels = np.random.default_rng(5).integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    artifacts.write_split(tmp_path / "train", artifacts.Split(pixels, np.arange(40) % 2), shard_bytes=64 * 15)
    sharded = shards.ShardedSplit.open(tmp_path / "train")
    in_memory = artifacts.read_split(tmp_path / "train")
    assert len(sharded.counts) == 3
    from_shards, _ = featurizer.train(ONE_EPOCH, sharded, sharded, num_classes=2)
    from_memory, _ = featurizer.train(ONE_EPOCH, in_memory, in_memory, num_classes=2)
    assert from_shards.hash == from_memory.hash
    monkeypatch.setattr(featurizer, "PREDICT_BATCH", 16)
    monkeypatch.setattr(featurizer, "CHUNK_BYTES", 4 * 64 * 16)  # one batch of 16 a chunk: 3 chunks, across shards
    read, signed = [], shards.ShardedSplit.signed
    monkeypatch.setattr(shards.ShardedSplit, "signed", lambda self, rows: read.append(len(rows)) or signed(self, rows))
    np.testing.assert_array_equal(from_shards.split_features(sharded), from_shards.features(in_memory.images))
    assert read == [16, 16, 8]


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """Randomly initialised InceptionV3 weights saved the way Keras saves any weights."""
    keras.utils.set_random_seed(0)
    inception = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                               input_shape=(299, 299, 3))
    path = tmp_path_factory.mktemp("inception") / "inception.weights.h5"
    inception.save_weights(path)
    return path


def test_inception_kind_end_to_end_with_a_local_weights_file(prepared_digits, inception_weights, tmp_path):
    cfg = FeaturizeConfig(kind="inception", inception_weights=str(inception_weights))
    summary = featurizer.run(cfg, prepared_digits, tmp_path / "featurizer.keras", tmp_path / "featurizer.json")
    assert summary["kind"] == "inception" and summary["feature_dim"] == 2048
    assert summary["inception_weights"] == str(inception_weights) and "validation_accuracy" not in summary

    loaded = featurizer.load(tmp_path / "featurizer.keras")
    assert (loaded.kind, loaded.hash, loaded.num_classes) == ("inception", summary["hash"], 0)
    images = _split((8, 8, 1), 2, labelled=False).images  # few: 299 × 299 InceptionV3 is slow on a CPU
    features, probabilities = loaded.features_and_probabilities(images)
    assert features.shape == (2, 2048) and np.isfinite(features).all() and probabilities is None
    with pytest.raises(GanopsError, match="no class probabilities"):
        loaded.probabilities(images)


def test_inception_takes_rgb_images(inception_weights):
    network = featurizer.build_inception((32, 32, 3), inception_weights)
    assert featurizer.Featurizer(network).features(_split((32, 32, 3), 1, labelled=False).images).shape == (1, 2048)


@pytest.mark.filterwarnings("ignore:Skipping:UserWarning")  # Keras warns per layer it cannot load
def test_a_missing_or_wrong_inception_weights_file_is_a_one_line_error_naming_the_param(tmp_path):
    missing = tmp_path / "absent.weights.h5"
    with pytest.raises(GanopsError, match=r"featurize\.inception_weights: .*absent\.weights\.h5 not found") as caught:
        featurizer.build_inception((8, 8, 1), missing)
    assert "\n" not in str(caught.value)
    wrong = tmp_path / "wrong.weights.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(wrong)
    with pytest.raises(GanopsError, match=r"featurize\.inception_weights: .*wrong\.weights\.h5") as caught:
        featurizer.build_inception((8, 8, 1), wrong)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("raw, message", [
    ({"kind": "inception"}, "featurize.inception_weights: required when featurize.kind is 'inception'"),
    ({"inception_weights": "w.h5"}, "featurize.inception_weights: only read when featurize.kind is 'inception'"),
    ({"kind": "resnet"}, "featurize.kind: Input should be 'auto' or 'inception'"),
    ({"feature_dim": 8}, "featurize.feature_dim: Input should be greater than or equal to 16"),
    ({"hidden_units": 64}, "featurize.hidden_units: unknown key"),
])
def test_featurize_params_name_the_key(raw, message):
    with pytest.raises(GanopsError, match=re.escape(message)):
        parse_params({"featurize": raw})


def test_small_datasets_train_for_at_least_min_steps():
    from ganops.features.featurizer import training_epochs

    assert training_epochs(FeaturizeConfig(epochs=15, min_steps=1000, batch_size=64), 195) == 250  # 4 steps/epoch
    assert training_epochs(FeaturizeConfig(epochs=15, min_steps=1000, batch_size=64), 8000) == 15  # 125 steps/epoch
    assert training_epochs(FeaturizeConfig(epochs=15, min_steps=0), 195) == 15


def test_a_set_measured_piece_by_piece_is_the_set_measured_at_once(monkeypatch):
    """`measure_pieces` (evaluate's sets, never whole in memory) gives one whole `predict` call's numbers when
    its pieces are whole batches; `features` and `features_and_probabilities` go through it a chunk at a time."""
    split = _split((8, 8, 1), 40, labelled=True)
    model, _ = featurizer.train(ONE_EPOCH, split, split, num_classes=2)
    monkeypatch.setattr(featurizer, "PREDICT_BATCH", 16)
    whole_features, whole_logits = (np.asarray(out) for out in model._both.predict(split.images, batch_size=16,
                                                                                       verbose=0))
    pieces = [split.images[:16], split.images[16:32], split.images[32:]]
    features, probabilities = model.measure_pieces(iter(pieces))
    np.testing.assert_array_equal(features, whole_features)
    np.testing.assert_array_equal(probabilities, featurizer._softmax(whole_logits.astype(np.float64)))
    assert model.measure_pieces(iter(pieces), with_probabilities=False)[1] is None
    monkeypatch.setattr(featurizer, "CHUNK_BYTES", 4 * 64 * 16)  # a chunk of one batch: three pieces
    assert featurizer.chunk_rows((8, 8, 1)) == 16
    np.testing.assert_array_equal(model.features(split.images), whole_features)
    empty_features, empty_probabilities = model.measure_pieces(iter([]))
    assert empty_features.shape == (0, model.feature_dim) and empty_probabilities.shape == (0, 2)
