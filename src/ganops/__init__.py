"""ganops."""
