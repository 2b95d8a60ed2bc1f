"""The featurize stage's feature space tells known-bad generators from real images (`evaluation/baselines.py`).

Data: the project's prepare stage with validation and test fractions of 0.2 each (digits: 1,077 / 360 / 360;
MNIST t10k: 6,000 / 2,000 / 2,000), the featurizer its featurize stage trains with the default params. The
reference pool is validation ∪ test: images neither the featurizer nor the floor sample has met.

Each of SEEDS evaluation seeds draws afresh: n reference images and, from the rest of the pool, n images of a
second real sample; n train images for the floor; and n images for each baseline (the Gaussians fitted to
the train split, the other baselines drawn from it). Every set is compared with that seed's reference by
`metrics.frechet_distance`. The floor's 95% interval is the 2.5–97.5 percentiles of the floor over the seeds
(no bootstrap). Run with `-s` to see the table of mean distances and their ratios to the floor mean.

The second real sample sits in the upper half of the floor's interval on MNIST (1.3× the floor mean, also over
100 seeds), from sampling, not from the featurizer: the reference and the second sample are disjoint halves of
one pool, so they differ by the full variance of two independent samples; the floor's samples are drawn from
two fixed splits, and a draw from a fixed split varies less than a fresh sample (the finite-population
correction), while what it misses, the splits' own difference, is small because prepare stratifies the split
by class and class shares dominate a classifier's feature space. Measured over 100 seeds: two disjoint halves
of the train split 0.42, pool halves 0.42, floor 0.32.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ganops import artifacts
from ganops.config import DataConfig, FeaturizeConfig
from ganops.data import prepare
from ganops.evaluation import baselines
from ganops.features import featurizer, metrics
from tests.helpers import MNIST_DIR

SEEDS = range(20)
MNIST_IMAGES = MNIST_DIR / "t10k-images-idx3-ubyte.gz"
MNIST_LABELS = MNIST_DIR / "t10k-labels-idx1-ubyte.gz"
BASELINES = ("pixel_gaussian_clipped", "pixel_gaussian", "noisy", "blurred", "half_classes")


@dataclasses.dataclass
class Table:
    """FD of each set to its seed's reference, one value per seed."""

    title: str
    distances: dict[str, np.ndarray]

    @property
    def floor(self) -> np.ndarray:
        return self.distances["floor"]

    @property
    def interval(self) -> tuple[float, float]:
        low, high = np.percentile(self.floor, [2.5, 97.5])
        return float(low), float(high)

    def mean(self, name: str) -> float:
        return float(self.distances[name].mean())

    def show(self) -> str:
        low, high = self.interval
        lines = [f"{self.title}: floor mean {self.mean('floor'):.3f}, 95% interval [{low:.3f}, {high:.3f}] "
                 f"(2.5-97.5 percentiles over {len(self.floor)} seeds)",
                 f"  {'set':<24}{'mean FD':>10}{'/ floor':>9}{'min':>10}{'max':>10}"]
        for name, values in self.distances.items():
            lines.append(f"  {name:<24}{values.mean():>10.3f}{values.mean() / self.mean('floor'):>9.2f}"
                         f"{values.min():>10.3f}{values.max():>10.3f}")
        return "\n".join(lines)


HOLDOUT = {"validation_fraction": 0.2, "test_fraction": 0.2}


def _splits(prepared: Path) -> dict[str, artifacts.Split]:
    return {name: artifacts.read_split(prepared / file_name)
            for name, file_name in artifacts.PreparedData.SPLIT_FILES.items()}


def _featurizer(splits: dict[str, artifacts.Split]) -> featurizer.Featurizer:
    """What the featurize stage trains with the default params."""
    model, _ = featurizer.train(FeaturizeConfig(), splits["train"], splits["validation"], num_classes=10)
    return model


