"""tf.data pipelines over a prepared split, read a batch of rows at a time: the pixels reach memory batch by
batch (from the memory-mapped shards of `artifacts.PreparedData.open_split`, or from an in-memory
`artifacts.Split`, which offers the same `gather`), are scaled to float32 [-1, 1] in the pipeline
(`shards.SIGNED_SCALE`, the one scale) and prefetched, so no pipeline holds a split.

The order is an index permutation, not a shuffle buffer over pixels: the shards allow random access, so each
epoch can be a full permutation of the split that costs 8 bytes an image, is a pure function of (seed, epoch),
and can start at any step without replaying the steps before it (an exact mid-epoch resume).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np
import tensorflow as tf

from ganops import shards


class Rows(Protocol):
    """A split that reads rows on demand: `shards.ShardedSplit` or an in-memory `artifacts.Split`."""

    def __len__(self) -> int: ...

    @property
    def dtype(self) -> np.dtype: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def labelled(self) -> bool: ...

    @property
    def labels(self) -> np.ndarray | None: ...  # every label (8 bytes an image), or None

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...  # stored dtype

    def signed(self, rows: np.ndarray) -> np.ndarray: ...  # float32 in [-1, 1]


@dataclasses.dataclass(frozen=True)
class RowSubset:
    """Rows `rows` of `split` as a split of their own, read on demand: a subset that holds no pixels."""

    split: Rows
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def dtype(self) -> np.dtype:
        return self.split.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.split.shape

    @property
    def labelled(self) -> bool:
        return self.split.labelled

    @property
    def labels(self) -> np.ndarray | None:
        labels = self.split.labels
        return None if labels is None else labels[self.rows]

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.split.gather(self.rows[np.asarray(rows, np.int64)])

    def signed(self, rows: np.ndarray) -> np.ndarray:
        return self.split.signed(self.rows[np.asarray(rows, np.int64)])


# A split whose stored pixels fit in this many bytes is read once and gathered inside the graph: a per-batch
# `numpy_function` call holds the GIL, and on the 8×8 digits (over 1,000 steps/s) it cost a fifth of the
# training steps in a fixed budget (18,126 and 18,738 steps in 20 s against 21,636 and 24,246 in memory).
# Larger splits stream from the shards, where a step costs far more than the gather. The bound is low because
# the constant costs about three times its bytes at its peak (160 MB of 64×64×3 pixels: an input pipeline
# peaked at 1,208 MB in the graph against 745 MB from the shards), and MNIST's 60,000 images are 47 MB.
IN_GRAPH_BYTES = 64 << 20


def read_rows(index_batches: tf.data.Dataset, split: Rows, labels: bool) -> tf.data.Dataset:
    """Batches of split positions → batches of float32 [-1, 1] images (and int32 labels), in order, read in
    parallel and prefetched."""
    pixel_type = tf.as_dtype(split.dtype)
    small = len(split) * int(np.prod(split.shape)) * split.dtype.itemsize <= IN_GRAPH_BYTES
    fetch = _gather_in_graph(split) if small else _gather_from_shards(split, pixel_type)

    def read(rows: tf.Tensor):
        images, row_labels = fetch(rows)
        if pixel_type == tf.uint8:
            images = tf.cast(images, tf.float32) / shards.SIGNED_SCALE - 1.0
        return (images, row_labels) if labels else images

    return (index_batches.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def _int32_labels(row_labels: np.ndarray | None, count: int) -> np.ndarray:
    return (row_labels if row_labels is not None else np.zeros(count, np.int64)).astype(np.int32)


def _gather_in_graph(split: Rows):
    """Rows → (stored pixels, int32 labels) from the whole split's stored pixels (uint8 from shards), held
    once as a constant."""
    images, row_labels = split.gather(np.arange(len(split)))
    image_tensor, label_tensor = tf.constant(images), tf.constant(_int32_labels(row_labels, len(split)))
    return lambda rows: (tf.gather(image_tensor, rows), tf.gather(label_tensor, rows))


def _gather_from_shards(split: Rows, pixel_type: tf.DType):
    """Rows → (stored pixels, int32 labels) read from the split a batch at a time."""
    def gather(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images, row_labels = split.gather(rows)
        return images, _int32_labels(row_labels, len(rows))

    def fetch(rows: tf.Tensor):
        images, row_labels = tf.numpy_function(gather, [rows], (pixel_type, tf.int32), stateful=False)
        # The batch dimension stays static where the rows' is (training batches): XLA needs it.
        return tf.ensure_shape(images, (rows.shape[0], *split.shape)), tf.ensure_shape(row_labels, rows.shape)

    return fetch


def epoch_permutation(count: int, seed: int, epoch: tf.Tensor) -> tf.Tensor:
    """The split's positions in epoch `epoch`'s order: a stateless shuffle of (seed, epoch)."""
    return tf.random.experimental.stateless_shuffle(tf.range(count), seed=tf.stack([tf.constant(seed, tf.int64),
                                                                                    epoch]))


def training_batches(split: Rows, batch_size: int, seed: int, epochs: int, start_step: int = 0, *,
                     labels: bool = False, num_workers: int = 1, worker_index: int = 0,
                     worker_replicas: int = 1) -> tf.data.Dataset:
    """Batches for steps `start_step`…`epochs × steps_per_epoch − 1` (incomplete last batches dropped); each
    epoch a permutation of (seed, epoch). `batch_size` is the global batch: with `num_workers` input pipelines
    (`tf.distribute.InputContext.num_input_pipelines`) worker `worker_index` reads rows `worker_index::num_workers`
    of each global batch, so the workers together read each batch once and no worker reads another's rows.
    With `worker_replicas` replicas on the worker, its rows of a step come as that many consecutive per-replica
    batches (a contiguous part each), in replica order: what `distribute_datasets_from_function` hands out."""
    count = len(split)
    steps_per_epoch = count // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch size {batch_size} is larger than the {count} images")
    per_replica = batch_size // (num_workers * worker_replicas)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        order = epoch_permutation(count, seed, epoch)
        batches = tf.reshape(order[:steps_per_epoch * batch_size], (steps_per_epoch, batch_size))
        mine = batches[:, worker_index::num_workers]
        return tf.data.Dataset.from_tensor_slices(tf.reshape(mine, (-1, per_replica)))

    first_epoch = start_step // steps_per_epoch
    skipped = (start_step - first_epoch * steps_per_epoch) * worker_replicas
    positions = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_batches).skip(skipped)
    return read_rows(positions, split, labels)


def shuffled_epoch(split: Rows, batch_size: int, seed: int, labels: bool) -> tf.data.Dataset:
    """One epoch in a new seeded order each time it is iterated (what `Model.fit` wants), the last batch
    possibly smaller; the shuffle buffer holds positions, not pixels."""
    positions = (tf.data.Dataset.range(len(split))
                 .shuffle(len(split), seed=seed, reshuffle_each_iteration=True).batch(batch_size))
    return read_rows(positions, split, labels)


def in_order(split: Rows, batch_size: int, labels: bool) -> tf.data.Dataset:
    """The split in order, `batch_size` rows a batch."""
    return read_rows(tf.data.Dataset.range(len(split)).batch(batch_size), split, labels)
