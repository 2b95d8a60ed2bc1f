"""The feature space for every distance, trained once per dataset on the train split.

Pretrained Inception weights cannot be downloaded here, so, as TF-GAN did for MNIST, we train our own:
- labelled data: a small classifier (one hidden layer); its softmax also drives the class metrics;
- unlabelled data: an autoencoder of the same width (hidden layer → reconstruction, mean squared error),
  whose bottleneck is the feature space. It has no classes, so class metrics are omitted.
Its scale is specific to this network, so it is frozen and identified by a hash of its weights, which
every metric result records. Features are the hidden layer's *pre-activation* values: dead ReLU units
would make the feature covariance singular.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import keras
import numpy as np

from ganops import artifacts
from ganops.config import FeaturizeConfig
from ganops.data import prepare
from ganops.errors import GanopsError

MODEL_FILE = "featurizer.keras"
FEATURE_LAYER = "features"
PREDICT_BATCH = 1024


CLASSIFIER, AUTOENCODER = "classifier", "autoencoder"  # the saved model's name tells which it is


def _hidden_layer(image_shape: tuple[int, int, int], hidden_units: int):
    """The trunk both kinds share: images → flattened → the feature layer → ReLU."""
    images = keras.Input(image_shape, name="images")
    x = keras.layers.Flatten()(images)
    features = keras.layers.Dense(hidden_units, name=FEATURE_LAYER)(x)
    return images, keras.layers.ReLU()(features)


def build_classifier(image_shape: tuple[int, int, int], num_classes: int, hidden_units: int) -> keras.Model:
    images, hidden = _hidden_layer(image_shape, hidden_units)
    logits = keras.layers.Dense(num_classes, name="logits")(hidden)
    return keras.Model(images, logits, name=CLASSIFIER)


def build_autoencoder(image_shape: tuple[int, int, int], hidden_units: int) -> keras.Model:
    images, hidden = _hidden_layer(image_shape, hidden_units)
    x = keras.layers.Dense(int(np.prod(image_shape)), activation="tanh", name="reconstruction")(hidden)
    return keras.Model(images, keras.layers.Reshape(image_shape)(x), name=AUTOENCODER)


def weights_hash(model: keras.Model) -> str:
    digest = hashlib.sha1()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class Featurizer:
    """The frozen network, classifier or autoencoder (told by its name; older files named "featurizer" are
    classifiers)."""

    network: keras.Model

    def __post_init__(self):
        self.extractor = keras.Model(self.network.input, self.network.get_layer(FEATURE_LAYER).output)
        self.hash = weights_hash(self.network)
        self.kind = AUTOENCODER if self.network.name == AUTOENCODER else CLASSIFIER
        self.num_classes = int(self.network.output.shape[-1]) if self.kind == CLASSIFIER else 0
        self._both = keras.Model(self.network.input, [self.extractor.output, self.network.output])

    def features(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.extractor.predict(images, batch_size=PREDICT_BATCH, verbose=0), np.float32)

    def features_and_probabilities(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Both from one forward pass; probabilities are None for an autoencoder."""
        if self.kind != CLASSIFIER:
            return self.features(images), None
        features, logits = self._both.predict(images, batch_size=PREDICT_BATCH, verbose=0)
        return np.asarray(features, np.float32), _softmax(np.asarray(logits, np.float64))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        if self.kind != CLASSIFIER:
            raise GanopsError("this featurizer is an autoencoder (unlabelled data): it has no class probabilities")
        return _softmax(np.asarray(self.network.predict(images, batch_size=PREDICT_BATCH, verbose=0), np.float64))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def load(path: str | Path) -> Featurizer:
    path = Path(path)
    if not path.exists():
        raise GanopsError(f"{path}: featurizer not found (run the featurize stage first)")
    return Featurizer(keras.saving.load_model(path, compile=False))


def train(cfg: FeaturizeConfig, train_split: artifacts.Split, holdout_split: artifacts.Split,
          num_classes: int) -> tuple[Featurizer, dict[str, float]]:
    """Fit a classifier (labelled data with ≥ 2 classes) or else an autoencoder; return it with its
    holdout score: accuracy, or reconstruction mean squared error ([-1, 1] pixels)."""
    keras.utils.set_random_seed(cfg.seed)
    image_shape = train_split.images.shape[1:]
    if train_split.labels is not None and num_classes >= 2:
        model = build_classifier(image_shape, num_classes, cfg.hidden_units)
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        model.fit(train_split.images, train_split.labels, epochs=cfg.epochs, batch_size=cfg.batch_size,
                  verbose=0, shuffle=True)
        _, accuracy = model.evaluate(holdout_split.images, holdout_split.labels, verbose=0)
        return Featurizer(model), {"holdout_accuracy": round(float(accuracy), 5)}
    model = build_autoencoder(image_shape, cfg.hidden_units)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="mse")
    model.fit(train_split.images, train_split.images, epochs=cfg.epochs, batch_size=cfg.batch_size,
              verbose=0, shuffle=True)
    error = model.evaluate(holdout_split.images, holdout_split.images, verbose=0)
    return Featurizer(model), {"holdout_reconstruction_mse": round(float(error), 6)}


def run(cfg: FeaturizeConfig, prepared_dir: str | Path, model_path: str | Path,
        metrics_path: str | Path) -> dict:
    prepared_dir = Path(prepared_dir)
    info = artifacts.read_dataset_info(prepared_dir / prepare.INFO_FILE)
    train_split = artifacts.read_split(prepared_dir / prepare.TRAIN_FILE)
    holdout_split = artifacts.read_split(prepared_dir / prepare.HOLDOUT_FILE)
    featurizer, score = train(cfg, train_split, holdout_split, info.num_classes)
    with artifacts.atomic_path(model_path) as tmp:
        featurizer.network.save(tmp)
    summary = {**score, "kind": featurizer.kind, "hash": featurizer.hash, "feature_dim": cfg.hidden_units,
               "data_hash": info.data_hash}
    artifacts.write_json(metrics_path, summary)
    return summary
