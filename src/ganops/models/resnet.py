"""Residual generator and discriminator in the style of SNGAN (Miyato et al. 2018) and BigGAN (Brock et al.
2019), for square images of side 4·2^k (meant for 32–128 px), gray or RGB, conditional or not. Plain
functional Keras models with the contract of the other archs (networks.py, parts.py): the same input names,
tanh images in [-1, 1] from a float32 layer named "images", the same logit / projection head.

Generator: Dense latent → 4×4×8b (b = `base_filters`), one up-sampling residual block per doubling, then
BN-ReLU-conv3×3-tanh. Widths halve per block from 8b down to b. Blocks are pre-activation (BN-ReLU before
each conv, He et al. 2016), as in SNGAN and BigGAN: the shortcut carries the block's input untouched.

Conditional generator: class-conditional BatchNorm (de Vries et al. 2017; SNGAN's choice with a projection
discriminator, BigGAN's too): each block's BatchNormalization normalises without a gain and bias of its own,
and a per-class gain and bias (Embedding rows) follow. The inputs stay "latent" and "label", every BN layer
is a plain BatchNormalization (so `standing` recomputes its statistics) and every Embedding has
`num_classes` rows (so `sampling.num_classes` reads the class count): serving works unchanged.

Discriminator: the mirror image. An "optimized" first block (no activation before its first conv: its input
is pixels), down-sampling blocks (ReLU-conv3×3-ReLU-conv3×3-average pool) doubling the width up to 8b at
4×4, one last block at 4×4 without down-sampling, then ReLU, global sum pooling and the shared head.
Spectral norm (`train.spectral_norm`) wraps every conv and the logit. No BatchNorm in D: it would couple the
samples of a batch and fight the gradient penalties.
"""

from __future__ import annotations

import keras
from keras import layers

from ganops.archs import RESNET_START_SIDE, resnet_blocks, resnet_size_problem
from ganops.errors import GanopsError
from ganops.models.parts import image_inputs, label_input, latent_input, logit, minibatch_std, spectral

START_SIDE = RESNET_START_SIDE  # the generator's first feature map and the discriminator's last
WIDEST = 8  # the widest feature maps (at 4×4) have WIDEST × base_filters channels


def residual_blocks(image_shape: tuple[int, int, int]) -> int:
    """Doublings between 4×4 and the image side (one residual block each)."""
    height, width = int(image_shape[0]), int(image_shape[1])
    if height != width:
        raise GanopsError(f"data.image_size: resnet needs square images, got {height}×{width}")
    blocks = resnet_blocks(height)
    if blocks is None:
        raise GanopsError(str(resnet_size_problem(height)))
    return blocks


