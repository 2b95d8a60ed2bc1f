"""Prepare reads its source once, in bounded pieces: the same files out as when every image was loaded at once
(fingerprints pinned from that implementation, commit 1bd054b), the same files whatever the piece size, nothing
half-written when the source fails mid-way, and a peak memory that does not grow with the data."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ganops import artifacts, shards
from ganops.config import DataConfig
from ganops.data import prepare, sources
from ganops.errors import GanopsError
from tests.data.sample_files import sample_images, write_csv, write_folder, write_idx

# case → (data hash, sha1 of the case's fingerprint), both recorded with the load-everything prepare of 1bd054b.
PINNED = {
    "digits": ("95477b66a3f260a533c82a850adc37b72a355c48", "2cd8dde20752ed89"),
    "digits_rgb28": ("1497fed50f69a48e1eac2deb597b33ac3bed9f9b", "dec279f41cea288e"),
    "npz": ("ce34230b3aceecfa36aaed1774d39e8d2b236d91", "aeadf64ba322d74a"),
    "npz_resize": ("c325ad5f3a4df4b35e38fd7ea3c1e90792e1389e", "d1d80acc67e5e23a"),
    "npz_compressed_float": ("3f4c513be15649d9050d51b4f0f8ba6c0489d09b", "f5a3dba793178f05"),
    "idx": ("ce34230b3aceecfa36aaed1774d39e8d2b236d91", "92c9ca74bed1ee03"),
    "idx_resize_max": ("757c05d7863eabe796e4239a4fd68c4c67aca230", "c0d52a4658fa01ab"),
    "csv": ("ce34230b3aceecfa36aaed1774d39e8d2b236d91", "f94aec5daf6da5cf"),
    "folder": ("094768b51fd45ff89ca8223f3521a6b2edb1977d", "ce48ffb7b3fc4e70"),
    "folder_flat": ("445aaca7e2b38b7b750997d732ceafb72c829d12", "afa91a23d5c6cb22"),
}
# Cases at their own size: no resize, so any piece size gives the same bytes. A resize's float rounding depends
# on its batch, so resized cases are the same only at piece sizes that are multiples of sources.CHUNK_IMAGES.
NATIVE = ["digits", "npz", "npz_compressed_float", "idx", "csv", "folder"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, DataConfig]:
    tmp = tmp_path_factory.mktemp("inputs")
    images, labels = sample_images(97, side=12, classes=3, seed=5)
    rgb = np.random.default_rng(6).integers(0, 256, (53, 10, 10, 3), dtype=np.uint8)
    np.savez(tmp / "a.npz", x=images, y=labels)
    np.savez_compressed(tmp / "c.npz", x=rgb.astype(np.float32) / 255)
    write_idx(tmp / "i.gz", images)
    write_idx(tmp / "l.gz", labels.astype(np.uint8))
    write_csv(tmp / "t.csv", images, labels)
    write_folder(tmp / "f", images, labels)
    write_folder(tmp / "g", rgb[:, :, :, 0], None)
    return {
        "digits": DataConfig(),
        "digits_rgb28": DataConfig(max_images=150, image_size=28, channels=3),
        "npz": DataConfig(source="npz", path=str(tmp / "a.npz"), image_size=12),
        "npz_resize": DataConfig(source="npz", path=str(tmp / "a.npz"), image_size=8, channels=3),
        "npz_compressed_float": DataConfig(source="npz", path=str(tmp / "c.npz"), image_size=10, channels=3),
        "idx": DataConfig(source="idx", path=str(tmp / "i.gz"), labels_path=str(tmp / "l.gz"), image_size=12),
        "idx_resize_max": DataConfig(source="idx", path=str(tmp / "i.gz"), image_size=16, max_images=60),
        "csv": DataConfig(source="csv", path=str(tmp / "t.csv"), image_size=12),
        "folder": DataConfig(source="folder", path=str(tmp / "f"), image_size=12),
        "folder_flat": DataConfig(source="folder", path=str(tmp / "g"), image_size=8, channels=3),
    }


def fingerprint(folder: Path) -> dict:
    """Every byte of the shards and indexes, the summary table's values, the dataset info, the provenance
    (less the input paths, which differ between runs)."""
    found: dict = {}
    for split in artifacts.SPLITS:
        digest = hashlib.sha1()
        for path in sorted((folder / split).iterdir()):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        found[split] = digest.hexdigest()
    summary = artifacts.read_summary(folder / artifacts.PreparedData.SUMMARY_FILE)
    found["summary"] = hashlib.sha1(summary.to_csv(index=False).encode()).hexdigest()
    found["dataset"] = json.loads((folder / artifacts.PreparedData.INFO_FILE).read_text())
    provenance = json.loads((folder / artifacts.PreparedData.SOURCE_FILE).read_text())
    found["source"] = {k: v for k, v in provenance.items() if k not in ("path", "labels_path")}
    return found


@pytest.mark.parametrize(("case", "chunk_images"), [(case, sources.CHUNK_IMAGES) for case in PINNED]
                         + [(case, 7) for case in NATIVE])
def test_prepare_writes_what_the_load_everything_prepare_wrote(tmp_path, inputs, case, chunk_images):
    info = prepare.run(inputs[case], tmp_path / "out", chunk_images=chunk_images)
    found = fingerprint(tmp_path / "out")
    assert (info.data_hash, hashlib.sha1(json.dumps(found, sort_keys=True).encode()).hexdigest()[:16]) \
        == PINNED[case], found


@pytest.mark.parametrize("case", NATIVE)
def test_each_source_streams_in_pieces(inputs, case):
    """Pieces of 7 images (the last one shorter), in order, joining to the images loaded in one piece."""
    cfg = inputs[case]
    stream = sources.open_stream(cfg, chunk_images=7)
    pieces = list(stream.chunks)
    assert [len(p) for p in pieces] == [7] * (stream.count // 7) + ([stream.count % 7] if stream.count % 7 else [])
    whole = sources.load(cfg, chunk_images=sources.CHUNK_IMAGES)
    np.testing.assert_array_equal(np.concatenate(pieces), whole.images)
    assert list(stream.sources) == list(whole.sources) and len(stream.orig_shapes) == stream.count


def test_shard_writer_writes_what_np_save_writes_from_pieces_of_any_size(tmp_path):
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (23, 4, 4, 3), dtype=np.uint8), np.arange(23) % 5
    (tmp_path / "streamed").mkdir()
    with shards.ShardWriter(tmp_path / "streamed", (4, 4, 3), 23, labelled=True, shard_bytes=5 * 48) as writer:
        for start, stop in ((0, 1), (1, 1), (1, 9), (9, 10), (10, 23)):
            writer.append(images[start:stop], labels[start:stop])
    for number, start in enumerate(range(0, 23, 5)):  # 5 a shard: np.save of each slice, byte for byte
        np.save(tmp_path / "expected.npy", images[start:start + 5])
        assert (tmp_path / "streamed" / f"images-{number:05d}.npy").read_bytes() == \
            (tmp_path / "expected.npy").read_bytes()
    split = shards.ShardedSplit.open(tmp_path / "streamed")
    assert split.counts == (5, 5, 5, 5, 3)
    read, read_labels = split.read_all()
    np.testing.assert_array_equal(read, images)
    np.testing.assert_array_equal(read_labels, labels)
    (tmp_path / "short").mkdir()
    with pytest.raises(ValueError, match="2 images written of a split of 3"), \
            shards.ShardWriter(tmp_path / "short", (4, 4, 3), 3, labelled=False) as writer:
        writer.append(images[:2], None)


def test_a_source_failing_mid_way_leaves_the_previous_output_and_a_rerun_works(tmp_path):
    """A gzip file cut short fails only when its stream ends, after earlier pieces went to their shards: the
    previous output stays as it was, no temporary folder is left, and a run on the whole file then works."""
    images, _ = sample_images(count=3000, side=28, classes=10, seed=2)
    good = write_idx(tmp_path / "good.gz", images)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[:len(good.read_bytes()) * 3 // 4])
    out = tmp_path / "stage" / "prepared"
    before = prepare.run(DataConfig(max_images=300), out)
    listing = {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    with pytest.raises(GanopsError, match=r"cut\.gz: truncated gzip stream"):
        prepare.run(DataConfig(source="idx", path=str(cut), image_size=28), out, chunk_images=100)
    assert [p.name for p in (tmp_path / "stage").iterdir()] == ["prepared"]
    assert {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()} == listing
    assert artifacts.read_dataset_info(artifacts.PreparedData(out).info_path) == before
    after = prepare.run(DataConfig(source="idx", path=str(good), image_size=28), out, chunk_images=100)
    assert after.train_count + after.validation_count + after.test_count == 3000
    np.testing.assert_array_equal(np.sort(np.concatenate(
        [artifacts.PreparedData(out).open_split(name).read_all()[0] for name in artifacts.SPLITS]).reshape(3000, -1),
        axis=0), np.sort(images.reshape(3000, -1), axis=0))


def write_large_npz(path: Path, count: int, shape: tuple[int, ...]) -> int:
    """An uncompressed npz of `count` uint8 images written a block at a time (never whole in memory);
    returns the pixel bytes."""
    image_bytes = int(np.prod(shape))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive, \
            archive.open("x.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (count, *shape)})
        rng = np.random.default_rng(0)
        for start in range(0, count, 2000):
            member.write(rng.bytes(min(2000, count - start) * image_bytes))
    return count * image_bytes


PEAK_SCRIPT = textwrap.dedent("""
    import json, pathlib, sys
    import pyarrow.parquet
    from ganops.config import DataConfig
    from ganops.data import prepare
    if sys.argv[1] != "-":
        prepare.run(DataConfig(**json.loads(sys.argv[1])), sys.argv[2])
    status = pathlib.Path("/proc/self/status").read_text()
    print(next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")))
""")


def peak_resident_bytes(*args: str) -> int:
    """The peak resident memory of a fresh interpreter that imports prepare and, given a config, runs it."""
    result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, *args], capture_output=True, text=True,
                            check=True, timeout=120)
    return int(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_peak_memory_does_not_grow_with_the_data(tmp_path):
    """60,000 64×64×3 images (737 MB of pixels) raise the peak by less than half their size over an
    interpreter that only imports prepare: a few pieces of 4,096 images (50 MB each: two read, one quantised,
    one being written) and the shards' labels, not the data."""
    data_bytes = write_large_npz(tmp_path / "big.npz", 60_000, (64, 64, 3))
    baseline = peak_resident_bytes("-")
    cfg = {"source": "npz", "path": str(tmp_path / "big.npz"), "image_size": 64, "channels": 3}
    peak = peak_resident_bytes(json.dumps(cfg), str(tmp_path / "prepared"))
    assert artifacts.PreparedData(tmp_path / "prepared").read_info().train_count > 0
    assert peak - baseline < data_bytes / 2, f"peak {peak / 2**20:.0f} MB over {baseline / 2**20:.0f} MB"


def test_a_folder_file_that_fails_mid_stream_is_skipped_by_a_second_pass(tmp_path):
    """Files are counted readable until decoded; a truncated one found in a later piece (skipping on) sends
    prepare through the folder again without it: the same output as a folder that never held it."""
    images, labels = sample_images(count=30, side=8, classes=2, seed=3)
    whole = write_folder(tmp_path / "whole", images, labels)
    without = write_folder(tmp_path / "without", images, labels)
    victim = whole / "1" / "00025.png"
    victim.write_bytes(victim.read_bytes()[:60])
    (without / "1" / "00025.png").unlink()
    skipping = prepare.run(DataConfig(source="folder", path=str(whole), image_size=8, skip_unreadable=True),
                           tmp_path / "a", chunk_images=7)
    assert skipping == prepare.run(DataConfig(source="folder", path=str(without), image_size=8), tmp_path / "b",
                                   chunk_images=7)
    provenance = artifacts.read_json(tmp_path / "a" / artifacts.PreparedData.SOURCE_FILE)
    assert [(Path(s["file"]).name, s["problem"][:19]) for s in provenance["skipped"]] == \
        [("00025.png", "cannot read image (")]


def test_a_piece_memory_cannot_hold_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    def exhausted(*_args):
        raise MemoryError

    monkeypatch.setattr(prepare, "_prepare", exhausted)
    with pytest.raises(GanopsError, match=r"^digits: not enough memory to read pieces of 4,096 images at their "
                                          r"original size$"):
        prepare.run(DataConfig(), tmp_path / "prepared")
    assert list(tmp_path.iterdir()) == []
