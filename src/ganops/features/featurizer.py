"""The feature space for every distance, built once per dataset by the featurize stage.

Why a trained convolutional network: a layer applied directly to pixels is an affine map of them, and a
Fréchet distance in such a space compares only pixel means and covariances, so a Gaussian fitted to the
training pixels scores like a good generator. Features here come after several convolutions and a nonlinearity, and
`tests/evaluation/test_discrimination.py` proves the space separates known-bad generators (pixel Gaussian,
noise, blur, dropped classes) from real images.

Three kinds (`featurize.kind`):
- auto, labelled data (≥ 2 classes): a small convolutional **classifier** trained on the train split with
  random shifts and zooms; its softmax also drives the class metrics.
- auto, unlabelled data: a convolutional **autoencoder** with the same encoder, trained to reconstruct
  (mean squared error on [-1, 1] pixels) the same augmented images; its bottleneck is the feature space. It
  has no classes, so class metrics are omitted.
- **inception**: Keras' InceptionV3 (`keras.applications`, no top, global average pool: 2,048 features) with
  the weights in the local file `featurize.inception_weights`; nothing is downloaded. Images are resized to
  299 × 299 (bilinear, no antialiasing) and grayscale is repeated into three channels. Our [-1, 1] pixels are
  already what `keras.applications.inception_v3.preprocess_input` produces (x / 127.5 − 1). These are **not**
  the TF-slim / pytorch-fid Inception weights behind published FID numbers, nor their resize, so the distances
  are not comparable to papers: only to other runs made with the same weights file (which the featurizer
  hash, a hash of the loaded weights, identifies), the same image size and the same sample count. Keras
  publishes the no-top file as `inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`; a `.weights.h5` file
  saved from `keras.applications.InceptionV3(include_top=False, pooling="avg")` works too. At 299 × 299 it
  runs at about 20 images/s on 2 CPU cores: evaluating 10,000-image sets with it wants a GPU.

The trained kinds' feature layer is Dense → BatchNormalization → ELU: normalising before the nonlinearity
keeps every unit active and ELU never outputs a constant, so no unit is dead and the feature covariance
stays full rank (dead ReLU units make it singular). Each space's scale is specific to its network, so the
network is frozen and identified by a hash of its weights, which every metric result records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ganops import artifacts, streams
from ganops.config import FeaturizeConfig
from ganops.errors import GanopsError

MODEL_FILE = "featurizer.keras"
FEATURE_LAYER = "features"
PREDICT_BATCH = 1024
# Pixels per inference batch (`predict_batch`): PREDICT_BATCH images up to MNIST's 28 × 28, fewer of larger
# images, so that a batch's activations stay bounded: 1,024 images of 64 × 64 make 537 MB for each
# 32-filter activation at full side.
PREDICT_PIXELS = PREDICT_BATCH * 28 * 28
# Pixels measured at a time (`measure_pieces`, `split_features`): 64 MiB of float32, a whole number of
# batches (`predict_batch`), so the batches and hence the features are those of one call over the whole set.
CHUNK_BYTES = 64 * 2**20

CLASSIFIER, AUTOENCODER, INCEPTION = "classifier", "autoencoder", "inception"  # the saved model's name

# Convolution widths: the first layer's, doubled at each halving of the side up to the cap. Sides of at most
# DEEP_SIDE get a second convolution: it is cheap there and, measured on the 8 × 8 digits, it halves the
# real-vs-real floor and raises every known-bad generator's ratio to it (a single convolution per side is too
# shallow a network for 8 × 8 inputs). On 2 CPU cores 28 × 28 inference stays at several thousand images/s.
FIRST_FILTERS, MAX_FILTERS = 32, 128
SMALLEST_SIDE = 4  # halve the side until it is at most this: 8 → 4, 28 → 14 → 7 → 4, 64 → … → 4
DEEP_SIDE = 8
INCEPTION_SIDE = 299


def _conv_block(x, filters: int, strides: int, side: int):
    """One 3 × 3 ReLU convolution (two at sides of at most DEEP_SIDE); `side` is the output's."""
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", activation="relu")(x)
    if side <= DEEP_SIDE:
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    return x


