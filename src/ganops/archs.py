"""Which arch can make which images, and what `train.arch: auto` and `train.augment: auto` choose: pure functions
of the images' side and count, so params are checked when they load (config) and the model builders (models.networks,
models.resnet, models.augment) use the same rules. Imports no model code."""

from __future__ import annotations

from typing import Literal

Augmentation = Literal["color", "translation", "cutout"]  # DiffAugment's three, applied in this order

# `augment: auto` turns DiffAugment's color and translation on below this many training images (convolutional
# archs): a time budget of a few minutes is then many epochs over the data, and D memorises it. On 1,000
# 32×32×3 images a dcgan without augmentation got worse after 50 s (79× the floor, then 113× at 150 s; one
# seed). Cutout is left out: with D's dropout off (config.TrainConfig.loss_settings), color + translation
# measured 24.6× at 150 s against 38.0× with cutout too (one seed; 15.3× against 20.9× at 300 s). MNIST's 7,000
# training images stay above the bound: not measured with it.
SMALL_DATA_IMAGES = 5_000
SMALL_DATA_AUGMENTATION: tuple[Augmentation, ...] = ("color", "translation")


def is_convolutional(arch: str) -> bool:
    """dcgan and resnet; the mlp is fully connected. What `augment: auto` and `precision: auto` key on: the
    arch must be resolved first (`auto` is neither)."""
    if arch == "auto":
        raise ValueError("train.arch: auto must be resolved for the data (config.TrainConfig.for_data) first")
    return arch != "mlp"


def auto_augment(arch: str, train_count: int) -> list[Augmentation]:
    """`train.augment: auto` for this arch and this many training images."""
    return list(SMALL_DATA_AUGMENTATION) if is_convolutional(arch) and train_count < SMALL_DATA_IMAGES else []


def dcgan_upsampling(image_size: int) -> tuple[int, int] | None:
    """(start side, stride-2 upsamplings) of the dcgan generator for this side, the start side between 2 and 7
    and at least two upsamplings (at 28: (7, 2), the TensorFlow DCGAN tutorial's 7×7 → 14 → 28); None when
    no such plan exists."""
    ups = 2
    while image_size % 2**ups == 0 and image_size // 2**ups > 7:
        ups += 1
    if image_size % 2**ups != 0 or image_size // 2**ups < 2:
        return None
    return image_size // 2**ups, ups


def dcgan_size_problem(image_size: int) -> str | None:
    """Why the dcgan arch cannot make square images of this side, or None."""
    if dcgan_upsampling(image_size) is not None:
        return None
    return (f"train.arch: dcgan needs data.image_size of the form s·2^k with s from 2 to 7 and k ≥ 2 (8, 12, 16, "
            f"20, 24, 28, 32, 40, 48, 56, 64, …), got {image_size}")


# `arch: auto` is the dcgan for RGB images from this side up (where it can make the side), the mlp otherwise.
# Measured at the default 150 s budget, in the convolutional feature space: on 1,000 32×32×3 shapes the dcgan
# with the small-data defaults was a median 33.6× the floor against the mlp's 73.9× (3 seeds each, README
# "Small RGB folders"); on gray 28×28 MNIST the mlp was 35.3× [fd 7.69–9.87] against the dcgan's 40.4× [8.97–
# 11.19] (one seed, n = 2,000), and the mlp is best on the 8×8 digits. The README's 240 s MNIST commands set the
# dcgan (21.8× there; the mlp was not run that long side by side); nothing between 8 and 16 px was measured.
CONVOLUTIONAL_FROM_SIDE = 16


def auto_arch(image_size: int, channels: int) -> tuple[str, str]:
    """`train.arch: auto` for square images of this side and channel count, and why, in a few words."""
    if channels != 3:
        return "mlp", "gray images"
    if image_size < CONVOLUTIONAL_FROM_SIDE:
        return "mlp", f"RGB, but {image_size} px is under {CONVOLUTIONAL_FROM_SIDE} px"
    if dcgan_upsampling(image_size) is None:
        return "mlp", f"RGB, but the dcgan cannot make {image_size} px"
    return "dcgan", f"RGB at {CONVOLUTIONAL_FROM_SIDE} px or more"


RESNET_START_SIDE = 4  # the resnet generator's first feature map and its discriminator's last


def resnet_blocks(image_size: int) -> int | None:
    """Residual blocks (doublings from RESNET_START_SIDE) that make a side of `image_size`, or None when no
    whole number does."""
    blocks = (image_size // RESNET_START_SIDE).bit_length() - 1
    return blocks if blocks >= 1 and image_size == RESNET_START_SIDE * 2**blocks else None


def resnet_size_problem(image_size: int) -> str | None:
    """Why the resnet arch cannot make square images of this side, or None: the side must be 4·2^k (k ≥ 1)."""
    if resnet_blocks(image_size) is not None:
        return None
    return (f"train.arch: resnet needs data.image_size of the form 4·2^k (8, 16, 32, 64, 128, 256, 512), "
            f"got {image_size}")