def generator_widths(blocks: int, base_filters: int) -> list[int]:
    """Channels at 4×4 and after each up block: WIDEST·b halving per block, never below b (the shape of
    BigGAN and of SNGAN's ImageNet models: wide where the map is small, so each block costs about the same)."""
    return [max(base_filters * WIDEST // 2**i, base_filters) for i in range(blocks + 1)]


def _batchnorm(x: keras.KerasTensor, label: keras.KerasTensor | None, num_classes: int,
               name: str) -> keras.KerasTensor:
    """BatchNorm; class-conditional when `label` is given: a per-class gain (starting at 1) and bias
    (starting at 0) replace the layer's own."""
    if label is None:
        return layers.BatchNormalization(name=name)(x)
    channels = int(x.shape[-1])
    x = layers.BatchNormalization(center=False, scale=False, name=name)(x)
    gain = layers.Embedding(num_classes, channels, embeddings_initializer="ones", name=f"{name}_gain")(label)
    bias = layers.Embedding(num_classes, channels, embeddings_initializer="zeros", name=f"{name}_bias")(label)
    # (batch, channels) → (batch, 1, 1, channels), broadcast over the feature map.
    gain = layers.Reshape((1, 1, channels), name=f"{name}_gain_map")(gain)
    bias = layers.Reshape((1, 1, channels), name=f"{name}_bias_map")(bias)
    scaled = layers.Multiply(name=f"{name}_scaled")([x, gain])
    return layers.Add(name=f"{name}_shifted")([scaled, bias])


def _up_block(x: keras.KerasTensor, filters: int, label: keras.KerasTensor | None, num_classes: int,
              name: str) -> keras.KerasTensor:
    """BN-ReLU-upsample-conv3×3-BN-ReLU-conv3×3 plus an upsampled shortcut (through a 1×1 conv when the
    width changes). Nearest-neighbour upsampling, not transposed convs: no checkerboard artefacts."""
    shortcut = x
    if int(x.shape[-1]) != filters:
        # Before the upsampling: a 1×1 conv commutes with nearest-neighbour upsampling, at a quarter the cost.
        # No bias: conv2's already shifts the sum.
        shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_shortcut")(shortcut)
    shortcut = layers.UpSampling2D(name=f"{name}_shortcut_up")(shortcut)
    h = layers.ReLU(name=f"{name}_relu1")(_batchnorm(x, label, num_classes, f"{name}_bn1"))
    h = layers.UpSampling2D(name=f"{name}_up")(h)
    h = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(h)
    h = layers.ReLU(name=f"{name}_relu2")(_batchnorm(h, label, num_classes, f"{name}_bn2"))
    h = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(h)
    return layers.Add(name=f"{name}_out")([h, shortcut])


def build_resnet_generator(latent_dim: int, image_shape: tuple[int, int, int], base_filters: int,
                           num_classes: int = 0) -> keras.Model:
    """The residual generator (module docstring). Inputs: "latent", and "label" when conditional."""
    blocks = residual_blocks(image_shape)
    widths = generator_widths(blocks, base_filters)
    latent = latent_input(latent_dim)
    label = label_input() if num_classes else None
    x = layers.Dense(START_SIDE * START_SIDE * widths[0], name="project")(latent)
    x = layers.Reshape((START_SIDE, START_SIDE, widths[0]), name="start")(x)
    for index, filters in enumerate(widths[1:], start=1):
        x = _up_block(x, filters, label, num_classes, f"up{index}")
    # The output BN is unconditional, as in SNGAN and BigGAN: the class already shaped every block.
    x = layers.ReLU(name="out_relu")(layers.BatchNormalization(name="out_bn")(x))
    images = layers.Conv2D(int(image_shape[2]), 3, padding="same", activation="tanh", dtype="float32",
                           name="images")(x)
    return keras.Model([latent, label] if label is not None else latent, images, name="generator")


def _down_block(x: keras.KerasTensor, filters: int, spectral_norm: bool, name: str, *, first: bool,
                down: bool) -> keras.KerasTensor:
    """(ReLU-)conv3×3-ReLU-conv3×3(-average pool) plus a shortcut through a 1×1 conv when the width
    changes or the block down-samples (SNGAN's learnable shortcut). The first block's input is pixels, so
    it gets no activation first (SNGAN's "optimized" block)."""
    h = x if first else layers.ReLU(name=f"{name}_relu1")(x)
    h = spectral(layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1"), spectral_norm)(h)
    h = layers.ReLU(name=f"{name}_relu2")(h)
    h = spectral(layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2"), spectral_norm)(h)
    shortcut = x
    if down:
        h = layers.AveragePooling2D(2, name=f"{name}_pool")(h)
        # Pooling first: average pooling and a 1×1 conv commute, and the conv then sees a quarter the pixels.
        shortcut = layers.AveragePooling2D(2, name=f"{name}_shortcut_pool")(shortcut)
    if down or int(x.shape[-1]) != filters:
        # No bias: conv2's already shifts the sum.
        conv = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_shortcut")
        shortcut = spectral(conv, spectral_norm)(shortcut)
    return layers.Add(name=f"{name}_out")([h, shortcut])


def build_resnet_discriminator(image_shape: tuple[int, int, int], base_filters: int, dropout: float,
                               num_classes: int = 0, spectral_norm: bool = False,
                               batch_std: bool = False) -> keras.Model:
    """The residual discriminator (module docstring), widths mirroring the generator's. Dropout (0 unless
    `train.d_dropout` asks) follows each block, as it follows each layer in the other archs."""
    blocks = residual_blocks(image_shape)
    widths = generator_widths(blocks, base_filters)[::-1]
    inputs = image_inputs(image_shape, num_classes)
    x = inputs[0]
    for index, filters in enumerate(widths):
        if index == len(widths) - 1:  # before the last block, at 4×4, where ProGAN adds it
            x = minibatch_std(x, batch_std)
        x = _down_block(x, filters, spectral_norm, f"down{index + 1}", first=index == 0, down=index < blocks)
        if dropout:
            x = layers.Dropout(dropout, name=f"down{index + 1}_dropout")(x)
    x = layers.ReLU(name="features_relu")(x)
    # Global sum pooling (SNGAN, BigGAN): the mean scaled by the 4×4 positions. With spectral norm on the
    # logit, a mean would shrink the logit's reach 16-fold.
    x = layers.GlobalAveragePooling2D(name="features_mean")(x)
    features = layers.Rescaling(float(START_SIDE * START_SIDE), name="features_sum")(x)
    logits = logit(inputs, features, num_classes, spectral_norm)
    return keras.Model(inputs if num_classes else inputs[0], logits, name="discriminator")