def _encoder(image_shape: tuple[int, int, int], feature_dim: int) -> tuple[keras.KerasTensor, keras.KerasTensor,
                                                                            list[int]]:
    """images → convolutions (stride 2 until the side is ≤ SMALLEST_SIDE) → Dense → BN → ELU = features.

    Returns the input, the feature tensor, and the side before each halving (the decoder mirrors them)."""
    images = keras.Input(image_shape, name="images")
    filters, side, sides = FIRST_FILTERS, image_shape[0], []
    x = _conv_block(images, filters, 1, side)
    while side > SMALLEST_SIDE:
        sides.append(side)
        filters, side = min(2 * filters, MAX_FILTERS), math.ceil(side / 2)
        x = _conv_block(x, filters, 2, side)
    # Flatten, not global pooling: where a stroke sits is part of what makes a digit.
    x = keras.layers.Dense(feature_dim, use_bias=False)(keras.layers.Flatten()(x))
    x = keras.layers.BatchNormalization()(x)
    return images, keras.layers.ELU(name=FEATURE_LAYER)(x), sides


def build_classifier(image_shape: tuple[int, int, int], num_classes: int, feature_dim: int) -> keras.Model:
    images, features, _ = _encoder(image_shape, feature_dim)
    logits = keras.layers.Dense(num_classes, name="logits")(features)
    return keras.Model(images, logits, name=CLASSIFIER)


