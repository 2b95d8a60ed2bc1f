"""Standing BatchNorm statistics for a generator that is sampled with `training=False`.

The generator EMA averages every weight, BatchNorm moving means and variances included, but an average of
past statistics is not the statistics of the averaged weights. Before the EMA generator is measured or
saved, each BatchNormalization layer's moving mean and variance are replaced by the exact statistics of
that layer's input, measured on fresh latent batches (class-balanced labels for a conditional generator).

Definition used here (not BigGAN's one-pass version): layers are recomputed in order, each measured with
every layer before it already in inference mode with its recomputed statistics. BigGAN accumulates all
layers' batch statistics in one `training=True` pass, where upstream layers normalise with per-batch
statistics, yet at sampling time they normalise with the standing ones, so downstream layers meet a
slightly different input than the one they were calibrated on. Measured this way, each layer's statistics
are those of the input it actually receives when sampling. Upstream layers then do not depend on the
batch, so the pooled mean and (biased, as BatchNormalization's) variance over all `batches × batch_size`
samples are the statistics of one large batch; the batch size only bounds memory.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from ganops.errors import GanopsError
from ganops.models import sampling

STANDING_BATCHES = 32  # × STANDING_BATCH_SIZE = 8,192 latents, for images up to FULL_SAMPLE_PIXELS
STANDING_BATCH_SIZE = 256
# Each layer is measured through every layer before it, so the cost grows with the pixels and the square of
# the BN layer count: a 64×64 resnet (9 BN layers, base_filters 64) took 323 s at 8,192 latents on this
# project's 2-core CPU (61 s at the 1,536 it gets now). Beyond 28×28 (the dcgan MNIST figures keep their
# 8,192) the latent count shrinks in proportion to the pixels, down to 4 batches
# (1,024 latents): a conv layer's channel moments pool latents × height × width values, so those at 8×8 and up
# still pool at least 65,536 values each and the 4×4 ones 16,384 (instead of 131,072); a BN on a dense layer
# (dcgan's first) pools the latents alone.
FULL_SAMPLE_PIXELS = 28 * 28
MIN_STANDING_BATCHES = 4
_MOMENT_ROWS = 32  # samples converted to float64 at a time (a divisor of the batch: `math.gcd`)
# Calibration latents come from a stream of their own, so they are not the latents later measured with
# the same seed (`sampling.latent_batch`).
_STREAM = 0x5A7D


def batchnorm_layers(generator: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The generator's BatchNormalization layers in call order (a functional model lists them so)."""
    for layer in generator.layers:
        if isinstance(layer, keras.Model) and _contains_batchnorm(layer):
            # Its BN inputs are not tensors of the outer graph, so they cannot be probed from it.
            raise GanopsError(f"generator {generator.name!r}: BatchNormalization inside the nested model "
                              f"{layer.name!r} is not supported for standing statistics")
    return [layer for layer in generator.layers if isinstance(layer, keras.layers.BatchNormalization)]


def _contains_batchnorm(model: keras.Model) -> bool:
    return any(isinstance(layer, keras.layers.BatchNormalization)
               or (isinstance(layer, keras.Model) and _contains_batchnorm(layer)) for layer in model.layers)


def _calibration_inputs(generator: keras.Model, batches: int, batch_size: int, seed: int) -> list:
    rng = np.random.default_rng([_STREAM, seed])
    classes = sampling.num_classes(generator)
    labels = sampling.balanced_labels(batch_size, classes) if classes else None
    inputs = []
    for _ in range(batches):
        latent = rng.standard_normal((batch_size, sampling.latent_dim(generator))).astype(np.float32)
        inputs.append(latent if labels is None else {"latent": latent, sampling.LABEL_INPUT: labels})
    return inputs


def _pooled_moments(layer: keras.layers.BatchNormalization, probe: keras.Model,
                    inputs: list) -> tuple[np.ndarray, np.ndarray]:
    """Mean and biased variance of `layer`'s input per channel over all samples of `inputs`."""
    batch_means, batch_variances = [], []
    for batch in inputs:
        values = np.asarray(probe(batch, training=False))
        axis = layer.axis % values.ndim
        reduce = tuple(i for i in range(values.ndim) if i != axis)
        # In float64 a few samples at a time: a whole batch of a wide 64×64 activation is 134 MB in float64,
        # and its variance takes as much again.
        rows = math.gcd(len(values), _MOMENT_ROWS)
        for start in range(0, len(values), rows):
            part = values[start:start + rows].astype(np.float64)
            batch_means.append(part.mean(axis=reduce))
            batch_variances.append(part.var(axis=reduce))
    means, variances = np.stack(batch_means), np.stack(batch_variances)
    # Equal part sizes: the variance of all samples is the mean within-part variance plus the variance
    # of the part means (exact, unlike averaging the per-part variances alone).
    return means.mean(axis=0), variances.mean(axis=0) + means.var(axis=0)


def default_batches(generator: keras.Model) -> int:
    """Calibration batches of STANDING_BATCH_SIZE latents for `generator`, by its image size (see
    FULL_SAMPLE_PIXELS)."""
    height, width = generator.output_shape[1:3]
    pixels = int(height) * int(width)
    return max(MIN_STANDING_BATCHES, min(STANDING_BATCHES, STANDING_BATCHES * FULL_SAMPLE_PIXELS // pixels))


def recompute_batchnorm_statistics(generator: keras.Model, seed: int, batches: int | None = None,
                                   batch_size: int = STANDING_BATCH_SIZE) -> list[str]:
    """Set every BatchNormalization layer's moving mean and variance of `generator`, in place, to the
    standing statistics described in the module docstring; deterministic given `seed`. Only the moving
    statistics change. Returns the names of the layers recomputed (none for a generator without BN).
    `batches` None: `default_batches(generator)`."""
    layers = batchnorm_layers(generator)
    if not layers:
        return []
    batches = default_batches(generator) if batches is None else batches
    if batches < 1 or batch_size < 1:
        raise ValueError(f"standing statistics need at least one sample, got {batches} × {batch_size}")
    inputs = _calibration_inputs(generator, batches, batch_size, seed)
    for layer in layers:
        # Built after the layers before it were recomputed: the probe shares their variables.
        probe = keras.Model(generator.input, layer.input)
        mean, variance = _pooled_moments(layer, probe, inputs)
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
    return [layer.name for layer in layers]


def with_standing_statistics(generator: keras.Model, seed: int, batches: int | None = None,
                             batch_size: int = STANDING_BATCH_SIZE) -> keras.Model:
    """A copy of `generator` with standing statistics (`generator` itself when it has no BatchNorm), so
    the EMA generator keeps its averaged statistics and a resumed run continues exactly."""
    if not batchnorm_layers(generator):
        return generator
    copy = keras.models.clone_model(generator)
    for target, source in zip(copy.weights, generator.weights, strict=True):  # no numpy copy of every weight
        target.assign(source)
    recompute_batchnorm_statistics(copy, seed, batches, batch_size)
    return copy
