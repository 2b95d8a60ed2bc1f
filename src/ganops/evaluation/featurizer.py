"""The feature space for every distance: a small classifier trained once per dataset on the train split.

Pretrained Inception weights cannot be downloaded here, so, as TF-GAN did for MNIST, we train our own.
Its scale is specific to this classifier, so it is frozen and identified by a hash of its weights, which
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


def build_classifier(image_shape: tuple[int, int, int], num_classes: int, hidden_units: int) -> keras.Model:
    images = keras.Input(image_shape, name="images")
    x = keras.layers.Flatten()(images)
    features = keras.layers.Dense(hidden_units, name=FEATURE_LAYER)(x)
    x = keras.layers.ReLU()(features)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(images, logits, name="featurizer")


def weights_hash(model: keras.Model) -> str:
    digest = hashlib.sha1()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class Featurizer:
    classifier: keras.Model

    def __post_init__(self):
        self.extractor = keras.Model(self.classifier.input, self.classifier.get_layer(FEATURE_LAYER).output)
        self.hash = weights_hash(self.classifier)

    def features(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.extractor.predict(images, batch_size=PREDICT_BATCH, verbose=0), np.float64)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        logits = self.classifier.predict(images, batch_size=PREDICT_BATCH, verbose=0)
        return np.asarray(keras.ops.softmax(logits, axis=-1), np.float64)


def load(path: str | Path) -> Featurizer:
    path = Path(path)
    if not path.exists():
        raise GanopsError(f"{path}: featurizer not found (run the featurize stage first)")
    return Featurizer(keras.saving.load_model(path, compile=False))


def train(cfg: FeaturizeConfig, train_split: artifacts.Split, holdout_split: artifacts.Split,
          num_classes: int) -> tuple[Featurizer, float]:
    """Fit the classifier; return it with its holdout accuracy."""
    if train_split.labels is None or num_classes < 2:
        raise GanopsError("featurize: the classifier feature space needs labelled data with ≥ 2 classes")
    keras.utils.set_random_seed(cfg.seed)
    classifier = build_classifier(train_split.images.shape[1:], num_classes, cfg.hidden_units)
    classifier.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       metrics=["accuracy"])
    classifier.fit(train_split.images, train_split.labels, epochs=cfg.epochs, batch_size=cfg.batch_size,
                   verbose=0, shuffle=True)
    _, accuracy = classifier.evaluate(holdout_split.images, holdout_split.labels, verbose=0)
    return Featurizer(classifier), float(accuracy)


def run(cfg: FeaturizeConfig, prepared_dir: str | Path, model_path: str | Path,
        metrics_path: str | Path) -> dict:
    prepared_dir = Path(prepared_dir)
    info = artifacts.read_dataset_info(prepared_dir / prepare.INFO_FILE)
    train_split = artifacts.read_split(prepared_dir / prepare.TRAIN_FILE)
    holdout_split = artifacts.read_split(prepared_dir / prepare.HOLDOUT_FILE)
    featurizer, accuracy = train(cfg, train_split, holdout_split, info.num_classes)
    with artifacts.atomic_path(model_path) as tmp:
        featurizer.classifier.save(tmp)
    summary = {"holdout_accuracy": round(accuracy, 5), "hash": featurizer.hash,
               "feature_dim": cfg.hidden_units, "data_hash": info.data_hash}
    artifacts.write_json(metrics_path, summary)
    return summary
