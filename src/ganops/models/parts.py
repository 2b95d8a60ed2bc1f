"""Pieces every architecture shares (networks.py, resnet.py): the model inputs, which are the serving
contract, the optional spectral normalisation, and the logit / projection head.

Inputs: a generator takes "latent" (latent_dim floats) and, when class-conditional, "label" (one int); a
discriminator takes "images" and, when class-conditional, "label". `sampling` and `standing` find them by
these names.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from ganops.models.spectral import SpectralNorm

LATENT_INPUT = "latent"
LABEL_INPUT = "label"
IMAGES_INPUT = "images"


def latent_input(latent_dim: int) -> keras.KerasTensor:
    return keras.Input((latent_dim,), name=LATENT_INPUT)


def label_input() -> keras.KerasTensor:
    return keras.Input((), dtype="int32", name=LABEL_INPUT)


def latent_inputs(latent_dim: int, num_classes: int) -> tuple[list[keras.KerasTensor], keras.KerasTensor]:
    """The generator's inputs, and the latent with a learned label embedding (latent_dim wide) concatenated
    when conditional."""
    latent = latent_input(latent_dim)
    if not num_classes:
        return [latent], latent
    label = label_input()
    embedded = layers.Embedding(num_classes, latent_dim, name="label_embedding")(label)
    return [latent, label], layers.Concatenate(name="latent_and_label")([latent, embedded])


def image_inputs(image_shape: tuple[int, int, int], num_classes: int) -> list[keras.KerasTensor]:
    images = keras.Input(image_shape, name=IMAGES_INPUT)
    return [images, label_input()] if num_classes else [images]


def spectral(layer: keras.layers.Layer, spectral_norm: bool) -> keras.layers.Layer:
    # Our own wrapper (spectral.py): the gradient flows through σ, and u moves once per training step.
    return SpectralNorm(layer, name=f"sn_{layer.name}") if spectral_norm else layer


def logit(inputs: list[keras.KerasTensor], features: keras.KerasTensor, num_classes: int,
          spectral_norm: bool) -> keras.KerasTensor:
    """Dense 1 on `features`; conditional: a projection discriminator (Miyato & Koyama 2018),
    logit = ψ(φ(x)) + ⟨e(y), φ(x)⟩ with e(y) a per-class embedding as wide as the features φ(x). With spectral
    norm both ψ and the embedding table are normalised, as in the paper."""
    plain = spectral(layers.Dense(1, name="logit"), spectral_norm)(features)
    if not num_classes:
        return plain
    embedding = layers.Embedding(num_classes, features.shape[-1], name="class_projection")
    class_embedding = spectral(embedding, spectral_norm)(inputs[1])
    projection = layers.Dot(axes=1, name="projection")([class_embedding, features])
    return layers.Add(name="projected_logit")([plain, projection])


@keras.saving.register_keras_serializable(package="ganops")
class MinibatchStd(layers.Layer):
    """ProGAN's minibatch standard deviation (Karras et al. 2018): appends one feature, the standard deviation
    of every feature over the batch averaged into a scalar, so D can tell a batch of near-identical fakes from
    a varied batch of reals and the generator is pushed away from collapsing onto a few outputs. D sees reals
    and fakes in separate calls (`GAN.train_step`), so the statistic never mixes them. Over the whole batch,
    not ProGAN's groups of 4: the batches here are small (16 by default) and one replica's batch is the group.

    On a (batch, height, width, channels) input it appends a constant channel, on (batch, features) one column.
    """

    def call(self, x):
        values = ops.cast(x, "float32")  # the variance of bf16/fp16 activations loses too much precision
        spread = ops.sqrt(ops.var(values, axis=0) + 1e-8)
        statistic = ops.cast(ops.mean(spread), x.dtype)
        column = ops.ones_like(x[..., :1]) * statistic
        return ops.concatenate([x, column], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)


def minibatch_std(x: keras.KerasTensor, enabled: bool) -> keras.KerasTensor:
    return MinibatchStd(name="minibatch_std")(x) if enabled else x
