"""Evaluation: every metric against the test split beside the real floor and the known-bad baselines, and the
report. The feature space and the metrics themselves live in `ganops.features`."""
