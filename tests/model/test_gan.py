"""The GAN model on tiny real data: training mode inside train_step, EMA, conditional sampling, config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganops import artifacts, shards
from ganops.errors import GanopsError
from ganops.models import sampling
from ganops.models.gan import GAN
from ganops.models.spectral import SpectralNorm
from ganops.training import train as train_lib
from tests.helpers import shrunk_params

TINY = shrunk_params(train={"arch": "dcgan", "augment": [], "r1_weight": 0.0, "ema_decay": 0.9}).train


@pytest.fixture(scope="module")
def split(prepared_digits):
    return artifacts.read_split(prepared_digits / artifacts.PreparedData.SPLIT_FILES["train"])


def test_short_training_updates_generator_and_ema(split):
    result = train_lib.train(TINY, split)
    assert list(result.history.columns) == ["epoch", "step", "d_loss", "g_loss", "seconds"]
    assert len(result.history) == 2 and np.isfinite(result.history[["d_loss", "g_loss"]]).all().all()
    assert result.steps == 2 * (len(split) // 32) == int(result.gan.g_optimizer.iterations.numpy())
    images = np.asarray(result.gan.ema_generator(np.zeros((4, 16), np.float32)))
    assert images.shape == (4, 8, 8, 1) and np.abs(images).max() <= 1.0
    live = result.gan.generator.get_weights()[0]
    ema = result.gan.ema_generator.get_weights()[0]
    assert not np.allclose(live, ema)  # the EMA lags the live weights


def test_time_budget_stops_training_early(split):
    result = train_lib.train(TINY.model_copy(update={"epochs": 1000, "max_seconds": 2.0}), split)
    assert result.stopped_by_budget
    assert len(result.history) < 1000


def _layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def test_train_step_runs_dropout_batchnorm_and_spectral_norm_in_training_mode(split):
    cfg = TINY.model_copy(update={"spectral_norm": True})
    gan = train_lib.build_gan(cfg, split.images.shape[1:])
    batch = tf.constant(split.images[:32])

    bn = _layers(gan.generator, keras.layers.BatchNormalization)[0]
    sn = _layers(gan.discriminator, SpectralNorm)[0]
    dropouts = _layers(gan.discriminator, keras.layers.Dropout)
    assert dropouts and sn and bn
    moving_mean, vector_u = bn.moving_mean.numpy().copy(), sn.vector_u.numpy().copy()
    dropout_seeds = [d.seed_generator.state.numpy().copy() for d in dropouts]

    gan.train_steps(iter(tf.data.Dataset.from_tensors(batch).repeat()), 1)

    assert int(gan.steps_done.numpy()) == 1
    assert not np.allclose(bn.moving_mean.numpy(), moving_mean)  # BN used batch statistics
    assert not np.allclose(sn.vector_u.numpy(), vector_u)  # SN ran its power iteration (once: test_spectral.py)
    # Each Dropout drew fresh masks once per discriminator call: real and fake batches → two draws.
    for dropout, before in zip(dropouts, dropout_seeds, strict=False):
        assert dropout.seed_generator.state.numpy()[1] - before[1] == 2
    # …and masks make two training-mode calls on the same input differ, unlike inference calls.
    d = gan.discriminator
    assert not np.allclose(d(batch, training=True), d(batch, training=True))
    np.testing.assert_allclose(d(batch, training=False), d(batch, training=False))


def test_spectral_norm_keeps_the_discriminator_kernels_near_unit_norm(split):
    # The kernel variables stay raw W (SpectralNorm computes with W/σ without assigning it): measure W/σ.
    result = train_lib.train(TINY.model_copy(update={"spectral_norm": True, "epochs": 3}), split)
    for layer in _layers(result.gan.discriminator, SpectralNorm):
        kernel = np.asarray(layer.normalized_weight()).reshape(-1, layer.weight.shape[-1])
        assert np.linalg.svd(kernel, compute_uv=False)[0] == pytest.approx(1.0, abs=0.15)


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_conditional_gan_samples_per_class(split, arch, tmp_path):
    cfg = TINY.model_copy(update={"arch": arch, "conditional": True, "epochs": 1})
    result = train_lib.train(cfg, split)
    generator = result.gan.ema_generator
    assert [t.name for t in generator.inputs] == ["latent", "label"]
    assert [t.name for t in result.gan.discriminator.inputs] == ["images", "label"]
    generator.save(tmp_path / "g.keras")
    loaded = sampling.load_generator(tmp_path / "g.keras")  # a plain functional model: no custom objects
    assert sampling.num_classes(loaded) == 10 and sampling.latent_dim(loaded) == 16
    latent = sampling.latent_batch(loaded, 4, seed=0)
    per_class = [sampling.generate(loaded, latent, np.full(4, c)) for c in (0, 7)]
    assert per_class[0].shape == (4, 8, 8, 1) and not np.allclose(per_class[0], per_class[1])
    assert sampling.sample(loaded, 20, seed=1).shape == (20, 8, 8, 1)  # balanced labels by default
    # As uint8 pixels (what evaluate measures): the same images, rounded as a saved PNG rounds them.
    pixels = sampling.sample(loaded, 20, seed=1, pixels=True)
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, shards.from_signed(sampling.sample(loaded, 20, seed=1)))
    with pytest.raises(GanopsError, match=r"labels must lie in 0..9"):
        sampling.generate(loaded, latent, np.full(4, 10))
    with pytest.raises(GanopsError, match="conditional"):
        sampling.generate(loaded, latent)


def test_conditional_needs_labels(split):
    unlabelled = artifacts.Split(images=split.images, labels=None)
    with pytest.raises(GanopsError, match=r"train.conditional"):
        train_lib.train(TINY.model_copy(update={"conditional": True}), unlabelled)


def test_unconditional_generator_refuses_labels(split):
    generator = train_lib.build_gan(TINY, split.images.shape[1:]).ema_generator
    assert sampling.num_classes(generator) == 0
    with pytest.raises(GanopsError, match="unconditional"):
        sampling.generate(generator, np.zeros((2, 16), np.float32), np.zeros(2))


def test_every_loss_trains(split):
    for update in ({"loss": "wgan-gp"}, {"loss": "hinge", "r1_weight": 1.0}, {"arch": "mlp", "r1_weight": 1.0}):
        result = train_lib.train(TINY.model_copy(update={**update, "epochs": 1}), split)
        assert np.isfinite(result.history[["d_loss", "g_loss"]]).all().all()


def test_augmented_training_checkpoints_the_augmentation_state(split):
    cfg = TINY.model_copy(update={"augment": ["color", "translation", "cutout"], "epochs": 1})
    gan = train_lib.train(cfg, split).gan
    assert int(gan.augment_seeds.state.numpy()[1]) == 2 * int(gan.steps_done.numpy())  # real + fake per step


def test_get_config_round_trip(split):
    gan = train_lib.build_gan(TINY.model_copy(update={"conditional": True, "augment": ["cutout"]}),
                              split.images.shape[1:], num_classes=10)
    clone = GAN.from_config(gan.get_config())
    assert clone.latent_dim == 16 and clone.num_classes == 10 and clone.augment_policy == ("cutout",)
    assert clone.generator.count_params() == gan.generator.count_params()
    assert clone.discriminator.count_params() == gan.discriminator.count_params()


def test_non_finite_loss_stops_with_the_step(split, tmp_path):
    # Adam steps of ~1e20 overflow the weights on the first update: the second step's loss is not finite.
    cfg = TINY.model_copy(update={"g_learning_rate": 1e20, "d_learning_rate": 1e20, "checkpoint_every_steps": 1})
    with pytest.raises(GanopsError) as caught:
        train_lib.train(cfg, split, checkpoint_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "non-finite (NaN/inf) at step 2" in message and "last good checkpoint is step 1" in message
    from ganops.training import checkpoint

    kept = checkpoint.latest(tmp_path)
    assert kept.step == 1
    with np.load(kept.folder / checkpoint.STATE_FILE) as state:
        assert all(np.isfinite(state[key]).all() for key in state.files if state[key].dtype.kind == "f")


def test_wgan_gp_builds_with_its_own_defaults_unless_set(split):
    wgan = shrunk_params(train={"arch": "dcgan", "loss": "wgan-gp"}).train.for_data(len(split), split.images.shape[1:])
    gan = train_lib.build_gan(wgan, split.images.shape[1:])
    assert not _layers(gan.discriminator, keras.layers.Dropout) and gan.r1_weight == 0.0  # dcgan's own is 0.3
    assert float(gan.d_optimizer.learning_rate) == pytest.approx(4e-4)
    assert gan.d_optimizer.beta_1 == gan.g_optimizer.beta_1 == 0.0
    explicit = wgan.model_copy(update={"d_dropout": 0.3, "r1_weight": 1.0, "beta_1": 0.5, "d_learning_rate": 1e-4})
    gan = train_lib.build_gan(explicit, split.images.shape[1:])
    assert _layers(gan.discriminator, keras.layers.Dropout) and gan.r1_weight == 1.0
    assert float(gan.d_optimizer.learning_rate) == pytest.approx(1e-4) and gan.d_optimizer.beta_1 == 0.5


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_minibatch_std_trains_in_either_precision_and_round_trips(split, precision):
    cfg = TINY.model_copy(update={"minibatch_std": True, "precision": precision, "conditional": True,
                                  "epochs": 1})
    result = train_lib.train(cfg, split, num_classes=10)
    assert np.isfinite(result.history[["d_loss", "g_loss"]]).all().all()
    discriminator = result.gan.discriminator
    assert "minibatch_std" in [layer.name for layer in discriminator.layers]
    clone = GAN.from_config(result.gan.get_config())
    assert "minibatch_std" in [layer.name for layer in clone.discriminator.layers]
