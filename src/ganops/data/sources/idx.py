"""IDX files (the MNIST format), raw or gzip-compressed, with an optional IDX label file.

Header: two zero bytes, a type code, the number of dimensions, then each dimension as a big-endian
uint32; the body is the values in C order. Images are uint8 with 3 dimensions (N, H, W; magic 2051)
or 4 (N, H, W, C with C 1 or 3; magic 2052); labels are integers with 1 dimension (magic 2049 for uint8).

The body is decompressed (or read) in blocks of whole images as prepare asks for them: memory holds a block,
never the file, and images that need no resizing stay uint8 until prepare scales them. The header is checked
against the file's size before anything past it is read (see `_check_size`), and against the bytes that
actually arrive when the body ends.
"""

from __future__ import annotations

import itertools
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ganops.config import DataConfig
from ganops.data.sources.common import (
    CHUNK_IMAGES,
    MAX_DEFLATE_RATIO,
    ImageStream,
    NumberedNames,
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
    if kind == "image" and 0 in dims[1:]:  # else a 16-byte file could announce 4 billion empty images
        raise GanopsError(f"{path}: header says {_shape(dims)} images: an image dimension of 0")
    return header_size, dims, np.dtype(_TYPES[type_code])


def _shape(dims: tuple[int, ...]) -> str:
    return "×".join(f"{d:,}" for d in dims)


def _size_error(path: Path, dims: tuple[int, ...], body_bytes: int, have: int, header_size: int) -> GanopsError:
    problem = "truncated body" if have < body_bytes else "trailing bytes after the body"
    return GanopsError(f"{path}: {problem}: header says {_shape(dims)} values = {body_bytes:,} bytes, "
                       f"file has {have:,} bytes after its {header_size}-byte header")


def _check_size(path: Path, header_size: int, dims: tuple[int, ...], body_bytes: int) -> None:
    """Raise when the header cannot be right, before anything is read past it.

    A raw file's size is known: the body must fill it exactly. A gzip file's decompressed size is not known
    before it is read; past its size × the largest deflate ratio the header is wrong. Within that bound the
    body is read in blocks as it arrives, so memory follows the data, never the header's claim, and a header
    that claims more (or less) than the stream holds fails when the stream ends (`_blocks`).
    """
    with open(path, "rb") as handle:
        file_size = os.fstat(handle.fileno()).st_size
        compressed = handle.read(2) == _GZIP_SIGNATURE
    if not compressed:
        if file_size - header_size != body_bytes:
            raise _size_error(path, dims, body_bytes, file_size - header_size, header_size)
        return
    most = file_size * MAX_DEFLATE_RATIO
    if header_size + body_bytes > most:
        raise GanopsError(f"{path}: header says {_shape(dims)} values = {body_bytes:,} bytes, but a "
                          f"{file_size:,}-byte gzip file decompresses to at most {most:,} bytes")


def _blocks(path: Path, pieces: Iterator[bytes], first: bytes | memoryview, dims: tuple[int, ...],
            size: int, block_bytes: int) -> Iterator[np.ndarray]:
    """The body's bytes as uint8 blocks of `block_bytes` (the last one shorter); at the end of the file,
    raises unless exactly `size` bytes came after the header."""
    have, filled = 0, 0  # body bytes seen (beyond the body too); bytes in the current block
    block = np.empty(min(block_bytes, size), dtype=np.uint8)
    for data in itertools.chain([first], pieces):
        view = memoryview(data)
        while len(view) and have < size:
            kept = min(len(view), len(block) - filled)
            block[filled:filled + kept] = np.frombuffer(view, dtype=np.uint8, count=kept)
            filled, have, view = filled + kept, have + kept, view[kept:]
            if filled == len(block):
                yield block
                block, filled = np.empty(min(block_bytes, size - have), dtype=np.uint8), 0
        have += len(view)  # bytes beyond the body are counted, not kept
    if have != size:
        raise _size_error(path, dims, size, have, 4 + 4 * len(dims))


def open_idx(path: Path, kind: str, allowed_dims: tuple[int, ...], integer_only: bool,
             block_items: int) -> tuple[tuple[int, ...], np.dtype, Iterator[np.ndarray]]:
    """(dimensions, dtype, the body in uint8 blocks of `block_items` items of the first dimension) of an IDX
    file whose header is checked against its size."""
    pieces = _pieces(path)
    head = b""
    for piece in pieces:  # the header is at most 20 bytes, almost always within the first piece
        head += piece
        if len(head) >= 20:
            break
    header_size, dims, dtype = _header(path, kind, head, allowed_dims, integer_only)
    size = math.prod(dims) * dtype.itemsize  # Python ints: numpy's int64 product could wrap
    _check_size(path, header_size, dims, size)
    block_bytes = block_items * math.prod(dims[1:]) * dtype.itemsize
    return dims, dtype, _blocks(path, pieces, memoryview(head)[header_size:], dims, size, block_bytes)


def read_idx(path: Path, kind: str, allowed_dims: tuple[int, ...], integer_only: bool) -> np.ndarray:
    """A whole IDX file's values (native byte order), read in blocks: memory follows the bytes present."""
    dims, dtype, blocks = open_idx(path, kind, allowed_dims, integer_only, block_items=_READ_BYTES)
    body = np.concatenate(list(blocks)) if math.prod(dims) else np.empty(0, np.uint8)
    return body.view(dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def open_stream(cfg: DataConfig, chunk_images: int = CHUNK_IMAGES) -> ImageStream:
    images_path = existing(cfg.path, "file")
    dims, _, blocks = open_idx(images_path, "image", (3, 4), True, block_items=chunk_images)
    shape = dims + (1,) * (4 - len(dims))
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
    where = str(images_path)
    return ImageStream(
        count=shape[0],
        labels=labels,
        sources=NumberedNames(f"{images_path.name}:", shape[0]),
        orig_shapes=uniform_shapes(shape[0], shape[1:]),
        chunks=(finish_integers(block.reshape(-1, *shape[1:]), cfg, where) for block in blocks),
    )
