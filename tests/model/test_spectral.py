"""Spectral normalisation (`models.spectral.SpectralNorm`) against W/σ written out by hand: the values, the
gradient through σ, one power iteration per training step, and saving (Keras file and checkpoint)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganops import artifacts
from ganops.models import networks
from ganops.models.spectral import SpectralNorm, spectral_layers
from ganops.training import checkpoint, devices
from ganops.training import train as train_lib
from tests.helpers import shrunk_params

TINY = shrunk_params(train={"arch": "dcgan", "augment": [], "r1_weight": 0.0,
                             "ema_decay": 0.9, "spectral_norm": True}).train


def _unit(x):
    return x / np.linalg.norm(x)


def _sigma(layer) -> float:
    """σ = vᵀ W u from the stored u, in numpy."""
    matrix = layer.weight.numpy().reshape(-1, layer.weight.shape[-1]).astype(np.float64)
    u = _unit(layer.vector_u.numpy().astype(np.float64).ravel())
    v = _unit(matrix @ u)
    return float(v @ matrix @ u)


def _built(layer, shape, dtype="float32"):
    wrapped = SpectralNorm(layer)
    wrapped(keras.Input(shape, dtype=dtype))
    return wrapped


def test_dense_conv_and_embedding_compute_with_w_over_sigma():
    rng = np.random.default_rng(0)
    dense = _built(keras.layers.Dense(3, bias_initializer="ones"), (5,))
    x = rng.standard_normal((4, 5)).astype(np.float32)
    expected = x @ (dense.layer.kernel.numpy() / _sigma(dense)) + 1.0
    np.testing.assert_allclose(dense(x), expected, rtol=1e-5, atol=1e-6)

    conv = _built(keras.layers.Conv2D(4, 3, padding="same"), (6, 6, 2))
    images = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    plain = keras.layers.Conv2D(4, 3, padding="same")
    plain.build((None, 6, 6, 2))
    plain.set_weights([conv.layer.kernel.numpy() / _sigma(conv), conv.layer.bias.numpy()])
    np.testing.assert_allclose(conv(images), plain(images), rtol=1e-5, atol=1e-6)

    embedding = _built(keras.layers.Embedding(10, 6), (), dtype="int32")
    labels = np.array([0, 3, 9], np.int32)
    table = embedding.layer.embeddings.numpy() / _sigma(embedding)
    np.testing.assert_allclose(embedding(labels), table[labels], rtol=1e-5)
    # A call, in training mode or not, assigns nothing: the kernel stays the raw W.
    kernel, u = dense.layer.kernel.numpy().copy(), dense.vector_u.numpy().copy()
    dense(x, training=True)
    np.testing.assert_array_equal(dense.layer.kernel.numpy(), kernel)
    np.testing.assert_array_equal(dense.vector_u.numpy(), u)


def test_the_gradient_flows_through_sigma_and_matches_finite_differences():
    dense = _built(keras.layers.Dense(3, use_bias=False), (5,))
    x = tf.constant(np.random.default_rng(1).standard_normal((8, 5)), tf.float32)
    weights = tf.constant(np.random.default_rng(2).standard_normal((8, 3)), tf.float32)

    def loss(kernel):
        dense.layer.kernel.assign(kernel)
        return float(tf.reduce_sum(dense(x) * weights))

    with tf.GradientTape() as tape:
        value = tf.reduce_sum(dense(x) * weights)
    grad = tape.gradient(value, dense.layer.kernel).numpy()
    kernel = dense.layer.kernel.numpy().astype(np.float64)
    # Held constant, σ would leave only the first term: the second is ∂σ/∂W = v uᵀ at work.
    u = _unit(dense.vector_u.numpy().astype(np.float64).ravel())
    v = _unit(kernel @ u)
    sigma = float(v @ kernel @ u)
    outer = x.numpy().T @ weights.numpy()  # ∂L/∂(W/σ)
    explicit = outer / sigma - np.sum(outer * kernel) / sigma**2 * np.outer(v, u)
    np.testing.assert_allclose(grad, explicit, rtol=1e-4, atol=1e-5)
    assert np.abs(explicit - outer / sigma).max() > 1e-2
    # Finite differences of the layer as a function of W (u fixed, v = unit(W u) moving with W).
    direction = np.random.default_rng(3).standard_normal(kernel.shape)
    eps = 1e-3
    numeric = (loss((kernel + eps * direction).astype(np.float32))
               - loss((kernel - eps * direction).astype(np.float32))) / (2 * eps)
    assert numeric == pytest.approx(float(np.sum(grad * direction)), rel=2e-2)


def test_power_iterations_converge_to_the_largest_singular_value():
    conv = _built(keras.layers.Conv2D(8, 3), (5, 5, 4))
    rng = np.random.default_rng(5)
    left, _ = np.linalg.qr(rng.standard_normal((36, 8)))
    right, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    singular = np.array([3.0, 1.5, 1.0, 0.8, 0.5, 0.3, 0.2, 0.1])
    conv.layer.kernel.assign((left * singular @ right.T).reshape(3, 3, 4, 8).astype(np.float32))
    estimates = []
    for _ in range(30):
        conv.power_iteration()
        estimates.append(float(conv.sigma()))
    assert all(estimate <= 3.0 + 1e-4 for estimate in estimates)  # vᵀWu never overestimates σ
    assert estimates[-1] == pytest.approx(3.0, rel=1e-4)


@pytest.fixture(scope="module")
def split(prepared_digits):
    return artifacts.read_split(prepared_digits / artifacts.PreparedData.SPLIT_FILES["train"])


def test_one_power_iteration_per_training_step(split):
    # R1 on every step: the discriminator runs on reals, fakes and the R1 gradient, one iteration in all.
    cfg = TINY.model_copy(update={"r1_weight": 1.0, "r1_every": 1})
    gan = train_lib.build_gan(cfg, split.images.shape[1:])
    layers = spectral_layers(gan.discriminator)
    assert len(layers) == 3  # two convs and the logit
    before = [(layer.weight.numpy().reshape(-1, layer.weight.shape[-1]), layer.vector_u.numpy().ravel())
              for layer in layers]
    gan.train_steps(iter(tf.data.Dataset.from_tensors(tf.constant(split.images[:32])).repeat()), 1)
    for layer, (matrix, u) in zip(layers, before, strict=True):
        once = _unit(_unit(matrix @ u) @ matrix)
        np.testing.assert_allclose(layer.vector_u.numpy().ravel(), once, rtol=1e-4, atol=1e-5)


def test_spectral_discriminator_round_trips_through_keras_files_and_checkpoints(split, tmp_path):
    _, discriminator = networks.build_pair("dcgan", 16, (8, 8, 1), 8, 10, spectral_norm=True)
    # the projection's class embedding is normalised too
    assert any(isinstance(layer.layer, keras.layers.Embedding) for layer in spectral_layers(discriminator))
    for layer in spectral_layers(discriminator):
        layer.power_iteration()
    inputs = [split.images[:4], np.arange(4, dtype=np.int32)]
    discriminator.save(tmp_path / "d.keras")
    loaded = keras.models.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(loaded(inputs), discriminator(inputs), rtol=1e-5)
    for ours, theirs in zip(spectral_layers(discriminator), spectral_layers(loaded), strict=True):
        np.testing.assert_array_equal(ours.vector_u.numpy(), theirs.vector_u.numpy())

    cfg = TINY.model_copy(update={"conditional": True, "epochs": 1, "checkpoint_every_steps": 3})
    trained = train_lib.train(cfg, split, checkpoint_dir=tmp_path / "checkpoints").gan
    fresh = train_lib.build_gan(cfg, split.images.shape[1:], 10)
    checkpoint.latest(tmp_path / "checkpoints").restore(fresh)
    for ours, theirs in zip(spectral_layers(trained.discriminator), spectral_layers(fresh.discriminator),
                            strict=True):
        np.testing.assert_array_equal(ours.vector_u.numpy(), theirs.vector_u.numpy())
    np.testing.assert_allclose(fresh.discriminator(inputs), trained.discriminator(inputs), rtol=1e-5)


def test_mixed_precision_computes_sigma_in_float32():
    with devices.dtype_policy("mixed_float16"):
        dense = _built(keras.layers.Dense(3), (5,))
    x = np.random.default_rng(4).standard_normal((2, 5)).astype(np.float32)
    assert dense(x).dtype == tf.float16 and dense.sigma().dtype == tf.float32
    assert dense.vector_u.dtype == "float32"
    expected = x @ (dense.layer.kernel.numpy() / _sigma(dense)) + dense.layer.bias.numpy()
    np.testing.assert_allclose(np.asarray(dense(x), np.float32), expected, rtol=2e-2, atol=2e-2)
