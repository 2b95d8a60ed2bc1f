"""Generator and discriminator builders. Plain functional Keras models, so a saved generator loads
anywhere without custom objects; every size and width comes in as an argument."""

from __future__ import annotations

import keras
from keras import layers

from ganops.errors import GanopsError


def _upsampling_plan(size: int) -> tuple[int, int]:
    """Return (start side, number of stride-2 upsamplings) with a start side between 2 and 7.

    At 28 this is (7, 2): the TensorFlow DCGAN tutorial's 7×7 → 14 → 28.
    """
    ups = 2
    while size % (2**ups) == 0 and size // (2**ups) > 7:
        ups += 1
    if size % (2**ups) != 0 or size // (2**ups) < 2:
        raise GanopsError(f"data.image_size: {size} is not supported by the dcgan arch "
                          "(it must be divisible by 4 and at least 8)")
    return size // (2**ups), ups


def build_dcgan_generator(latent_dim: int, image_shape: tuple[int, int, int], base_filters: int) -> keras.Model:
    """DCGAN generator. At 28×28×1 with base_filters=64 this is exactly the TensorFlow DCGAN tutorial's
    stack: Dense 7·7·256 (no bias), BN, LeakyReLU, then Conv2DTranspose 128 (stride 1), 64 (stride 2) and
    1 (stride 2, tanh), each 5×5 without bias, the hidden ones followed by BN and LeakyReLU."""
    height, width, channels = image_shape
    if height != width:
        raise GanopsError(f"data.image_size: dcgan needs square images, got {height}×{width}")
    start, ups = _upsampling_plan(height)
    latent = keras.Input((latent_dim,), name="latent")
    x = layers.Dense(start * start * base_filters * 2**ups, use_bias=False)(latent)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU()(x)
    x = layers.Reshape((start, start, base_filters * 2**ups))(x)
    # One stride-1 block, then stride-2 blocks halving the width, the last one producing pixels.
    strides = [1] + [2] * ups
    for i, stride in enumerate(strides[:-1]):
        x = layers.Conv2DTranspose(base_filters * 2 ** (ups - 1 - i), 5, strides=stride, padding="same",
                                   use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU()(x)
    images = layers.Conv2DTranspose(channels, 5, strides=strides[-1], padding="same", use_bias=False,
                                    activation="tanh", name="images")(x)
    return keras.Model(latent, images, name="generator")


def build_dcgan_discriminator(image_shape: tuple[int, int, int], base_filters: int,
                              dropout: float = 0.3) -> keras.Model:
    """DCGAN discriminator. At 28×28 this is the tutorial's Conv2D 64 and 128 (5×5, stride 2), each with
    LeakyReLU and Dropout 0.3, then Dense 1 (a logit)."""
    _, ups = _upsampling_plan(image_shape[0])
    images = keras.Input(image_shape, name="images")
    x = images
    for i in range(ups):
        x = layers.Conv2D(base_filters * 2**i, 5, strides=2, padding="same")(x)
        x = layers.LeakyReLU()(x)
        x = layers.Dropout(dropout)(x)
    x = layers.Flatten()(x)
    logits = layers.Dense(1, name="logit")(x)
    return keras.Model(images, logits, name="discriminator")


def build_mlp_generator(latent_dim: int, image_shape: tuple[int, int, int]) -> keras.Model:
    """The classic Keras fully connected generator: latent → 256 → 128 → pixels (tanh)."""
    latent = keras.Input((latent_dim,), name="latent")
    x = layers.Dense(256)(latent)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Dense(128)(x)
    x = layers.LeakyReLU(0.2)(x)
    pixels = layers.Dense(int(image_shape[0] * image_shape[1] * image_shape[2]), activation="tanh")(x)
    images = layers.Reshape(image_shape, name="images")(pixels)
    return keras.Model(latent, images, name="generator")


def build_mlp_discriminator(image_shape: tuple[int, int, int]) -> keras.Model:
    """The classic Keras fully connected discriminator: pixels → 128 → 256 → 1 (a logit)."""
    images = keras.Input(image_shape, name="images")
    x = layers.Flatten()(images)
    x = layers.Dense(128)(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Dense(256)(x)
    x = layers.LeakyReLU(0.2)(x)
    logits = layers.Dense(1, name="logit")(x)
    return keras.Model(images, logits, name="discriminator")


def build_pair(arch: str, latent_dim: int, image_shape: tuple[int, int, int],
               base_filters: int) -> tuple[keras.Model, keras.Model]:
    if arch == "dcgan":
        return (build_dcgan_generator(latent_dim, image_shape, base_filters),
                build_dcgan_discriminator(image_shape, base_filters))
    if arch == "mlp":
        return build_mlp_generator(latent_dim, image_shape), build_mlp_discriminator(image_shape)
    raise GanopsError(f"train.arch: unknown architecture {arch!r}")
