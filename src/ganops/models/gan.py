"""The GAN as one `keras.Model`: `compile` takes two optimizers and the loss, `train_step` updates the
discriminator and the generator once, a generator EMA is kept by hand (Keras' `use_ema` only knows the one
optimizer given to `compile`), and `metrics` exposes the loss trackers.

One step (simultaneous updates, as in the TensorFlow DCGAN tutorial and TTUR): one generator forward pass
feeds both losses, so a step costs one G forward/backward and one D forward per image set, not two.
The two learning rates (TTUR, Heusel et al. 2017) take the role of WGAN's several critic steps.

Sub-models are always called with `training=True` inside `train_step`: without it Dropout drops nothing and
BatchNormalization uses inference statistics. Spectral normalisation (spectral.py) moves its power iteration once
per step here, before D's calls, so every call of the step sees the same σ.

R1 is lazy (StyleGAN2): on every `r1_every`-th step, with γ scaled by the interval, and its gradient is taken
from the same D pass over the reals that the D loss uses (no second pass); other steps skip it entirely. The
choice is a `tf.cond` on `steps_done` inside the compiled step, so the graph is built once.

Randomness comes from two `SeedGenerator`s held by the model (latents/penalties and augmentation), so their
state is checkpointed with the weights. Under a `tf.distribute` strategy each replica folds its replica id
into the seed, so replicas draw different latents and augmentations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from ganops.models import augment, losses
from ganops.models.spectral import spectral_layers


def _replica_seed(seed_generator: keras.random.SeedGenerator):
    seed = tf.cast(seed_generator.next(), tf.int64)
    context = tf.distribute.get_replica_context()
    replica = 0 if context is None else context.replica_id_in_sync_group
    # Streams advance the second element by one per draw: an offset of 2³² keeps replicas' streams apart.
    return seed + tf.stack([tf.constant(0, tf.int64), tf.cast(replica, tf.int64) * (1 << 32)])


@keras.saving.register_keras_serializable(package="ganops")
class GAN(keras.Model):
    # No tunable defaults here (nor in `compile`): each has one, in `config.TrainConfig`.
    def __init__(self, generator: keras.Model, discriminator: keras.Model, latent_dim: int,
                 num_classes: int = 0, *, ema_decay: float, augment_policy, seed: int,
                 ema_generator: keras.Model | None = None, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.ema_decay = ema_decay
        self.augment_policy = tuple(augment_policy)
        self.seed = seed
        # The EMA generator is the product: evaluation, registration and serving use it. Under mixed
        # precision the caller passes a float32 twin so the saved model computes in float32 everywhere.
        if ema_generator is None:
            ema_generator = keras.models.clone_model(generator)
        ema_generator.set_weights(generator.get_weights())
        ema_generator.trainable = False
        self.ema_generator = ema_generator
        self.latent_seeds = keras.random.SeedGenerator(seed, name="latent_seeds")
        self.augment_seeds = keras.random.SeedGenerator(seed + 1, name="augment_seeds")
        # Counted here rather than read from an optimizer: a LossScaleOptimizer skips overflowing steps.
        self.steps_done = keras.Variable(0, dtype="int64", trainable=False, name="steps_done",
                                         aggregation="only_first_replica")
        # -1 while all losses are finite, else the first step whose loss was NaN/inf.
        self.nonfinite_step = keras.Variable(-1, dtype="int64", trainable=False, name="nonfinite_step",
                                             aggregation="only_first_replica")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self._multi_step_function: Callable[[Any, Any], Any] | None = None  # a tf.function, built on first use

    def compile(self, g_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer, *,
                loss: str, gp_weight: float, r1_weight: float, r1_every: int, **kwargs):
        super().compile(**kwargs)
        if loss not in losses.LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose from {sorted(losses.LOSSES)}")
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.loss_name = loss
        self.gp_weight = gp_weight
        self.r1_weight = r1_weight
        self.r1_every = r1_every
        self.d_loss_fn, self.g_loss_fn = losses.LOSSES[loss]
        self._multi_step_function = None

    def build_optimizers(self):
        """Create the optimizers' slot variables now. Needed before restoring a checkpoint: loading into
        unbuilt optimizers would find nothing to load into."""
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def call(self, inputs, training=False):
        return self.ema_generator(inputs, training=training)

    # ---- one training step -------------------------------------------------------------------------
    def _unpack(self, data):
        if isinstance(data, tuple | list):
            images, labels = data[0], (data[1] if len(data) > 1 else None)
        else:
            images, labels = data, None
        if self.num_classes and labels is None:
            raise ValueError("a conditional GAN trains on (images, labels) batches")
        return images, (tf.cast(labels, tf.int32) if self.num_classes else None)

    def _with_labels(self, tensor, labels):
        return [tensor, labels] if self.num_classes else tensor

    def _augment(self, images):
        if not self.augment_policy:
            return images
        return augment.diff_augment(images, self.augment_policy, _replica_seed(self.augment_seeds))

    def loss_scale(self):
        """The D optimizer's loss scale (1 without a LossScaleOptimizer): penalties' inner gradients use it too."""
        return tf.cast(self.d_optimizer.scale_loss(1.0), tf.float32)

    def penalties_of(self, critic, real_tape, real_sum, real_seen, fake_seen):
        """γ/2·R1 (lazy) plus λ·GP for wgan-gp. `real_tape` watched `real_seen` while it computed `real_sum`
        (`losses.scaled_logit_sum` of the D loss's real logits): R1's gradient comes from that pass."""
        total = tf.constant(0.0)
        if self.loss_name == "wgan-gp":
            alpha = losses.interpolation_weights(tf.shape(real_seen)[0], _replica_seed(self.latent_seeds))
            total += self.gp_weight * losses.gradient_penalty(
                critic, real_seen, tf.stop_gradient(fake_seen), alpha, loss_scale=self.loss_scale())
        if self.r1_weight:
            def lazy_r1():
                norms = losses.squared_input_gradient_norm(real_tape, real_sum, real_seen, self.loss_scale())
                return 0.5 * self.r1_weight * self.r1_every * tf.reduce_mean(norms)

            r1_step = tf.equal(tf.math.floormod(tf.convert_to_tensor(self.steps_done), self.r1_every), 0)
            total += tf.cond(r1_step, lazy_r1, lambda: tf.constant(0.0))
        return total

    def train_step(self, data):
        real_images, labels = self._unpack(data)
        batch = tf.shape(real_images)[0]
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        latent = tf.random.stateless_normal((batch, self.latent_dim), seed=_replica_seed(self.latent_seeds))
        for layer in spectral_layers(self.discriminator):
            layer.power_iteration()
        # Fakes carry the real batch's labels, so the generator sees the data's class frequencies.
        def critic(images):
            return self.discriminator(self._with_labels(images, labels), training=True)

        with tf.GradientTape(persistent=True) as tape:
            fake_images = self.generator(self._with_labels(latent, labels), training=True)
            real_seen = tf.cast(self._augment(real_images), tf.float32)
            fake_seen = self._augment(fake_images)
            with tf.GradientTape() as real_tape:
                real_tape.watch(real_seen)
                real_logits = critic(real_seen)
                real_sum = losses.scaled_logit_sum(real_logits, self.loss_scale())
            fake_logits = critic(fake_seen)
            d_loss = self.d_loss_fn(real_logits, fake_logits)
            g_loss = self.g_loss_fn(fake_logits)
            penalties = self.penalties_of(critic, real_tape, real_sum, real_seen, fake_seen)
            d_total = d_loss + penalties
            # Gradients are summed over replicas, so each replica's loss counts 1/replicas.
            d_scaled = self.d_optimizer.scale_loss(d_total / replicas)
            g_scaled = self.g_optimizer.scale_loss(g_loss / replicas)
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables
        d_grads = tape.gradient(d_scaled, d_vars)
        g_grads = tape.gradient(g_scaled, g_vars)
        del tape
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars, strict=True))
        self.g_optimizer.apply_gradients(zip(g_grads, g_vars, strict=True))

        self.steps_done.assign_add(1)
        self._update_ema()
        self._record(d_loss, penalties, g_loss)
        return {m.name: m.result() for m in self.metrics}

    def _record(self, d_loss, penalties, g_loss):
        d_total = d_loss + penalties
        finite = tf.math.is_finite(d_loss) & tf.math.is_finite(g_loss)
        if isinstance(self.d_optimizer, keras.optimizers.LossScaleOptimizer):
            # An overflowing loss-scaled penalty is the loss scale's business (the step is skipped, the
            # scale lowered): it neither stops training nor enters the mean.
            d_total = tf.where(tf.math.is_finite(penalties), d_total, d_loss)
        else:
            finite &= tf.math.is_finite(penalties)
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            # Every replica stops at the same step: one that met NaN/inf stops them all.
            nonfinite = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(finite), tf.int32))
            finite = tf.equal(nonfinite, 0)
        self.nonfinite_step.assign(tf.where(finite | (self.nonfinite_step >= 0),
                                            self.nonfinite_step, self.steps_done))
        self.d_loss_tracker.update_state(d_total)
        self.g_loss_tracker.update_state(g_loss)

    def _update_ema(self):
        # Warm-up as in tf.train.ExponentialMovingAverage(num_updates): early on the average would mostly
        # remember the random initialisation, which matters for short CPU budgets.
        step = tf.cast(self.steps_done, tf.float32)
        decay = tf.minimum(tf.constant(self.ema_decay, tf.float32), (1.0 + step) / (10.0 + step))
        # All weights, BatchNorm moving statistics included, so a checkpoint resumes the EMA exactly. Averaged
        # statistics do not fit the averaged weights: what is measured or saved gets standing ones (standing.py).
        for ema_var, var in zip(self.ema_generator.weights, self.generator.weights, strict=True):
            ema_var.assign(decay * ema_var + (1.0 - decay) * tf.cast(var, ema_var.dtype))

    # ---- many steps per call -------------------------------------------------------------------------
    def train_steps(self, iterator, steps):
        """Run up to `steps` train steps from `iterator` in one graph call (no Python between steps).
        Stops early after a step with a non-finite loss; `steps_done` says how many ran."""
        if self._multi_step_function is None:
            self._multi_step_function = self._make_multi_step_function()
        self._multi_step_function(iterator, tf.constant(steps, tf.int64))

    def _make_multi_step_function(self):
        strategy = self.distribute_strategy

        # strategy.run inside the (optionally XLA-compiled) function, as Keras' own train function does:
        # MirroredStrategy's cross-replica merge (gradient all-reduce) cannot sit inside a cond of a loop.
        @tf.function(jit_compile=bool(self.jit_compile), reduce_retracing=True)
        def one_step(data):
            strategy.run(self.train_step, args=(data,))

        @tf.function(reduce_retracing=True)
        def multi_step(iterator, steps):
            def more(i):
                return tf.logical_and(i < steps, self.nonfinite_step < 0)

            def step(i):
                one_step(iterator.get_next())
                return (i + 1,)

            tf.while_loop(more, step, (tf.constant(0, tf.int64),))

        return multi_step

    # ---- serialisation ------------------------------------------------------------------------------
    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "latent_dim": self.latent_dim,
            "num_classes": self.num_classes,
            "ema_decay": self.ema_decay,
            "augment_policy": list(self.augment_policy),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)
