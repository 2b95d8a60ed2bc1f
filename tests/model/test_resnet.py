"""The residual arch (`train.arch: resnet`): its networks at 32 and 64 px, gray and RGB, conditional or not;
a bad image size refused by the config in one line; and tiny real training runs through the train stage's
own functions, whose EMA generator is checkpointed, saved, reloaded and served like the other archs'."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from ganops import artifacts
from ganops.config import parse_params
from ganops.data import prepare
from ganops.errors import GanopsError
from ganops.models import networks, resnet, sampling, standing
from ganops.models.spectral import SpectralNorm
from ganops.registry import serving
from ganops.training import checkpoint
from ganops.training import train as train_lib
from tests.helpers import metrics, register_version, shrunk_params

LATENT_DIM = 16
# Red, green, blue and yellow squares on a dark background: one class per colour.
COLOURS = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 230], [240, 220, 40]], np.uint8)
TINY_TRAIN = {"arch": "resnet", "augment": [], "base_filters": 8, "batch_size": 8, "latent_dim": LATENT_DIM,
              "epochs": 2, "monitor_every_epochs": None, "checkpoint_every_steps": 5, "sample_every_epochs": 1}


def coloured_squares(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB images, each one square of its class's colour at a random place and size."""
    rng = np.random.default_rng(seed)
    images = np.full((count, size, size, 3), 20, np.uint8)
    labels = rng.integers(0, len(COLOURS), count)
    for image, label in zip(images, labels, strict=True):
        side = int(rng.integers(size // 4, size // 2 + 1))
        top, left = rng.integers(0, size - side + 1, 2)
        image[top:top + side, left:left + side] = COLOURS[label]
    return images, labels


def _prepared_squares(folder, size: int, count: int = 96):
    """Coloured squares through the real prepare stage (npz source); returns (data config, prepared folder)."""
    images, labels = coloured_squares(count, size)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "squares.npz", x=images, y=labels)
    params = shrunk_params(data={"source": "npz", "path": str(folder / "squares.npz"), "image_size": size,
                                 "channels": 3}, train=TINY_TRAIN)
    prepare.run(params.data, folder / "prepared")
    return params, folder / "prepared"


def _filters(model: keras.Model) -> list[int]:
    return [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
            and layer.kernel_size == (3, 3)]


@pytest.mark.parametrize("shape, classes", [((32, 32, 3), 0), ((32, 32, 3), 4), ((64, 64, 3), 0),
                                            ((64, 64, 3), 4), ((32, 32, 1), 0), ((32, 32, 1), 4)])
def test_networks_fit_the_image_shape_and_the_contract(shape, classes):
    keras.utils.set_random_seed(0)
    generator, discriminator = networks.build_pair("resnet", LATENT_DIM, shape, 8, classes)
    assert [t.name for t in generator.inputs] == (["latent", "label"] if classes else ["latent"])
    assert [t.name for t in discriminator.inputs] == (["images", "label"] if classes else ["images"])
    assert sampling.num_classes(generator) == classes and sampling.latent_dim(generator) == LATENT_DIM
    assert generator.output_shape == (None, *shape) and discriminator.output_shape == (None, 1)

    images = sampling.sample(generator, 6, seed=1)
    assert images.shape == (6, *shape) and np.abs(images).max() <= 1.0 and images.std() > 0
    logits = np.asarray(discriminator([images, np.arange(6) % classes] if classes else images))
    assert logits.shape == (6, 1) and np.isfinite(logits).all()

    # Widths: 8·8 at 4×4 halving per block down to 8; the discriminator mirrors them (plus its 4×4 block).
    blocks = {32: 3, 64: 4}[shape[0]]
    assert resnet.residual_blocks(shape) == blocks
    widths = resnet.generator_widths(blocks, 8)
    assert widths == [64, 32, 16, 8, 8][:blocks + 1]
    assert _filters(generator) == [w for w in widths[1:] for _ in (1, 2)] + [shape[2]]
    assert _filters(discriminator) == [w for w in widths[::-1] for _ in (1, 2)]
    # Class-conditional BatchNorm: a gain and a bias Embedding for each of the blocks' two BN layers.
    embeddings = [layer for layer in generator.layers if isinstance(layer, keras.layers.Embedding)]
    assert len(embeddings) == (4 * blocks if classes else 0)
    # In call order, as standing statistics need: each layer is measured after those before it.
    assert [layer.name for layer in standing.batchnorm_layers(generator)] == [
        f"up{block}_bn{i}" for block in range(1, blocks + 1) for i in (1, 2)] + ["out_bn"]
    # Tiny at base_filters 8: the 4×4 block's two 3×3 convs of 64 channels dominate D.
    assert 30_000 < generator.count_params() < 120_000
    assert 60_000 < discriminator.count_params() < 150_000


def test_spectral_norm_wraps_every_discriminator_conv_the_logit_and_the_class_embedding():
    _, discriminator = networks.build_pair("resnet", LATENT_DIM, (32, 32, 3), 8, 4, spectral_norm=True)
    wrapped = [layer.layer for layer in discriminator.layers
               if isinstance(layer, SpectralNorm)]
    convs = [layer for layer in discriminator.layers if isinstance(layer, keras.layers.Conv2D)]
    # 4 blocks' convs, 4 shortcuts (3 down, 1 widening), the logit and the projection's class embedding
    assert not convs and len(wrapped) == 2 * 4 + 4 + 1 + 1
    assert sum(isinstance(layer, keras.layers.Embedding) for layer in wrapped) == 1
    assert discriminator.output_shape == (None, 1)


def test_dropout_is_off_unless_asked():
    _, default = networks.build_pair("resnet", LATENT_DIM, (32, 32, 3), 8)
    _, asked = networks.build_pair("resnet", LATENT_DIM, (32, 32, 3), 8, dropout=0.2)
    count = [sum(isinstance(layer, keras.layers.Dropout) for layer in d.layers) for d in (default, asked)]
    assert count == [0, 4]


@pytest.mark.parametrize("size", [28, 48, 4])
def test_an_unsupported_size_is_a_one_line_config_error(size):
    with pytest.raises(GanopsError) as caught:
        parse_params({"data": {"image_size": size}, "train": {"arch": "resnet"}})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("params.yaml: train.arch: resnet needs data.image_size") and f"got {size}" in message
    with pytest.raises(GanopsError, match=f"train.arch: resnet needs data.image_size .* got {size}"):
        networks.build_pair("resnet", LATENT_DIM, (size, size, 3), 8)


def test_sides_of_4_times_a_power_of_2_are_accepted_and_images_must_be_square():
    for size in (8, 16, 32, 64, 128, 256, 512):
        assert parse_params({"data": {"image_size": size}, "train": {"arch": "resnet"}}).train.arch == "resnet"
    with pytest.raises(GanopsError, match=r"data.image_size: resnet needs square images, got 32×64"):
        networks.build_generator("resnet", LATENT_DIM, (32, 64, 3), 8)


def test_conditional_32px_train_stage_checkpoints_saves_and_serves(tmp_path, store):
    params, prepared = _prepared_squares(tmp_path / "data", 32)
    cfg = params.train.model_copy(update={"conditional": True, "spectral_norm": True, "r1_weight": 0.0})
    models, checkpoints = tmp_path / "models" / "gan", tmp_path / "models" / "checkpoints"
    result = train_lib.run(cfg, prepared, models, checkpoints, say=lambda line: None)

    train_count = artifacts.PreparedData(prepared).read_info().train_count
    assert result.steps == 2 * (train_count // 8) and not result.stopped_by_budget
    assert np.isfinite(result.history[["d_loss", "g_loss"]]).all().all()

    # The checkpoint restores into a freshly built GAN: the EMA generator comes back exactly.
    fresh = train_lib.build_gan(cfg, (32, 32, 3), num_classes=4)
    found = checkpoint.latest(checkpoints)
    assert found is not None and found.step == result.steps
    found.restore(fresh)
    for restored, trained in zip(fresh.ema_generator.weights, result.gan.ema_generator.weights, strict=True):
        np.testing.assert_array_equal(restored.numpy(), trained.numpy())

    # The saved product is the EMA generator (standing BN statistics aside), a plain functional model.
    saved = sampling.load_generator(artifacts.ModelFolder(models).generator_path)
    for loaded, ema in zip(saved.weights, result.gan.ema_generator.weights, strict=True):
        if "moving" not in ema.path:
            np.testing.assert_array_equal(loaded.numpy(), ema.numpy())
    assert sampling.num_classes(saved) == 4

    register_version(artifacts.ModelFolder(models).generator_path, metrics(2.0))
    model = serving.load("models:/gan-generator@champion")
    images = np.asarray(model.predict(pd.DataFrame([{"n": 2, "seed": 1, "label": 3}])))
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.float32
    assert np.abs(images).max() <= 1.0


def test_64px_trains_checkpoints_and_reloads(tmp_path):
    params, prepared = _prepared_squares(tmp_path / "data", 64, count=48)
    cfg = params.train.model_copy(update={"epochs": 1})
    split = artifacts.PreparedData(prepared).read_split("train")
    result = train_lib.train(cfg, split, checkpoint_dir=tmp_path / "checkpoints", say=lambda line: None)
    assert result.steps == len(split) // 8 and np.isfinite(result.history[["d_loss", "g_loss"]]).all().all()
    fresh = train_lib.build_gan(cfg, (64, 64, 3))
    checkpoint.latest(tmp_path / "checkpoints").restore(fresh)
    for restored, trained in zip(fresh.ema_generator.weights, result.gan.ema_generator.weights, strict=True):
        np.testing.assert_array_equal(restored.numpy(), trained.numpy())

    # What the stage saves, with fewer standing-statistics samples than the stage's 6 × 256 at 64 px.
    product = standing.with_standing_statistics(result.gan.ema_generator, seed=0, batches=2, batch_size=16)
    product.save(tmp_path / "generator.keras")
    images = sampling.sample(sampling.load_generator(tmp_path / "generator.keras"), 2, seed=0)
    assert images.shape == (2, 64, 64, 3) and np.abs(images).max() <= 1.0
