"""GAN losses as pure functions of discriminator logits."""

from __future__ import annotations

from keras import ops


def nonsaturating_d_loss(real_logits, fake_logits):
    """Discriminator cross-entropy: real → 1, fake → 0 (softplus form, stable for any logit)."""
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def nonsaturating_g_loss(fake_logits):
    """Generator maximises log D(G(z)) rather than minimising log(1 − D(G(z))), which saturates."""
    return ops.mean(ops.softplus(-fake_logits))


LOSSES = {
    "nonsaturating": (nonsaturating_d_loss, nonsaturating_g_loss),
}
