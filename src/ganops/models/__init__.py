"""Networks (builders, no globals), losses (pure functions) and the GAN training model."""
