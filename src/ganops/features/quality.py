"""The quality recipe the evaluate stage and the training monitor share: the Fréchet distance of a set's
features to a holdout reference sample, and its ratio to the real floor — the distance from real images the
reference has never met (a train sample) to that same reference. Both callers draw the two samples with
`metrics.reference_indices` and measure through a `HoldoutReference`, so `fd` and `fd_ratio` mean the same
numbers during training and in metrics.json."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ganops.features import metrics


@dataclasses.dataclass(frozen=True)
class HoldoutReference:
    """The reference sample's features and the real floor measured against them."""

    features: np.ndarray
    floor: float

    @classmethod
    def with_floor(cls, reference_features: np.ndarray, real_features: np.ndarray) -> HoldoutReference:
        """The reference, with its floor measured from `real_features` (the train sample)."""
        return cls(reference_features, metrics.frechet_distance(real_features, reference_features))

    @functools.cached_property
    def _stats(self) -> metrics.GaussianStats:
        # Computed once (with its matrix square root) for every set measured against this reference.
        return metrics.GaussianStats.of(self.features)

    def fd(self, features: np.ndarray) -> float:
        """The Fréchet distance from `features` to the reference (`metrics.frechet_distance`)."""
        return metrics.frechet_from_stats(metrics.GaussianStats.of(features), self._stats)

    def ratio(self, fd: float) -> float:
        """A distance to this reference on the scale of the floor (`metrics.floor_ratio`)."""
        return metrics.floor_ratio(fd, self.floor)

    def measure(self, features: np.ndarray) -> dict[str, float]:
        """`fd` and `fd_ratio` of a set's features."""
        fd = self.fd(features)
        return {"fd": fd, "fd_ratio": self.ratio(fd)}