def build_autoencoder(image_shape: tuple[int, int, int], feature_dim: int) -> keras.Model:
    """The classifier's encoder, then transposed convolutions back up through the same sides (cropping the
    odd ones: 4 → 8 → crop 7 → 14 → 28) to a tanh image."""
    images, features, sides = _encoder(image_shape, feature_dim)
    side = math.ceil(image_shape[0] / 2 ** len(sides))
    filters = min(FIRST_FILTERS * 2 ** len(sides), MAX_FILTERS)
    x = keras.layers.Dense(side * side * filters, activation="relu")(features)
    x = keras.layers.Reshape((side, side, filters))(x)
    for target in reversed(sides):
        filters = max(filters // 2, FIRST_FILTERS)
        x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu")(x)
        if 2 * side > target:
            x = keras.layers.Cropping2D(((0, 1), (0, 1)))(x)
        side = target
    reconstruction = keras.layers.Conv2D(image_shape[-1], 3, padding="same", activation="tanh",
                                         name="reconstruction")(x)
    return keras.Model(images, reconstruction, name=AUTOENCODER)


def build_inception(image_shape: tuple[int, int, int], weights_path: str | Path) -> keras.Model:
    """InceptionV3's 2,048 average-pooled features of the images resized to 299 × 299, with the weights in
    `weights_path` (a Keras no-top InceptionV3 weights file)."""
    path = Path(weights_path)
    if not path.is_file():
        raise GanopsError(f"featurize.inception_weights: {path} not found (a local Keras InceptionV3 no-top "
                          "weights file; nothing is downloaded)")
    try:
        inception = keras.applications.InceptionV3(include_top=False, weights=str(path), pooling="avg",
                                                   input_shape=(INCEPTION_SIDE, INCEPTION_SIDE, 3))
    except (ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GanopsError(f"featurize.inception_weights: {path} does not hold InceptionV3 no-top weights "
                          f"({first_line})") from None
    images = keras.Input(image_shape, name="images")
    x = keras.layers.Resizing(INCEPTION_SIDE, INCEPTION_SIDE, interpolation="bilinear")(images)
    if image_shape[-1] == 1:
        x = keras.layers.Concatenate()([x, x, x])
    features = keras.layers.Identity(name=FEATURE_LAYER)(inception(x))
    return keras.Model(images, features, name=INCEPTION)


def weights_hash(model: keras.Model) -> str:
    digest = hashlib.sha1()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class Featurizer:
    """The frozen network, told by its name: classifier, autoencoder or inception (older files named
    "featurizer" are classifiers)."""

    network: keras.Model

    def __post_init__(self):
        self.extractor = keras.Model(self.network.input, self.network.get_layer(FEATURE_LAYER).output)
        self.hash = weights_hash(self.network)
        self.kind = self.network.name if self.network.name in (AUTOENCODER, INCEPTION) else CLASSIFIER
        self.num_classes = int(self.network.output.shape[-1]) if self.kind == CLASSIFIER else 0
        self._both = keras.Model(self.network.input, [self.extractor.output, self.network.output])

    @property
    def feature_dim(self) -> int:
        return int(self.extractor.output.shape[-1])

    def features(self, images: np.ndarray) -> np.ndarray:
        return self.measure_pieces(pieces(images), with_probabilities=False)[0]

    def split_features(self, split: streams.Rows) -> np.ndarray:
        """Features of every image of `split` in order, its pixels read a bounded chunk at a time."""
        return self.measure_pieces(split_pieces(split), with_probabilities=False)[0]

    def features_and_probabilities(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Both from one forward pass; probabilities are None for a featurizer without classes."""
        return self.measure_pieces(pieces(images))

    def measure_pieces(self, pieces: Iterable[np.ndarray],
                       with_probabilities: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Features (and class probabilities, None without classes) of a set handed over piece by piece, so it
        need never be whole in memory. Pieces of a multiple of `predict_batch` images (but the last) make the
        batches, hence the results, of one call over the whole set."""
        both = with_probabilities and self.kind == CLASSIFIER
        features, logits = [], []
        for piece in pieces:  # predict copies its input into tensors: one piece at a time bounds that copy
            batch = predict_batch(piece.shape[1:])
            if both:
                piece_features, piece_logits = self._both.predict(piece, batch_size=batch, verbose=0)
                logits.append(np.asarray(piece_logits, np.float64))
            else:
                piece_features = self.extractor.predict(piece, batch_size=batch, verbose=0)
            features.append(np.asarray(piece_features, np.float32))
        if not features:
            return np.empty((0, self.feature_dim), np.float32), (np.empty((0, self.num_classes)) if both else None)
        return np.concatenate(features), _softmax(np.concatenate(logits)) if both else None

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        if self.kind != CLASSIFIER:
            raise GanopsError(f"this featurizer is an {self.kind}: it has no class probabilities (only the "
                              "classifier that featurize.kind auto trains on labelled data has them)")
        batch = predict_batch(images.shape[1:])
        return _softmax(np.asarray(self.network.predict(images, batch_size=batch, verbose=0), np.float64))


def predict_batch(image_shape: tuple[int, ...]) -> int:
    """Images per inference batch: PREDICT_BATCH, or as many as hold PREDICT_PIXELS pixels when fewer."""
    return max(1, min(PREDICT_BATCH, PREDICT_PIXELS // int(np.prod(image_shape))))


def chunk_rows(image_shape: tuple[int, ...]) -> int:
    """Images per piece when measuring a set piece by piece: CHUNK_BYTES of float32, whole batches."""
    batch = predict_batch(image_shape)
    return max(1, CHUNK_BYTES // (4 * int(np.prod(image_shape)) * batch)) * batch


def split_pieces(split: streams.Rows, rows: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """The split's images at `rows` (default: all, in order) as float32 [-1, 1], `chunk_rows` at a time, for
    `Featurizer.measure_pieces`: only one piece is read at once."""
    step = chunk_rows(split.shape)
    count = len(split) if rows is None else len(rows)
    for start in range(0, count, step):
        stop = min(start + step, count)
        yield split.signed(np.arange(start, stop) if rows is None else rows[start:stop])


def pieces(images: np.ndarray) -> Iterator[np.ndarray]:
    """`images` in consecutive views of `chunk_rows` images, for `Featurizer.measure_pieces`."""
    rows = chunk_rows(images.shape[1:])
    for start in range(0, len(images), rows):
        yield images[start:start + rows]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def load(path: str | Path) -> Featurizer:
    path = Path(path)
    if not path.exists():
        raise GanopsError(f"{path}: featurizer not found (run the featurize stage first)")
    return Featurizer(keras.saving.load_model(path, compile=False))


def _augmentation(cfg: FeaturizeConfig) -> keras.Sequential | None:
    """Random shifts and zooms, applied to training batches only (the saved network never sees them), so the
    features do not hinge on where exactly a stroke sits and the network does not memorise its train split.
    Edges are filled with the nearest pixel: the background for digits, the border colour for photographs."""
    layers = []
    if cfg.translation > 0:
        layers.append(keras.layers.RandomTranslation(cfg.translation, cfg.translation, fill_mode="nearest",
                                                     seed=cfg.seed))
    if cfg.zoom > 0:
        layers.append(keras.layers.RandomZoom(cfg.zoom, fill_mode="nearest", seed=cfg.seed + 1))
    return keras.Sequential(layers, name="augmentation") if layers else None


def _batches(cfg: FeaturizeConfig, split: streams.Rows, labelled: bool) -> tf.data.Dataset:
    """Shuffled (a new seeded order each epoch), augmented training batches read from the split's shards:
    (image, label), or (image, the same image) for an autoencoder."""
    augmentation = _augmentation(cfg)

    def augmented(batch: tf.Tensor) -> tf.Tensor:
        return batch if augmentation is None else augmentation(batch, training=True)

    data = streams.shuffled_epoch(split, cfg.batch_size, cfg.seed, labels=labelled)
    if not labelled:
        # One draw of the augmentation serves as input and target: the autoencoder learns to reconstruct what
        # it is shown, not to undo the shift.
        return data.map(lambda batch: (augmented(batch),) * 2).prefetch(2)
    return data.map(lambda batch, batch_labels: (augmented(batch), batch_labels)).prefetch(2)


def training_epochs(cfg: FeaturizeConfig, train_size: int) -> int:
    """`featurize.epochs`, raised until training takes at least `featurize.min_steps` steps: a few hundred
    images at 15 epochs make too few steps for a useful classifier (0.29 accuracy on 195 digits)."""
    steps_per_epoch = math.ceil(train_size / cfg.batch_size)
    return max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))


def _optimizer(cfg: FeaturizeConfig, train_size: int, epochs: int) -> keras.optimizers.Optimizer:
    # A cosine decay to 0 ends training at a settled minimum instead of wherever the last noisy step landed.
    steps = epochs * math.ceil(train_size / cfg.batch_size)
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps))


def train(cfg: FeaturizeConfig, train_split: streams.Rows, validation_split: streams.Rows,
          num_classes: int) -> tuple[Featurizer, dict[str, float]]:
    """Build the configured kind; train a classifier (labelled data with ≥ 2 classes) or else an autoencoder
    on the train split and score it on the validation split: accuracy, or reconstruction mean squared error
    ([-1, 1] pixels). Inception is not trained and has no score."""
    keras.utils.set_random_seed(cfg.seed)
    height, width, channels = train_split.shape
    image_shape = (height, width, channels)
    if cfg.kind == INCEPTION:
        assert cfg.inception_weights is not None  # FeaturizeConfig requires it for this kind
        return Featurizer(build_inception(image_shape, cfg.inception_weights)), {}
    labelled = train_split.labelled and num_classes >= 2
    epochs = training_epochs(cfg, len(train_split))
    optimizer = _optimizer(cfg, len(train_split), epochs)
    if labelled:
        model = build_classifier(image_shape, num_classes, cfg.feature_dim)
        model.compile(optimizer=optimizer, metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    else:
        model = build_autoencoder(image_shape, cfg.feature_dim)
        model.compile(optimizer=optimizer, loss="mse")
    # shuffle=False: the dataset shuffles itself (with the configured seed).
    model.fit(_batches(cfg, train_split, labelled), epochs=epochs, shuffle=False, verbose=0)
    validation = streams.in_order(validation_split, predict_batch(image_shape), labels=labelled)
    if labelled:
        _, accuracy = model.evaluate(validation, verbose=0)
        return Featurizer(model), {"validation_accuracy": round(float(accuracy), 5)}
    error = model.evaluate(validation.map(lambda images: (images, images)), verbose=0)
    return Featurizer(model), {"validation_reconstruction_mse": round(float(error), 6)}


def run(cfg: FeaturizeConfig, prepared_dir: str | Path, model_path: str | Path,
        metrics_path: str | Path) -> dict:
    """The featurize stage: build the feature space from the prepared train split, score it on the validation
    split, save the network (a .keras file `load` reads) and its summary."""
    prepared_dir = Path(prepared_dir)
    prepared = artifacts.PreparedData(prepared_dir)
    info = prepared.read_info()
    train_split, validation_split = prepared.open_split("train"), prepared.open_split("validation")
    featurizer, score = train(cfg, train_split, validation_split, info.num_classes)
    with artifacts.atomic_path(model_path) as tmp:
        featurizer.network.save(tmp)
    summary = {**score, "kind": featurizer.kind, "hash": featurizer.hash, "feature_dim": featurizer.feature_dim,
               "data_hash": info.data_hash}
    if featurizer.kind == INCEPTION:
        summary["inception_weights"] = str(cfg.inception_weights)
    artifacts.write_json(metrics_path, summary)
    return summary