def _measure(title: str, model: featurizer.Featurizer, splits: dict[str, artifacts.Split], n: int) -> Table:
    train = splits["train"]
    pool = np.concatenate([splits["validation"].images, splits["test"].images])
    train_features, pool_features = model.features(train.images), model.features(pool)

    def draw(rng: np.random.Generator) -> np.ndarray:
        return train.images[rng.choice(len(train), n, replace=False)]

    distances: dict[str, list[float]] = {name: [] for name in ("floor", "second_real", *BASELINES)}
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(pool))
        reference, second = pool_features[order[:n]], pool_features[order[n:2 * n]]
        sets = {
            "floor": train_features[rng.choice(len(train), n, replace=False)],
            "second_real": second,
            "pixel_gaussian_clipped": model.features(baselines.pixel_gaussian(train.images, n, rng, clip=True)),
            "pixel_gaussian": model.features(baselines.pixel_gaussian(train.images, n, rng, clip=False)),
            "noisy": model.features(baselines.noisy(draw(rng), rng, sigma=0.3)),
            "blurred": model.features(baselines.blurred(draw(rng), sigma_px=1.0)),
            "half_classes": model.features(baselines.half_classes(train.images, train.labels, rng, n)),
        }
        for name, features in sets.items():
            distances[name].append(metrics.frechet_distance(features, reference))
    table = Table(title, {name: np.array(values) for name, values in distances.items()})
    print("\n" + table.show())
    return table


@pytest.fixture(scope="module")
def digits(prepare_digits) -> tuple[featurizer.Featurizer, Table, np.ndarray]:
    splits = _splits(prepare_digits(max_images=None, **HOLDOUT))  # all 1,797 digits
    model = _featurizer(splits)
    held_out = np.concatenate([splits["validation"].images, splits["test"].images])
    return model, _measure("digits 8x8, n = 360", model, splits, n=360), held_out


def test_digits_second_real_sample_scores_like_the_floor(digits):
    _, table, _ = digits
    low, high = table.interval
    assert low <= table.mean("second_real") <= high, table.show()


def test_digits_every_baseline_lies_above_the_floor_interval_at_every_seed(digits):
    _, table, _ = digits
    _, high = table.interval
    for name in BASELINES:
        assert table.distances[name].min() > high, (name, table.show())
        assert table.mean(name) > 1.5 * table.mean("floor"), (name, table.show())


def test_digits_baselines_order_by_how_much_they_destroy(digits):
    """Noise is the mildest (strokes intact, and a classifier's features are meant to ignore pixel noise);
    the Gaussians and the half-classes sample lose shapes or modes; blur with σ = 1 px on 8 × 8 images
    (an eighth of the side, like 3.5 px on MNIST) merges the strokes into blobs and is the worst."""
    _, table, _ = digits
    middle = ("pixel_gaussian_clipped", "pixel_gaussian", "half_classes")
    assert all(table.mean("noisy") < table.mean(name) < table.mean("blurred") for name in middle), table.show()


def test_digits_feature_covariance_is_well_conditioned(digits):
    """No dead units: the covariance of real features is full rank, far above the ridge the FD adds."""
    model, _, held_out = digits
    eigenvalues = np.linalg.eigvalsh(np.cov(model.features(held_out), rowvar=False))
    print(f"\ndigits feature covariance: eigenvalues {eigenvalues.min():.2e} .. {eigenvalues.max():.2e}")
    assert eigenvalues.min() > 100 * metrics.COVARIANCE_EPS
    assert eigenvalues.max() / eigenvalues.min() < 1e5


@pytest.mark.slow
@pytest.mark.skipif(not (MNIST_IMAGES.exists() and MNIST_LABELS.exists()),
                    reason=f"the MNIST test set is absent ({MNIST_DIR})")
def test_mnist_baselines_score_at_least_ten_times_the_floor(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare.run(DataConfig(source="idx", path=str(MNIST_IMAGES), labels_path=str(MNIST_LABELS), image_size=28,
                           **HOLDOUT), out)
    splits = _splits(out)
    table = _measure("MNIST t10k 28x28, n = 2,000", _featurizer(splits), splits, n=2000)
    low, high = table.interval
    assert low <= table.mean("second_real") <= high, table.show()
    for name in BASELINES:
        assert table.mean(name) >= 10 * table.mean("floor"), (name, table.show())
