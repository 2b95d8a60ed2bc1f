import keras
import numpy as np
import pytest

from ganops.errors import GanopsError
from ganops.models import networks, parts


def _stack(model):
    return [(type(layer).__name__, getattr(layer, "filters", getattr(layer, "units", None)),
             getattr(layer, "strides", None)) for layer in model.layers[1:]]


def test_dcgan_at_28_is_the_tensorflow_tutorial_stack():
    generator = networks.build_dcgan_generator(100, (28, 28, 1), base_filters=64)
    discriminator = networks.build_dcgan_discriminator((28, 28, 1), base_filters=64,
                                                       dropout=networks.ARCH_DROPOUT["dcgan"])
    assert _stack(generator) == [
        ("Dense", 7 * 7 * 256, None), ("BatchNormalization", None, None), ("LeakyReLU", None, None),
        ("Reshape", None, None),
        ("Conv2DTranspose", 128, (1, 1)), ("BatchNormalization", None, None), ("LeakyReLU", None, None),
        ("Conv2DTranspose", 64, (2, 2)), ("BatchNormalization", None, None), ("LeakyReLU", None, None),
        ("Conv2DTranspose", 1, (2, 2)),
    ]
    assert generator.output_shape == (None, 28, 28, 1)
    # The tutorial's parameter counts (model.summary() in the TensorFlow DCGAN tutorial).
    assert generator.count_params() == 2_330_944
    assert discriminator.count_params() == 212_865
    assert [type(layer).__name__ for layer in discriminator.layers[1:]] == [
        "Conv2D", "LeakyReLU", "Dropout", "Conv2D", "LeakyReLU", "Dropout", "Flatten", "Dense"]


@pytest.mark.parametrize("size, channels", [(8, 1), (16, 3), (32, 1), (64, 3)])
def test_dcgan_scales_to_image_size(size, channels):
    generator, discriminator = networks.build_pair("dcgan", 16, (size, size, channels), 8)
    assert generator.output_shape == (None, size, size, channels)
    assert discriminator.output_shape == (None, 1)


def test_dcgan_rejects_unsupported_size():
    with pytest.raises(GanopsError, match=r"train.arch: dcgan needs data.image_size .*, got 30$"):
        networks.build_pair("dcgan", 16, (30, 30, 1), 8)


def test_mlp_is_the_classic_keras_pair():
    generator, discriminator = networks.build_pair("mlp", 100, (28, 28, 1), 64)
    dense_units = [layer.units for layer in generator.layers if isinstance(layer, keras.layers.Dense)]
    assert dense_units == [256, 128, 784]
    dense_units = [layer.units for layer in discriminator.layers if isinstance(layer, keras.layers.Dense)]
    assert dense_units == [128, 256, 1]


def test_minibatch_std_appends_the_batch_spread_and_sees_collapse():
    layer = parts.MinibatchStd()
    varied = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(layer(varied))
    assert out.shape == (8, 4, 4, 4)
    np.testing.assert_array_equal(out[..., :3], varied)
    expected = np.mean(np.sqrt(np.var(varied, axis=0) + 1e-8))
    np.testing.assert_allclose(out[..., 3], expected, rtol=1e-5)
    # A collapsed batch (every image the same) has no spread: the feature D uses to spot it.
    collapsed = np.repeat(varied[:1], 8, axis=0)
    assert np.allclose(keras.ops.convert_to_numpy(layer(collapsed))[..., 3], 0.0, atol=1e-3)
    # On flat features (the mlp's head) it appends one column.
    assert keras.ops.convert_to_numpy(layer(varied.reshape(8, -1))).shape == (8, 49)


@pytest.mark.parametrize("arch, size, channels", [("dcgan", 32, 3), ("mlp", 8, 1), ("resnet", 32, 3)])
def test_minibatch_std_sits_before_the_discriminators_head(arch, size, channels):
    _, plain = networks.build_pair(arch, 16, (size, size, channels), 8)
    _, with_std = networks.build_pair(arch, 16, (size, size, channels), 8, batch_std=True)
    assert "minibatch_std" not in [layer.name for layer in plain.layers]
    assert "minibatch_std" in [layer.name for layer in with_std.layers]
    images = np.random.default_rng(1).uniform(-1, 1, (4, size, size, channels)).astype("float32")
    assert keras.ops.convert_to_numpy(with_std(images)).shape == (4, 1)
    # Its output depends on the rest of the batch: the first image's logit changes with its batch-mates.
    other = images.copy()
    other[1:] = 0.0
    assert not np.allclose(keras.ops.convert_to_numpy(with_std(images))[0],
                           keras.ops.convert_to_numpy(with_std(other))[0])
