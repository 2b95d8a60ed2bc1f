"""The GAN as one `keras.Model`: `compile` takes two optimizers, `train_step` does one discriminator and
one generator update, and a generator EMA is kept by hand (Keras' `use_ema` only knows one optimizer).

Sub-models are always called with `training=True` inside `train_step`: without it Dropout and
BatchNormalization silently run in inference mode.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ganops.models import losses


@keras.saving.register_keras_serializable(package="ganops")
class GAN(keras.Model):
    def __init__(self, generator: keras.Model, discriminator: keras.Model, latent_dim: int,
                 ema_decay: float = 0.999, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.ema_decay = ema_decay
        self.seed = seed
        # The EMA generator is the product: evaluation, registration and serving use it.
        self.ema_generator = keras.models.clone_model(generator)
        self.ema_generator.set_weights(generator.get_weights())
        self.ema_generator.trainable = False
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    def compile(self, g_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer,
                loss: str = "nonsaturating", **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.loss_name = loss
        self.d_loss_fn, self.g_loss_fn = losses.LOSSES[loss]

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def call(self, latent, training=False):
        return self.ema_generator(latent, training=training)

    def sample_latent(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def train_step(self, real_images):
        batch_size = tf.shape(real_images)[0]

        latent = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fake_images = self.generator(latent, training=True)
            real_logits = self.discriminator(real_images, training=True)
            fake_logits = self.discriminator(fake_images, training=True)
            d_loss = self.d_loss_fn(real_logits, fake_logits)
        d_grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(d_grads, self.discriminator.trainable_variables))

        latent = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fake_images = self.generator(latent, training=True)
            fake_logits = self.discriminator(fake_images, training=True)
            g_loss = self.g_loss_fn(fake_logits)
        g_grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(g_grads, self.generator.trainable_variables))

        self._update_ema()
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {m.name: m.result() for m in self.metrics}

    def _update_ema(self):
        # All weights, BatchNorm moving statistics included, so the EMA generator is self-consistent.
        for ema_var, var in zip(self.ema_generator.weights, self.generator.weights):
            ema_var.assign(self.ema_decay * ema_var + (1.0 - self.ema_decay) * var)

    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "latent_dim": self.latent_dim,
            "ema_decay": self.ema_decay,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)
