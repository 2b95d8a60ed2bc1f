"""Headers are checked before memory is taken: a count, shape or length field that disagrees with the bytes
present fails with one line naming the file and the mismatch, quickly, and without a buffer of the claimed
size. The allocation is measured with tracemalloc (numpy reports its buffers to it): the hostile claims here
are 235 MB to 784 GB, the real data a few hundred KB."""

from __future__ import annotations

import gzip
import io
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ganops.config import DataConfig
from ganops.data import sources
from ganops.data.sources import csv as csv_source
from ganops.errors import GanopsError
from tests.data.sample_files import sample_images, write_csv, write_folder, write_idx
from tests.data.test_bad_inputs import run_prepare
from tests.helpers import write_params

BILLION = 10**9
PEAK_LIMIT = 128 << 20  # bytes: below every claim here, above what the real bytes (and a parser chunk) need
SECONDS_LIMIT = 20  # generous for 2 busy cores; the fixed loads take well under a second


def idx_file(path: Path, dims: tuple[int, ...], body: bytes, compress: bool) -> Path:
    """An IDX uint8 file whose header says `dims`, whatever `body` holds."""
    content = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + body
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


def three_hundred_images() -> bytes:
    images, _ = sample_images(count=300, side=28)  # random: gzip hardly shrinks them
    return images.tobytes()


def fails_small_and_fast(cfg: DataConfig) -> str:
    """The GanopsError message of loading `cfg`, after checking it is one line, came quickly and took no
    large allocation on the way."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(GanopsError) as caught:
            sources.load(cfg)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert "\n" not in message, message
    assert peak < PEAK_LIMIT, f"{peak:,} bytes allocated before: {message}"
    assert seconds < SECONDS_LIMIT, f"{seconds:.1f} s before: {message}"
    return message


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_idx_images_claiming_a_billion(tmp_path, compress):
    path = idx_file(tmp_path / "x-idx3-ubyte", (BILLION, 28, 28), three_hundred_images(), compress)
    message = fails_small_and_fast(DataConfig(source="idx", path=str(path), image_size=28))
    claim = f"{path}: {'' if compress else 'truncated body: '}header says 1,000,000,000×28×28 values = " \
            "784,000,000,000 bytes, "
    size = path.stat().st_size
    assert message == claim + (f"but a {size:,}-byte gzip file decompresses to at most {size * 1032:,} bytes"
                               if compress else "file has 235,200 bytes after its 16-byte header")


def test_idx_gzip_claim_within_the_deflate_bound_is_not_preallocated(tmp_path):
    """235 MB over 235 KB of random bytes: possible as far as the gzip file's size goes, but its trailer
    disagrees, so the body is read as it arrives instead of into a buffer of the claimed size."""
    path = idx_file(tmp_path / "x.gz", (300_000, 28, 28), three_hundred_images(), compress=True)
    assert path.stat().st_size * 1032 > 235_200_016  # inside the bound: the trailer is what catches it
    message = fails_small_and_fast(DataConfig(source="idx", path=str(path), image_size=28))
    assert message == (f"{path}: truncated body: header says 300,000×28×28 values = 235,200,000 bytes, "
                       "file has 235,200 bytes after its 16-byte header")


def test_idx_gzip_of_one_or_several_members_streams_in_pieces(tmp_path):
    """Whatever the members, the body is read as it arrives, a piece of whole images at a time (7 here), so
    memory never follows the header's claim; the pieces join to the file's images."""
    images, _ = sample_images(count=60, side=12)
    body = write_idx(tmp_path / "raw", images, compress=False).read_bytes()
    members, single = tmp_path / "members.gz", tmp_path / "single.gz"
    members.write_bytes(b"".join(gzip.compress(body[i:i + 1500]) for i in range(0, len(body), 1500)))
    single.write_bytes(gzip.compress(body))
    for path in (members, single):
        stream = sources.open_stream(DataConfig(source="idx", path=str(path), image_size=12), chunk_images=7)
        pieces = list(stream.chunks)
        assert [len(piece) for piece in pieces] == [7] * 8 + [4]
        np.testing.assert_array_equal(np.concatenate(pieces)[..., 0], images)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_idx_labels_claiming_more_than_present(tmp_path, compress):
    images, labels = sample_images(count=300, side=8)
    image_file = write_idx(tmp_path / "images.gz", images)
    label_file = idx_file(tmp_path / "labels-idx1-ubyte", (BILLION,), labels.astype(np.uint8).tobytes(), compress)
    message = fails_small_and_fast(DataConfig(source="idx", path=str(image_file), labels_path=str(label_file)))
    size = label_file.stat().st_size
    assert message == f"{label_file}: " + (
        f"header says 1,000,000,000 values = 1,000,000,000 bytes, but a {size:,}-byte gzip file "
        f"decompresses to at most {size * 1032:,} bytes" if compress else
        "truncated body: header says 1,000,000,000 values = 1,000,000,000 bytes, file has 300 bytes "
        "after its 8-byte header")


def test_idx_image_dimension_of_zero(tmp_path):
    """Zero-sized images make any count consistent with an empty body: a million of them from 16 bytes."""
    path = idx_file(tmp_path / "x-idx3-ubyte", (1_000_000, 0, 0), b"", compress=False)
    message = fails_small_and_fast(DataConfig(source="idx", path=str(path)))
    assert message == f"{path}: header says 1,000,000×0×0 images: an image dimension of 0"


def npz_with_lying_header(path: Path, compression: int, shape: tuple[int, ...]) -> tuple[Path, int]:
    """(path, .npy header size) of an archive whose member x.npy holds 300 images under a header of `shape`."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False, "shape": shape})
    header_size = member.tell()
    member.write(three_hundred_images())
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("x.npy", member.getvalue())
    return path, header_size


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"])
def test_npz_member_header_claiming_a_huge_shape(tmp_path, compression):
    path, header_size = npz_with_lying_header(tmp_path / "d.npz", compression, (BILLION, 28, 28))
    message = fails_small_and_fast(DataConfig(source="npz", path=str(path), image_size=28))
    assert message == (f"{path}: member x.npy: truncated array: header says 1,000,000,000×28×28 uint8 values = "
                       f"784,000,000,000 bytes, but the member holds 235,200 bytes after its "
                       f"{header_size}-byte header")


