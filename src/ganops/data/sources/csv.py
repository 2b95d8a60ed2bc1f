"""CSV tables read with pandas: a header row, one image per row, optional integer label column.

Every column but `data.label_column` is a pixel, in the order of `image.reshape(-1)` (H, W, C):
a row of n² values is an n×n grayscale image, one of 3·n² values an n×n RGB image. Pixels are 0–255
or 0–1 (see `common.numbers_scale`). Lines in messages count from 1 with the header as line 1.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from ganops.config import DataConfig
from ganops.data.sources.common import (
    CHUNK_IMAGES,
    ImageStream,
    NumberedNames,
    check_numbers,
    existing,
    finish,
    integer_labels,
    numbers_scale,
    scale_numbers,
    uniform_shapes,
)
from ganops.errors import GanopsError

_CHUNK_ROWS = 5000  # rows parsed at a time: bounds the parser's memory
# ... and at most this many bytes of cells, whatever the header's column count: a short row is padded to
# the header's width, so a wide header over short rows would otherwise size each chunk, not the data.
_CHUNK_BYTES = 16 << 20


def _chunk_rows(columns: int, cell_bytes: int) -> int:
    return max(1, min(_CHUNK_ROWS, _CHUNK_BYTES // (cell_bytes * max(columns, 1))))


def _line(row: int) -> str:
    return f"line {row + 2}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _bad_cell(table: pd.DataFrame, pixel_columns: list[str]) -> tuple[int, str, str] | None:
    """(row, column, text) of the first cell of `table`, in reading order, that is not a number."""
    cells = table[pixel_columns].to_numpy()
    try:
        cells.astype(np.float64)  # float() of every cell, as _is_number does, in C: the usual clean chunk
        return None
    except ValueError:
        pass
    for row, values in enumerate(cells):  # a row at a time in C; only the bad row cell by cell in Python
        try:
            values.astype(np.float64)
        except ValueError:
            column = next(i for i, text in enumerate(values) if not _is_number(str(text).strip()))
            return row, pixel_columns[column], str(values[column]).strip()
    return None


def _first_bad_cell(path, pixel_columns: list[str]) -> str:
    """Slow diagnostic pass, only after the fast read failed: name the first cell that is not a number.
    In chunks, stopping at the first bad one: a whole table of Python strings is ~20× the file."""
    first_row = 0
    try:
        for table in pd.read_csv(path, dtype=str, keep_default_na=False,
                                 chunksize=_chunk_rows(len(pixel_columns), 64)):
            found = _bad_cell(table, pixel_columns)
            if found is not None:
                row, column, value = found
                return f"{_line(first_row + row)}, column {column!r}: " + (
                    "missing pixel value" if value == "" else f"pixel {value!r} is not a number")
            first_row += len(table)
    except pd.errors.ParserError as exc:
        return f"malformed CSV ({str(exc).strip().splitlines()[-1]})"
    return "unreadable CSV"


def _header(path: Path, label_column: str | None) -> list[str]:
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
    except pd.errors.EmptyDataError:
        raise GanopsError(f"{path}: empty file (expected a header row, then one image per row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise GanopsError(f"{path}: not a readable CSV file ({str(exc).strip().splitlines()[-1]})") from None
    if any(_is_number(name) for name in header):
        raise GanopsError(f"{path}: the first line looks like data, not a header row of column names")
    if label_column is not None and label_column not in header:
        raise GanopsError(f"{path}: no label column {label_column!r} (data.label_column; null when unlabelled)")
    return header


def _parse(path: Path, header: list[str], label_column: str | None, spill: BinaryIO) -> tuple[int, float, list]:
    """Parse the table once, in chunks, writing its float32 pixels to `spill`; (rows, largest pixel, label
    chunks). Checks every pixel: the first missing or non-finite one in reading order fails at once (before
    a later short row is padded to the header's width), else the first outside 0–255 once all are read."""
    pixel_columns = [name for name in header if name != label_column]
    count = len(pixel_columns)
    rows, high, label_chunks, out_of_range = 0, 0.0, [], None

    def describe(first_row: int) -> Callable[[int], str]:
        return lambda flat: f"{_line(first_row + flat // count)}, column {pixel_columns[flat % count]!r}"

    # The C parser in chunks of float32 rows: pyarrow's parser is faster on an idle machine but holds
    # the whole text and a second copy of the table, over 1 GB for 70,000 28×28 rows.
    try:
        for chunk in pd.read_csv(path, dtype=dict.fromkeys(pixel_columns, np.float32),
                                 chunksize=_chunk_rows(len(header), 4)):
            if label_column is not None:
                label_chunks.append(chunk.pop(label_column).to_numpy())
            # to_numpy() is column-major here: make each image's pixels contiguous.
            pixels = np.ascontiguousarray(chunk.to_numpy(dtype=np.float32))
            if not np.isfinite(pixels).all():  # an error below whatever follows (short rows too): stop
                check_numbers(pixels, str(path), describe(rows))  # before the rest is padded to the header
            try:
                high = max(high, check_numbers(pixels, str(path), describe(rows)))
            except GanopsError as exc:
                out_of_range = out_of_range or exc
            spill.write(pixels.data)
            rows += len(pixels)
    except (ValueError, pd.errors.ParserError):
        raise GanopsError(f"{path}: {_first_bad_cell(path, pixel_columns)}") from None
    if out_of_range is not None:
        raise out_of_range
    return rows, high, label_chunks


def open_stream(cfg: DataConfig, chunk_images: int = CHUNK_IMAGES) -> ImageStream:
    """The table is parsed once when opened, its pixels kept in an unnamed temporary file: the scale of
    float pixels (0–1 or 0–255) depends on the largest of them all, and the labels are needed up front."""
    path = existing(cfg.path, "file")
    header = _header(path, cfg.label_column)
    count = len(header) - (cfg.label_column is not None)
    channels = 1 if math.isqrt(count) ** 2 == count else 3
    side = math.isqrt(count // channels)
    spill = tempfile.TemporaryFile(prefix="ganops-csv-")  # noqa: SIM115 - closed by the stream
    try:
        rows, high, label_chunks = _parse(path, header, cfg.label_column, spill)
        if rows == 0:
            raise GanopsError(f"{path}: no images (the file has a header row only)")
        if side * side * channels != count:
            raise GanopsError(f"{path}: {count} pixel columns is neither n² (grayscale) nor 3·n² (RGB)")
        labels = None
        if cfg.label_column is not None:
            labels = integer_labels(np.concatenate(label_chunks), str(path),
                                    lambda row: f"{_line(row)}, column {cfg.label_column!r}")
    except BaseException:
        spill.close()
        raise
    return ImageStream(
        count=rows,
        labels=labels,
        sources=NumberedNames(f"{path.name}:line ", rows, first=2),
        orig_shapes=uniform_shapes(rows, (side, side, channels)),
        chunks=_spilled_chunks(spill, rows, (side, side, channels), numbers_scale(np.dtype(np.float32), high),
                               cfg, str(path), chunk_images),
    )


def _spilled_chunks(spill: BinaryIO, rows: int, shape: tuple[int, int, int], scale: float, cfg: DataConfig,
                    where: str, chunk_images: int) -> Iterator[np.ndarray]:
    image_bytes = math.prod(shape) * 4
    with spill:
        spill.seek(0)
        for start in range(0, rows, chunk_images):
            count = min(chunk_images, rows - start)
            pixels = np.frombuffer(spill.read(count * image_bytes), np.float32).reshape(count, *shape)
            yield finish(scale_numbers(pixels, scale), cfg, where)
