"""Evaluation: a frozen feature space of our own (no downloads), the metrics, and the report."""