def test_npz_directory_claiming_more_than_the_archive_holds(tmp_path):
    """The zip directory's uncompressed size (what zipfile would return) agrees with the .npy header, but
    no deflate stream of this archive's size inflates that far."""
    claimed = 4_000_000_000
    path, header_size = npz_with_lying_header(tmp_path / "d.npz", zipfile.ZIP_DEFLATED, (1, claimed - 128))
    assert header_size == 128
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        at = data.index(signature) + offset
        data[at:at + 4] = claimed.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        compressed = archive.getinfo("x.npy").compress_size
    message = fails_small_and_fast(DataConfig(source="npz", path=str(path), image_size=28))
    assert message == (f"{path}: member x.npy: the zip directory says 4,000,000,000 bytes ({compressed:,} "
                       f"compressed), more than this {len(data):,}-byte archive can hold")


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A 1×1 PNG whose header (IHDR, CRC recomputed) says width×height: a few bytes that claim gigapixels."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")  # after signature, length, b"IHDR"
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def test_folder_png_claiming_gigapixels(tmp_path):
    assert Image.MAX_IMAGE_PIXELS  # PIL's decompression-bomb check is on (nothing in ganops turns it off)
    images, labels = sample_images(count=4, side=8, classes=2)
    root = write_folder(tmp_path / "pngs", images, labels)
    bomb = png_claiming(root / "1" / "bomb.png", 100_000, 100_000)
    message = fails_small_and_fast(DataConfig(source="folder", path=str(root)))
    assert message.startswith(f"{bomb}: cannot read image (Image size (10000000000 pixels) exceeds limit of ")
    assert message.endswith("; set data.skip_unreadable: true to skip them")


