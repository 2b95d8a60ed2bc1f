"""The train / validation / test split of a dataset: seeded, and stratified so that every split keeps the data's
class mix. A pure function of the image count, the labels and the data config (no pixels), so prepare draws the
splits before it reads any image."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ganops import artifacts
from ganops.config import DataConfig
from ganops.errors import GanopsError


def _class_quotas(class_counts: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Images per class (rows) and split (columns): row i sums to `class_counts[i]`, column j to `sizes[j]`,
    and every entry is its proportional share rounded down or up, so every split keeps the class mix of the
    data. Such a rounding always exists (the shares' rows and columns sum to integers).

    Floors first; the units left go to the largest remainders (ties: the larger class, the lower label, the
    earlier split), and any that greedy pass cannot place move in along an augmenting path.
    """
    counts, totals = np.asarray(class_counts, dtype=np.int64), np.asarray(sizes, dtype=np.int64)
    products = np.outer(counts, totals)  # share × total, in integers: no float rounding
    quotas, remainders = products // counts.sum(), products % counts.sum()
    row_short, column_short = counts - quotas.sum(axis=1), totals - quotas.sum(axis=0)
    up = np.zeros(quotas.shape, dtype=bool)  # rounded up; only where a remainder is left
    rows, columns = np.nonzero(remainders)
    order = np.lexsort((columns, rows, -counts[rows], -remainders[rows, columns]))
    for i, j in zip(rows[order], columns[order], strict=True):
        if row_short[i] and column_short[j]:
            up[i, j], row_short[i], column_short[j] = True, row_short[i] - 1, column_short[j] - 1
    for i in np.flatnonzero(row_short):
        while row_short[i]:  # breadth-first over columns: row i takes one, rows move along, a short one gains
            # column -> (the row that takes a unit there, the column that row gives one up in; None: row i)
            via: dict[int, tuple[int, int | None]] = {
                int(j): (int(i), None) for j in np.flatnonzero((remainders[i] > 0) & ~up[i])}
            queue = list(via)
            while not any(column_short[j] for j in queue):
                k = queue.pop(0)
                for mover in np.flatnonzero(up[:, k]):
                    for j in np.flatnonzero((remainders[mover] > 0) & ~up[mover]):
                        if int(j) not in via:
                            via[int(j)] = (int(mover), k)
                            queue.append(int(j))
            j = next(j for j in queue if column_short[j])
            column_short[j] -= 1
            row_short[i] -= 1
            while j is not None:
                taker, j_from = via[j]
                up[taker, j] = True
                if j_from is not None:
                    up[taker, j_from] = False
                j = j_from
    return quotas + up


def _held_out(fraction: float, count: int) -> int:
    """ceil(fraction × count) of the fraction as written: 0.07 × 100 is 7, not the float product's 8."""
    return math.ceil(Fraction(str(fraction)) * count)


def split_indices(count: int, labels: np.ndarray | None, cfg: DataConfig
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted (train, validation, test) positions: seeded, and stratified when every class has an image
    for each split, so each split keeps the data's class mix.

    Validation and test take `ceil(fraction × count)` images each; train keeps the rest. Validation tunes
    (the training monitor, any sweep), test reports (evaluate, the promotion gate).
    """
    sizes = {"validation": _held_out(cfg.validation_fraction, count), "test": _held_out(cfg.test_fraction, count)}
    train_count = count - sizes["validation"] - sizes["test"]
    if train_count <= 0:
        raise GanopsError(f"data.test_fraction: cannot split {count} images into {sizes['validation']} "
                          f"validation and {sizes['test']} test images and leave any for training")
    rng = np.random.default_rng(cfg.seed)
    classes = np.unique(labels, return_inverse=True, return_counts=True) if labels is not None else None
    if classes is None or classes[2].min() < len(artifacts.SPLITS):  # a class too small for all three splits
        permutation = rng.permutation(count)
        validation, test = np.split(permutation[:sizes["validation"] + sizes["test"]], [sizes["validation"]])
        return (np.sort(permutation[sizes["validation"] + sizes["test"]:]), np.sort(validation), np.sort(test))
    _, class_of, class_counts = classes
    if min(train_count, *sizes.values()) < len(class_counts):
        raise GanopsError(f"data.test_fraction: cannot split {count} images of {len(class_counts)} classes "
                          f"into {train_count} train, {sizes['validation']} validation and {sizes['test']} test "
                          "images with every class in each")
    quotas = _class_quotas(class_counts, [train_count, sizes["validation"], sizes["test"]])
    parts: dict[str, list[np.ndarray]] = {name: [] for name in artifacts.SPLITS}
    for label, (_, n_validation, n_test) in enumerate(quotas):
        members = rng.permutation(np.flatnonzero(class_of == label))
        parts["test"].append(members[:n_test])
        parts["validation"].append(members[n_test:n_test + n_validation])
        parts["train"].append(members[n_test + n_validation:])
    train, validation, test = (np.sort(np.concatenate(parts[name])) for name in artifacts.SPLITS)
    return train, validation, test
