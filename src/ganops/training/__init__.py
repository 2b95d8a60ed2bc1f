"""Training: the fit loop wiring, callbacks and device selection."""