def test_folder_image_over_the_pixel_limit_fails_or_is_skipped(tmp_path, monkeypatch):
    """Between PIL's limit and twice it, PIL only warns and decodes anyway: here that is unreadable too
    (the limit is lowered so that a 40×40 image is over it)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    images, labels = sample_images(count=4, side=8, classes=2)
    root = write_folder(tmp_path / "pngs", images, labels)
    Image.new("L", (40, 40)).save(root / "0" / "big.png")
    message = fails_small_and_fast(DataConfig(source="folder", path=str(root)))
    assert message.startswith(f"{root / '0' / 'big.png'}: cannot read image (Image size (1600 pixels) exceeds "
                              "limit of 1000 pixels")
    loaded = sources.load(DataConfig(source="folder", path=str(root), skip_unreadable=True))
    assert len(loaded) == 4 and [Path(f).name for f, _ in loaded.skipped] == ["big.png"]


def wide_csv(path: Path, rows: int, cell: str) -> Path:
    """A 2,500-column header (50×50 images) over rows of one cell each: pandas pads each short row to the
    header's width, so 37 KB of text would become 100 MB of float32 cells, 25 million strings."""
    path.write_text(",".join(f"p{i}" for i in range(2_500)) + "\n" + f"{cell}\n" * rows)
    return path


def count_parsed_cells(monkeypatch) -> list[int]:
    """The cell count of every table `pd.read_csv` builds from now on, chunks counted as they are read.
    Deterministic, and it sees pandas' pyarrow-backed string tables, which tracemalloc does not."""
    cells: list[int] = []
    read_csv = pd.read_csv

    def counted(chunks):
        for chunk in chunks:
            cells.append(chunk.size)
            yield chunk

    def counting_read_csv(*args, **kwargs):
        result = read_csv(*args, **kwargs)
        if isinstance(result, pd.DataFrame):
            cells.append(result.size)
            return result
        return counted(result)

    monkeypatch.setattr(pd, "read_csv", counting_read_csv)
    return cells


@pytest.mark.parametrize(("cell", "problem"), [("0", "column 'p1': missing or non-finite pixel value"),
                                               ("x", "column 'p0': pixel 'x' is not a number")],
                         ids=["short-rows", "short-rows-not-numbers"])
def test_csv_wide_header_over_short_rows(tmp_path, monkeypatch, cell, problem):
    """The rows a chunk parses are bounded by bytes (here 1 MB, not 16, to keep the test fast), and reading
    stops at the first chunk holding a bad or missing pixel: the padded table is never built, by the fast
    read nor by the diagnostic pass that names the bad cell."""
    monkeypatch.setattr(csv_source, "_CHUNK_BYTES", 1 << 20)
    path = wide_csv(tmp_path / "t.csv", 10_000, cell)
    cells = count_parsed_cells(monkeypatch)
    message = fails_small_and_fast(DataConfig(source="csv", path=str(path), label_column=None))
    assert message == f"{path}: line 2, {problem}"
    assert sum(cells) <= 2_500 * 200, cells  # ≤ 200 padded rows in all, of the 10,000


def test_csv_bad_cell_named_from_a_later_chunk(tmp_path, monkeypatch):
    """The diagnostic pass reads in chunks too (3 rows each here): the line it names counts across them."""
    monkeypatch.setattr(csv_source, "_CHUNK_BYTES", 3 * 16 * 64)
    images, _ = sample_images(count=10, side=4)
    path = write_csv(tmp_path / "t.csv", images, None)
    lines = path.read_text().splitlines()
    lines[7] = lines[7].rsplit(",", 2)[0] + ",abc," + lines[7].rsplit(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    message = fails_small_and_fast(DataConfig(source="csv", path=str(path), label_column=None))
    assert message == f"{path}: line 8, column 'p14': pixel 'abc' is not a number"


def test_prepare_stage_rejects_a_lying_idx_header(tmp_path):
    path = idx_file(tmp_path / "x-idx3-ubyte", (BILLION, 28, 28), three_hundred_images(), compress=False)
    stage = tmp_path / "stage"
    result = run_prepare(write_params(tmp_path / "params.yaml", data={"source": "idx", "path": str(path)}),
                         stage / "prepared")
    assert result.returncode == 1, result.stderr
    assert result.stderr == (f"ganops prepare: error: {path}: truncated body: header says 1,000,000,000×28×28 "
                             "values = 784,000,000,000 bytes, file has 235,200 bytes after its 16-byte header\n")
    assert result.stdout == ""
    assert not stage.exists() or not any(stage.iterdir())
