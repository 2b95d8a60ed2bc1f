"""IDX files (the MNIST format), raw or gzip-compressed, with an optional IDX label file.

Header: two zero bytes, a type code, the number of dimensions, then each dimension as a big-endian
uint32; the body is the values in C order. Images are uint8 with 3 dimensions (N, H, W; magic 2051)
or 4 (N, H, W, C with C 1 or 3; magic 2052); labels are integers with 1 dimension (magic 2049 for uint8).

The body is decompressed (or read) straight into one numpy buffer of the size the header announces:
no second copy of the file, and images that need no resizing stay uint8 until prepare scales them.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ganops.config import DataConfig
from ganops.data.sources.common import (
    LoadedImages,
    all_loaded,
    existing,
    finish_integers,
    integer_labels,
    uniform_shapes,
)
from ganops.errors import GanopsError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGE_MAGIC = 0x0803  # uint8, 3 dimensions
LABEL_MAGIC = 0x0801  # uint8, 1 dimension
_GZIP_SIGNATURE = b"\x1f\x8b"
_READ_BYTES = 1 << 20  # compressed bytes per read
_MAX_PIECE = 4 << 20  # decompressed bytes per piece: bounds memory on highly compressible input


def _gzip_pieces(handle, path: Path, first: bytes) -> Iterator[bytes]:
    """Decompressed pieces of a gzip file (several concatenated members allowed), at most _MAX_PIECE each."""
    stream, data = zlib.decompressobj(wbits=31), first
    try:
        while True:
            if not data:
                data = handle.read(_READ_BYTES)
                if not data:
                    if not stream.eof:
                        raise GanopsError(f"{path}: truncated gzip stream "
                                          "(the file ends before its compressed data does)")
                    return
            if stream.eof:  # another member follows
                if data[:2] != _GZIP_SIGNATURE[:len(data[:2])]:
                    raise GanopsError(f"{path}: corrupt gzip stream (unexpected bytes after the compressed data)")
                stream = zlib.decompressobj(wbits=31)
            piece = stream.decompress(data, _MAX_PIECE)
            data = stream.unconsumed_tail or stream.unused_data
            if piece:
                yield piece
    except zlib.error as exc:
        raise GanopsError(f"{path}: corrupt gzip stream ({exc})") from None


def _pieces(path: Path) -> Iterator[bytes]:
    """The file's content in pieces, decompressed when it starts with the gzip signature (whatever its name)."""
    with open(path, "rb") as handle:
        first = handle.read(_READ_BYTES)
        if first[:2] == _GZIP_SIGNATURE:
            yield from _gzip_pieces(handle, path, first)
            return
        yield first
        while piece := handle.read(_READ_BYTES):
            yield piece


