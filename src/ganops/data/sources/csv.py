"""CSV tables read with pandas: a header row, one image per row, optional integer label column.

Every column but `data.label_column` is a pixel, in the order of `image.reshape(-1)` (H, W, C):
a row of n² values is an n×n grayscale image, one of 3·n² values an n×n RGB image. Pixels are 0–255
or 0–1 (see `common.unit_from_numbers`). Lines in messages count from 1 with the header as line 1.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ganops.config import DataConfig
from ganops.data.sources.common import (
    LoadedImages,
    existing,
    finish,
    integer_labels,
    uniform_shapes,
    unit_from_numbers,
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


def load(cfg: DataConfig) -> LoadedImages:
    path = existing(cfg.path, "file")
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
    except pd.errors.EmptyDataError:
        raise GanopsError(f"{path}: empty file (expected a header row, then one image per row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise GanopsError(f"{path}: not a readable CSV file ({str(exc).strip().splitlines()[-1]})") from None
    if any(_is_number(name) for name in header):
        raise GanopsError(f"{path}: the first line looks like data, not a header row of column names")
    label_column = cfg.label_column
    if label_column is not None and label_column not in header:
        raise GanopsError(f"{path}: no label column {label_column!r} (data.label_column; null when unlabelled)")
    pixel_columns = [name for name in header if name != label_column]

    # The C parser in chunks of float32 rows: pyarrow's parser is faster on an idle machine but holds
    # the whole text and a second copy of the table, over 1 GB for 70,000 28×28 rows.
    pixel_chunks, label_chunks = [], []
    try:
        for chunk in pd.read_csv(path, dtype=dict.fromkeys(pixel_columns, np.float32),
                                 chunksize=_chunk_rows(len(header), 4)):
            if label_column is not None:
                label_chunks.append(chunk.pop(label_column).to_numpy())
            # to_numpy() is column-major here: make each image's pixels contiguous (prepare gathers rows).
            pixel_chunks.append(np.ascontiguousarray(chunk.to_numpy(dtype=np.float32)))
            if not np.isfinite(pixel_chunks[-1]).all():  # an error below whatever follows (short rows too):
                break  # stop before the rest of the file is padded to the header's width
    except (ValueError, pd.errors.ParserError):
        raise GanopsError(f"{path}: {_first_bad_cell(path, pixel_columns)}") from None
    if not pixel_chunks or sum(len(c) for c in pixel_chunks) == 0:
        raise GanopsError(f"{path}: no images (the file has a header row only)")
    pixels = np.concatenate(pixel_chunks)
    del pixel_chunks

    count = len(pixel_columns)
    channels = 1 if math.isqrt(count) ** 2 == count else 3
    side = math.isqrt(count // channels)
    if side * side * channels != count:
        raise GanopsError(f"{path}: {count} pixel columns is neither n² (grayscale) nor 3·n² (RGB)")
    labels = None
    if label_column is not None:
        labels = integer_labels(np.concatenate(label_chunks), str(path),
                                lambda row: f"{_line(row)}, column {label_column!r}")
    images01 = unit_from_numbers(
        pixels, str(path), lambda flat: f"{_line(flat // count)}, column {pixel_columns[flat % count]!r}")
    del pixels
    return LoadedImages(
        images=finish(images01.reshape(-1, side, side, channels), cfg, str(path)),
        labels=labels,
        sources=[f"{path.name}:{_line(i)}" for i in range(len(images01))],
        orig_shapes=uniform_shapes(len(images01), (side, side, channels)),
    )
