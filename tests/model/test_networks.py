import keras
import pytest

from ganops.errors import GanopsError
from ganops.models import networks


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