def _header(path: Path, kind: str, head: bytes, allowed_dims: tuple[int, ...],
            integer_only: bool) -> tuple[int, tuple[int, ...], np.dtype]:
    """(header size, dimensions, dtype) from the file's first bytes (all of them when it has fewer than 20)."""
    expected = "2051 (uint8 images, N×H×W)" if kind == "image" else "2049 (uint8 labels, N)"
    if len(head) < 4:
        raise GanopsError(f"{path}: too short to be an IDX {kind} file ({len(head)} bytes)")
    magic = int.from_bytes(head[:4], "big")
    type_code, ndim = head[2], head[3]
    if head[:2] != b"\0\0" or type_code not in _TYPES or ndim not in allowed_dims \
            or (kind == "image" and type_code != 0x08) \
            or (integer_only and _TYPES[type_code][1] not in "ui"):
        raise GanopsError(f"{path}: wrong magic number {magic} (0x{magic:08x}) for an IDX {kind} file, "
                          f"expected {expected}")
    header_size = 4 + 4 * ndim
    if len(head) < header_size:
        raise GanopsError(f"{path}: truncated IDX header ({len(head)} bytes, expected {header_size})")
    dims = tuple(int.from_bytes(head[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return header_size, dims, np.dtype(_TYPES[type_code])


class _Body:
    """An IDX body read into one preallocated buffer by a background thread, so that prepare can scale
    the first images while the rest are still being decompressed (zlib and numpy copies release the GIL).
    `wait_for(n)` blocks until the first n bytes are there and raises the reader's error, if any."""

    def __init__(self, path: Path, pieces: Iterator[bytes], first: bytes | memoryview, dims: tuple[int, ...],
                 dtype: np.dtype) -> None:
        self.path, self.dims, self.dtype = path, dims, dtype
        self.array = np.empty(int(np.prod(dims, dtype=np.int64)) * dtype.itemsize, dtype=np.uint8)
        self._have, self._done = 0, False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._store(first)
        threading.Thread(target=self._read, args=(pieces,), name=f"read {path.name}", daemon=True).start()

    def _store(self, data: bytes | memoryview) -> None:
        kept = min(len(data), len(self.array) - self._have)
        self.array[self._have:self._have + kept] = np.frombuffer(data, dtype=np.uint8, count=kept)
        with self._changed:
            self._have += len(data)  # bytes beyond the body are counted, not kept
            self._changed.notify_all()

    def _read(self, pieces: Iterator[bytes]) -> None:
        try:
            for piece in pieces:
                self._store(piece)
            if self._have != len(self.array):
                shape = "×".join(map(str, self.dims))
                problem = "truncated body" if self._have < len(self.array) else "trailing bytes after the body"
                raise GanopsError(f"{self.path}: {problem}: header says {shape} values = {len(self.array):,} "
                                  f"bytes, file has {self._have:,}")
        except BaseException as exc:  # handed to the waiting thread
            self._error = exc
        finally:
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def wait_for(self, byte_count: int | None = None) -> None:
        """Until `byte_count` bytes (all, and the end of the file checked, when None) have been read."""
        with self._changed:
            self._changed.wait_for(lambda: self._done or (byte_count is not None and self._have >= byte_count))
        if self._error is not None:
            raise self._error

    def values(self) -> np.ndarray:
        """The body as an array of the header's shape (native byte order); call after `wait_for()`."""
        return self.array.view(self.dtype).reshape(self.dims).astype(self.dtype.newbyteorder("="), copy=False)


def open_idx(path: Path, kind: str, allowed_dims: tuple[int, ...], integer_only: bool) -> _Body:
    """Check the header and start reading the body in the background."""
    pieces = _pieces(path)
    head = b""
    for piece in pieces:  # the header is at most 20 bytes, almost always within the first piece
        head += piece
        if len(head) >= 20:
            break
    header_size, dims, dtype = _header(path, kind, head, allowed_dims, integer_only)
    return _Body(path, pieces, memoryview(head)[header_size:], dims, dtype)


def read_idx(path: Path, kind: str, allowed_dims: tuple[int, ...], integer_only: bool) -> np.ndarray:
    body = open_idx(path, kind, allowed_dims, integer_only)
    body.wait_for()
    return body.values()


def load(cfg: DataConfig) -> LoadedImages:
    images_path = existing(cfg.path, "file")
    body = open_idx(images_path, "image", (3, 4), integer_only=True)
    shape = body.dims + (1,) * (4 - len(body.dims))
    if shape[-1] not in (1, 3):
        raise GanopsError(f"{images_path}: images have {shape[-1]} channels, expected 1 or 3")
    labels = None
    if cfg.labels_path:
        labels_path = existing(cfg.labels_path, "file", key="data.labels_path")
        raw_labels = read_idx(labels_path, "label", (1,), integer_only=True)
        if len(raw_labels) != shape[0]:
            raise GanopsError(f"{labels_path}: {len(raw_labels):,} labels for {shape[0]:,} images "
                              f"in {images_path}")
        labels = integer_labels(raw_labels, str(labels_path), lambda i: f"label {i}")
    pixels = body.array.reshape(shape)  # uint8: the same bytes in any byte order
    image_bytes = int(np.prod(shape[1:]))
    if shape[1:] == (cfg.image_size, cfg.image_size, cfg.channels):  # handed on as they are, still arriving
        images, wait_for = pixels, lambda count: body.wait_for(None if count >= shape[0] else count * image_bytes)
    else:
        body.wait_for()
        images, wait_for = finish_integers(pixels, cfg, str(images_path)), all_loaded
    name = images_path.name
    return LoadedImages(
        images=images,
        labels=labels,
        sources=[f"{name}:{i}" for i in range(shape[0])],
        orig_shapes=uniform_shapes(shape[0], shape[1:]),
        wait_for=wait_for,
    )
