"""IDX files (the MNIST format), raw or gzip-compressed, with an optional IDX label file.

Header: two zero bytes, a type code, the number of dimensions, then each dimension as a big-endian
uint32; the body is the values in C order. Images are uint8 with 3 dimensions (N, H, W; magic 2051)
or 4 (N, H, W, C with C 1 or 3; magic 2052); labels are integers with 1 dimension (magic 2049 for uint8).

The body is decompressed (or read) straight into one numpy buffer of the size the header announces:
no second copy of the file, and images that need no resizing stay uint8 until prepare scales them.
The header is checked against the bytes present before that buffer is taken (see `_trusted_size`).
"""

from __future__ import annotations

import math
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ganops.config import DataConfig
from ganops.data.sources.common import (
    MAX_DEFLATE_RATIO,
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
_FIRST_CAPACITY = 4 << 20  # bytes first taken for a body whose size is not confirmed; doubled as data arrives
_UNCONFIRMED_MAX = 64 << 20  # body bytes a gzip header alone may reserve: harmless even when it lies


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
    if kind == "image" and 0 in dims[1:]:  # else a 16-byte file could announce 4 billion empty images
        raise GanopsError(f"{path}: header says {_shape(dims)} images: an image dimension of 0")
    return header_size, dims, np.dtype(_TYPES[type_code])


def _shape(dims: tuple[int, ...]) -> str:
    return "×".join(f"{d:,}" for d in dims)


def _size_error(path: Path, dims: tuple[int, ...], body_bytes: int, have: int, header_size: int) -> GanopsError:
    problem = "truncated body" if have < body_bytes else "trailing bytes after the body"
    return GanopsError(f"{path}: {problem}: header says {_shape(dims)} values = {body_bytes:,} bytes, "
                       f"file has {have:,} bytes after its {header_size}-byte header")


def _trusted_size(path: Path, header_size: int, dims: tuple[int, ...], body_bytes: int) -> bool:
    """Whether the body may be preallocated at the header's size and read in the background. Raises when the
    header cannot be right; False when it is possible but unconfirmed, and the body is then read as it comes.

    A raw file's size is known: the body must fill it exactly. A gzip file's decompressed size is not known
    before it is read, so the header is checked against two things the file says about itself:
    its size × the largest deflate ratio, a hard bound (past it the header is wrong); and the ISIZE trailer,
    the length mod 2³² of the last member. Real single-member files (MNIST, anything `gzip` writes) match
    the trailer and keep the background read that lets prepare scale images while the rest arrives; so do
    bodies up to _UNCONFIRMED_MAX (a truncated file's trailer is garbage). Larger bodies the trailer does
    not confirm (several members, or a lying header within the bound) are read first into a buffer grown as
    bytes arrive, so memory follows the data, not the header: no background read, but no giant buffer.
    A crafted trailer that matches a lying header gets at most 1032 × the file's size preallocated, pages
    never written (zlib then fails its length check, the real member being shorter than its trailer says).
    """
    with open(path, "rb") as handle:
        file_size = os.fstat(handle.fileno()).st_size
        compressed = handle.read(2) == _GZIP_SIGNATURE
        handle.seek(max(file_size - 4, 0))
        trailer = int.from_bytes(handle.read(4), "little")
    if not compressed:
        if file_size - header_size != body_bytes:
            raise _size_error(path, dims, body_bytes, file_size - header_size, header_size)
        return True
    most = file_size * MAX_DEFLATE_RATIO
    if header_size + body_bytes > most:
        raise GanopsError(f"{path}: header says {_shape(dims)} values = {body_bytes:,} bytes, but a "
                          f"{file_size:,}-byte gzip file decompresses to at most {most:,} bytes")
    return body_bytes <= _UNCONFIRMED_MAX or (header_size + body_bytes) % 2**32 == trailer


class _Body:
    """An IDX body read into one preallocated buffer by a background thread, so that prepare can scale
    the first images while the rest are still being decompressed (zlib and numpy copies release the GIL).
    `wait_for(n)` blocks until the first n bytes are there and raises the reader's error, if any.
    With `in_background` False (a size the file does not confirm) the body is read before the constructor
    returns, into a buffer that grows with the bytes that actually arrive, up to the header's size."""

    def __init__(self, path: Path, pieces: Iterator[bytes], first: bytes | memoryview, dims: tuple[int, ...],
                 dtype: np.dtype, in_background: bool) -> None:
        self.path, self.dims, self.dtype = path, dims, dtype
        self.size = math.prod(dims) * dtype.itemsize  # Python ints: numpy's int64 product could wrap
        self.array = np.empty(self.size if in_background else min(self.size, _FIRST_CAPACITY), dtype=np.uint8)
        self._have, self._done = 0, False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._store(first)
        if in_background:
            threading.Thread(target=self._read, args=(pieces,), name=f"read {path.name}", daemon=True).start()
        else:
            self._read(pieces)
            self.wait_for()

    def _store(self, data: bytes | memoryview) -> None:
        kept = max(0, min(len(data), self.size - self._have))
        if self._have + kept > len(self.array):  # only when not in the background: no reader holds the array
            grown = np.empty(min(self.size, max(2 * len(self.array), self._have + kept)), dtype=np.uint8)
            grown[:self._have] = self.array[:self._have]
            self.array = grown
        self.array[self._have:self._have + kept] = np.frombuffer(data, dtype=np.uint8, count=kept)
        with self._changed:
            self._have += len(data)  # bytes beyond the body are counted, not kept
            self._changed.notify_all()

    def _read(self, pieces: Iterator[bytes]) -> None:
        try:
            for piece in pieces:
                self._store(piece)
            if self._have != self.size:
                raise _size_error(self.path, self.dims, self.size, self._have, 4 + 4 * len(self.dims))
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
    """Check the header against the file, then read the body: in the background when the file confirms
    the header's size, else before returning (see `_trusted_size`)."""
    pieces = _pieces(path)
    head = b""
    for piece in pieces:  # the header is at most 20 bytes, almost always within the first piece
        head += piece
        if len(head) >= 20:
            break
    header_size, dims, dtype = _header(path, kind, head, allowed_dims, integer_only)
    in_background = _trusted_size(path, header_size, dims, math.prod(dims) * dtype.itemsize)
    return _Body(path, pieces, memoryview(head)[header_size:], dims, dtype, in_background)


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
    image_bytes = math.prod(shape[1:])
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
