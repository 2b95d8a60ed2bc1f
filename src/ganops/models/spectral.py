"""Spectral normalisation (Miyato et al. 2018) that differentiates through σ, as a Keras wrapper layer.

The wrapped layer's weight W stays the trained variable. Every call computes with W/σ(W), where
σ(W) = vᵀ W u (W reshaped to a matrix of `out` columns, u of length out, v of length in) from power-iteration
vectors held constant: the gradient flows through σ as in the paper (∂σ/∂W = v uᵀ). `keras.layers.
SpectralNormalization` instead assigns W/σ into the kernel, so no gradient reaches σ, and it iterates on every
training-mode call.

Here u (a non-trainable float32 variable, so checkpoints carry it) moves by one power iteration per training
step: `GAN.train_step` calls `power_iteration()` once before the discriminator's 2–4 calls of the step, and all
of them see the same σ. A call never assigns a variable, so `training` makes no difference and inference
computes with the same W/σ as the last training step.

Wraps Dense, convolutions (channels_last) and Embedding (the projection discriminator's class embedding, its
(classes, features) table being W). Under a mixed precision policy σ is computed in float32 and W/σ cast to the
compute dtype. Only Keras' public API is used.
"""

from __future__ import annotations

import keras
from keras import layers, ops

CONVOLUTIONS = (layers.Conv1D, layers.Conv2D, layers.Conv3D)  # they share `convolution_op`
WRAPPABLE = (layers.Dense, layers.Embedding, *CONVOLUTIONS)


def _float32(variable: keras.Variable):
    """The variable's value in float32. Inside a mixed-precision layer's call Keras hands out float16 values:
    cast back, σ loses at most float16's rounding of W (a relative 5e-4), below what the float16 W/σ keeps."""
    return ops.cast(variable.value, "float32")


def _unit(x):
    return x / ops.sqrt(ops.sum(ops.square(x)) + 1e-12)


@keras.saving.register_keras_serializable(package="ganops")
class SpectralNorm(keras.layers.Wrapper):
    def __init__(self, layer: keras.layers.Layer, **kwargs):
        if not isinstance(layer, WRAPPABLE):
            raise TypeError(f"SpectralNorm wraps Dense, Conv and Embedding layers, not {type(layer).__name__}")
        if isinstance(layer, CONVOLUTIONS) and layer.data_format != "channels_last":
            raise ValueError("SpectralNorm wraps channels_last convolutions only")
        super().__init__(layer, **kwargs)

    @property
    def weight(self) -> keras.Variable:
        """The normalised variable: a Dense or conv kernel, or an embedding table."""
        return self.layer.embeddings if isinstance(self.layer, layers.Embedding) else self.layer.kernel

    def build(self, input_shape=None):
        super().build(input_shape)
        self.vector_u = self.add_weight(shape=(1, self.weight.shape[-1]), trainable=False, name="vector_u",
                                        initializer=keras.initializers.RandomNormal(stddev=1.0), dtype="float32")
        self.built = True

    def _matrix(self):
        return ops.reshape(_float32(self.weight), (-1, self.weight.shape[-1]))

    def power_iteration(self) -> None:
        """One step of the power iteration on the current W: u ← unit(Wᵀ unit(W u))."""
        matrix = self._matrix()
        vector_v = _unit(ops.matmul(_float32(self.vector_u), ops.transpose(matrix)))
        self.vector_u.assign(ops.stop_gradient(_unit(ops.matmul(vector_v, matrix))))

    def sigma(self):
        """σ(W) = vᵀ W u with u the stored vector and v = unit(W u), both constants to the gradient."""
        matrix = self._matrix()
        vector_u = ops.stop_gradient(_unit(_float32(self.vector_u)))  # unit already, but for its initial value
        vector_v = ops.stop_gradient(_unit(ops.matmul(vector_u, ops.transpose(matrix))))
        return ops.sum(ops.matmul(vector_v, matrix) * vector_u)

    def normalized_weight(self):
        """W/σ(W) in the layer's compute dtype (differentiable through σ)."""
        return ops.cast(_float32(self.weight) / self.sigma(), self.compute_dtype)

    def call(self, inputs):
        layer, weight = self.layer, self.normalized_weight()
        if isinstance(layer, layers.Embedding):
            return ops.take(weight, ops.cast(inputs, "int32"), axis=0)
        inputs = ops.cast(inputs, self.compute_dtype)
        outputs = ops.matmul(inputs, weight) if isinstance(layer, layers.Dense) else layer.convolution_op(
            inputs, weight)
        if layer.use_bias:
            outputs = outputs + ops.cast(layer.bias.value, self.compute_dtype)
        return layer.activation(outputs) if layer.activation is not None else outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def spectral_layers(model: keras.Model) -> list[SpectralNorm]:
    """Every SpectralNorm in `model`, nested models included, in layer order (the networks are functional
    models: every layer is in some model's `layers`)."""
    found: list[SpectralNorm] = []
    for layer in model.layers:
        if isinstance(layer, SpectralNorm):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += spectral_layers(layer)
    return found
