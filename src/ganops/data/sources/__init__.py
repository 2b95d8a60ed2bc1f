"""Image sources: each format in its own module behind one interface, `open_stream(cfg) -> ImageStream`.

Every source gives pixels already resized to `cfg.image_size` with `cfg.channels` channels and scaled
to [0, 1] (or uint8 as they are), so everything after this package sees one layout whatever the input was.
Resizing happens in one place, `resize_to`, with one filter (PIL bicubic): metrics computed on images
resized two different ways are not comparable. A source is read once, in pieces (see `common`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ganops.config import DataConfig
from ganops.data.sources import csv, digits, folder, idx, npz
from ganops.data.sources.common import (
    CHUNK_IMAGES,
    RESIZE_FILTER,
    ImageStream,
    LoadedImages,
    UnreadableFile,
    match_channels,
    resize_to,
)
from ganops.errors import GanopsError

__all__ = ["CHUNK_IMAGES", "RESIZE_FILTER", "SOURCES", "ImageStream", "LoadedImages", "UnreadableFile", "load",
           "match_channels", "open_stream", "resize_to"]

SOURCES: dict[str, Callable[..., ImageStream]] = {
    "digits": digits.open_stream,
    "idx": idx.open_stream,
    "npz": npz.open_stream,
    "folder": folder.open_stream,
    "csv": csv.open_stream,
}


def open_stream(cfg: DataConfig, chunk_images: int = CHUNK_IMAGES,
                unreadable: Mapping[str, str] | None = None) -> ImageStream:
    """The configured source, opened: its per-image facts now, its pixels in pieces of `chunk_images` images.
    Resized images come out the same whatever the piece size when it is a multiple of `common.RESIZE_CHUNK`.
    `unreadable`: files to skip that an earlier pass found unreadable (`UnreadableFile`; folder source only).
    Some facts may be known only once the pieces have all been read (the folder's `orig_shapes`)."""
    try:
        opener = SOURCES[cfg.source]
    except KeyError:
        raise GanopsError(f"data.source: {cfg.source!r} is not one of {sorted(SOURCES)}") from None
    if chunk_images < 1:
        raise ValueError(f"chunk_images must be positive, got {chunk_images}")
    stream = opener(cfg, chunk_images, unreadable=unreadable) if unreadable else opener(cfg, chunk_images)
    if stream.count == 0:
        raise GanopsError(f"{cfg.path or cfg.source}: no images found")
    return stream


def load(cfg: DataConfig, chunk_images: int = CHUNK_IMAGES) -> LoadedImages:
    """The whole source in memory, for tests and small data (prepare streams it instead). Pieces are joined
    as they come, so a header that claims more than the file holds costs the bytes present, not the claim."""
    unreadable: dict[str, str] = {}
    while True:
        stream = open_stream(cfg, chunk_images, unreadable)
        try:
            pieces = list(stream.chunks)
        except UnreadableFile as late:
            unreadable |= late.problems
            continue
        images = np.concatenate(pieces) if len(pieces) != 1 else pieces[0]
        return LoadedImages(images=images, labels=stream.labels, sources=list(stream.sources),
                            orig_shapes=stream.orig_shapes, classes=stream.classes, skipped=stream.skipped)
