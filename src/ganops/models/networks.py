"""Generator and discriminator builders. Plain functional Keras models, so a saved generator loads
anywhere without custom objects; every size and width comes in as an argument. The residual arch lives in
resnet.py; the inputs and heads every arch shares in parts.py.

Conditional variants (`num_classes > 0`) take a second int input named "label":
- the generator concatenates a learned label embedding (latent_dim wide) to the latent vector (resnet:
  class-conditional BatchNorm instead);
- the discriminator is a projection discriminator (Miyato & Koyama 2018): logit = ψ(φ(x)) + ⟨e(y), φ(x)⟩,
  where φ(x) are the features feeding the final Dense and e(y) a per-class embedding of the same width.
"""

from __future__ import annotations

import keras
from keras import layers

from ganops.archs import dcgan_size_problem, dcgan_upsampling
from ganops.errors import GanopsError
from ganops.models import resnet
from ganops.models.parts import image_inputs, latent_inputs, logit, minibatch_std, spectral

# Each arch's classic discriminator dropout, used when `train.d_dropout` is null and D's inputs are not augmented
# (config.TrainConfig.loss_settings): the TensorFlow DCGAN tutorial's 0.3, none for the classic Keras mlp and for
# resnet (SNGAN and BigGAN use none).
ARCH_DROPOUT = {"dcgan": 0.3, "mlp": 0.0, "resnet": 0.0}


def _upsampling_plan(size: int) -> tuple[int, int]:
    """(start side, stride-2 upsamplings) of the dcgan stack for this side (`archs.dcgan_upsampling`)."""
    plan = dcgan_upsampling(size)
    if plan is None:
        raise GanopsError(str(dcgan_size_problem(size)))
    return plan


def build_dcgan_generator(latent_dim: int, image_shape: tuple[int, int, int], base_filters: int,
                          num_classes: int = 0) -> keras.Model:
    """DCGAN generator. At 28×28×1 with base_filters=64 this is exactly the TensorFlow DCGAN tutorial's
    stack: Dense 7·7·256 (no bias), BN, LeakyReLU, then Conv2DTranspose 128 (stride 1), 64 (stride 2) and
    1 (stride 2, tanh), each 5×5 without bias, the hidden ones followed by BN and LeakyReLU."""
    height, width, channels = image_shape
    if height != width:
        raise GanopsError(f"data.image_size: dcgan needs square images, got {height}×{width}")
    start, ups = _upsampling_plan(height)
    inputs, x = latent_inputs(latent_dim, num_classes)
    x = layers.Dense(start * start * base_filters * 2**ups, use_bias=False)(x)
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
                                    activation="tanh", dtype="float32", name="images")(x)
    return keras.Model(inputs if num_classes else inputs[0], images, name="generator")


def build_dcgan_discriminator(image_shape: tuple[int, int, int], base_filters: int, dropout: float,
                              num_classes: int = 0, spectral_norm: bool = False,
                              batch_std: bool = False) -> keras.Model:
    """DCGAN discriminator. At 28×28 this is the tutorial's Conv2D 64 and 128 (5×5, stride 2), each with
    LeakyReLU and Dropout (the tutorial's 0.3: `ARCH_DROPOUT`), then Dense 1 (a logit)."""
    _, ups = _upsampling_plan(image_shape[0])
    inputs = image_inputs(image_shape, num_classes)
    x = inputs[0]
    for i in range(ups):
        x = spectral(layers.Conv2D(base_filters * 2**i, 5, strides=2, padding="same"), spectral_norm)(x)
        x = layers.LeakyReLU()(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    features = layers.Flatten()(minibatch_std(x, batch_std))
    logits = logit(inputs, features, num_classes, spectral_norm)
    return keras.Model(inputs if num_classes else inputs[0], logits, name="discriminator")


def build_mlp_generator(latent_dim: int, image_shape: tuple[int, int, int], num_classes: int = 0) -> keras.Model:
    """The classic Keras fully connected generator: latent → 256 → 128 → pixels (tanh)."""
    inputs, x = latent_inputs(latent_dim, num_classes)
    x = layers.Dense(256)(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Dense(128)(x)
    x = layers.LeakyReLU(0.2)(x)
    pixels = layers.Dense(int(image_shape[0] * image_shape[1] * image_shape[2]), activation="tanh")(x)
    images = layers.Reshape(image_shape, dtype="float32", name="images")(pixels)
    return keras.Model(inputs if num_classes else inputs[0], images, name="generator")


def build_mlp_discriminator(image_shape: tuple[int, int, int], dropout: float, num_classes: int = 0,
                            spectral_norm: bool = False, batch_std: bool = False) -> keras.Model:
    """The classic Keras fully connected discriminator: pixels → 128 → 256 → 1 (a logit)."""
    inputs = image_inputs(image_shape, num_classes)
    x = layers.Flatten()(inputs[0])
    for units in (128, 256):
        x = spectral(layers.Dense(units), spectral_norm)(x)
        x = layers.LeakyReLU(0.2)(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    logits = logit(inputs, minibatch_std(x, batch_std), num_classes, spectral_norm)
    return keras.Model(inputs if num_classes else inputs[0], logits, name="discriminator")


def build_generator(arch: str, latent_dim: int, image_shape: tuple[int, int, int], base_filters: int,
                    num_classes: int = 0) -> keras.Model:
    if arch == "dcgan":
        return build_dcgan_generator(latent_dim, image_shape, base_filters, num_classes)
    if arch == "mlp":
        return build_mlp_generator(latent_dim, image_shape, num_classes)
    if arch == "resnet":
        return resnet.build_resnet_generator(latent_dim, image_shape, base_filters, num_classes)
    raise GanopsError(f"train.arch: unknown architecture {arch!r}")


def build_discriminator(arch: str, image_shape: tuple[int, int, int], base_filters: int,
                        dropout: float | None = None, num_classes: int = 0,
                        spectral_norm: bool = False, batch_std: bool = False) -> keras.Model:
    """`dropout=None` keeps the arch's classic value (`ARCH_DROPOUT`); `batch_std` adds a minibatch standard
    deviation feature before D's head (`parts.MinibatchStd`)."""
    if arch not in ARCH_DROPOUT:
        raise GanopsError(f"train.arch: unknown architecture {arch!r}")
    dropout = ARCH_DROPOUT[arch] if dropout is None else dropout
    if arch == "dcgan":
        return build_dcgan_discriminator(image_shape, base_filters, dropout, num_classes, spectral_norm, batch_std)
    if arch == "resnet":
        return resnet.build_resnet_discriminator(image_shape, base_filters, dropout, num_classes, spectral_norm,
                                                 batch_std)
    return build_mlp_discriminator(image_shape, dropout, num_classes, spectral_norm, batch_std)


def build_pair(arch: str, latent_dim: int, image_shape: tuple[int, int, int], base_filters: int,
               num_classes: int = 0, dropout: float | None = None,
               spectral_norm: bool = False, batch_std: bool = False) -> tuple[keras.Model, keras.Model]:
    return (build_generator(arch, latent_dim, image_shape, base_filters, num_classes),
            build_discriminator(arch, image_shape, base_filters, dropout, num_classes, spectral_norm, batch_std))
