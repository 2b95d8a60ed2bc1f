"""Loading a saved generator and drawing images from it: shared by evaluate, the registry's pyfunc model
and the `ganops generate` command.

A saved generator is a plain functional Keras model with an input named "latent" of shape (latent_dim,)
and, when class-conditional, a second int input named "label" feeding an Embedding of `num_classes` rows.
Its output is NHWC in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from ganops import shards
from ganops.errors import GanopsError

BATCH = 1024
# At most this many pixels a call: BATCH images up to 28 × 28, fewer of larger ones, so that a call's
# activations stay bounded (1,024 DCGAN images of 64 × 64 hold 537 MB in each 32-channel full-side layer).
BATCH_PIXELS = BATCH * 28 * 28
LABEL_INPUT = "label"


def load_generator(path: str | Path) -> keras.Model:
    path = Path(path)
    if not path.exists():
        raise GanopsError(f"{path}: generator not found (run the train stage first)")
    return keras.saving.load_model(path, compile=False)


def _input_names(generator: keras.Model) -> list[str]:
    return [getattr(tensor, "name", "") for tensor in generator.inputs]


def latent_dim(generator: keras.Model) -> int:
    return int(generator.inputs[0].shape[-1])


def num_classes(generator: keras.Model) -> int:
    """0 for an unconditional generator, else the number of classes its "label" input accepts."""
    if LABEL_INPUT not in _input_names(generator):
        return 0
    sizes = {layer.input_dim for layer in generator.layers if isinstance(layer, keras.layers.Embedding)}
    if len(sizes) != 1:
        raise GanopsError(f"generator {generator.name!r}: has a label input but no single Embedding to "
                          "tell its class count")
    return int(sizes.pop())


def latent_batch(generator: keras.Model, count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, latent_dim(generator))).astype(np.float32)


def balanced_labels(count: int, classes: int) -> np.ndarray:
    """0, 1, …, classes−1, 0, 1, … — every class equally often (to within one)."""
    return (np.arange(count) % classes).astype(np.int32)


def generate(generator: keras.Model, latent: np.ndarray, labels: np.ndarray | None = None, *,
             pixels: bool = False) -> np.ndarray:
    """Images in [-1, 1], NHWC float32, one per latent row (and label, for a conditional generator).
    `pixels`: uint8 in [0, 255] instead, the values a saved PNG holds and the dtype the prepared splits store:
    a quarter of the memory (10,000 images of 64×64×3 are 123 MB rather than 491 MB), and what the evaluate
    stage measures, so generated and real images pass the same rounding."""
    classes = num_classes(generator)
    inputs: np.ndarray | dict[str, np.ndarray]
    if not classes:
        if labels is not None:
            raise GanopsError("labels given, but this generator is unconditional")
        inputs = latent
    else:
        if labels is None:
            raise GanopsError(f"this generator is conditional: give one label (0..{classes - 1}) per latent")
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(latent):
            raise GanopsError(f"{len(labels)} labels for {len(latent)} latent vectors")
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise GanopsError(f"labels must lie in 0..{classes - 1}, got {labels.min()}..{labels.max()}")
        inputs = {"latent": latent, LABEL_INPUT: labels.astype(np.int32)}
    # Direct calls in batches rather than `predict`, whose per-call set-up costs as much as a few hundred
    # small images (the training monitor samples every few seconds; serving answers small requests).
    batch = max(1, min(BATCH, BATCH_PIXELS // int(np.prod(generator.output_shape[1:]))))
    # Filled in place: a list of batches and its concatenation would hold every image twice.
    images = np.empty((len(latent), *generator.output_shape[1:]), np.uint8 if pixels else np.float32)
    for start in range(0, len(latent), batch):
        signed = np.asarray(generator(_rows(inputs, start, batch), training=False))
        images[start:start + batch] = shards.from_signed(signed) if pixels else signed
    return images


def _rows(inputs, start: int, count: int):
    if isinstance(inputs, dict):
        return {name: values[start:start + count] for name, values in inputs.items()}
    return inputs[start:start + count]


def sample(generator: keras.Model, count: int, seed: int, labels: np.ndarray | None = None, *,
           pixels: bool = False) -> np.ndarray:
    """`count` images from seeded latents (`pixels`: as uint8, see `generate`). A conditional generator
    without `labels` draws every class equally often, so distances against a class-balanced holdout compare
    like with like."""
    classes = num_classes(generator)
    if classes and labels is None:
        labels = balanced_labels(count, classes)
    return generate(generator, latent_batch(generator, count, seed), labels, pixels=pixels)
