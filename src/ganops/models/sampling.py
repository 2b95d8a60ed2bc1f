"""Loading a saved generator and drawing images from it: shared by evaluate, the registry's pyfunc model
and the `ganops generate` command."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from ganops.errors import GanopsError

BATCH = 1024


def load_generator(path: str | Path) -> keras.Model:
    path = Path(path)
    if not path.exists():
        raise GanopsError(f"{path}: generator not found (run the train stage first)")
    return keras.saving.load_model(path, compile=False)


def latent_dim(generator: keras.Model) -> int:
    return int(generator.inputs[0].shape[-1])


def latent_batch(generator: keras.Model, count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, latent_dim(generator))).astype(np.float32)


def generate(generator: keras.Model, latent: np.ndarray) -> np.ndarray:
    """Images in [-1, 1], NHWC float32."""
    return np.asarray(generator.predict(latent, batch_size=BATCH, verbose=0), np.float32)


def sample(generator: keras.Model, count: int, seed: int) -> np.ndarray:
    return generate(generator, latent_batch(generator, count, seed))
