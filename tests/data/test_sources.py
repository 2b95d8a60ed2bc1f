"""Every source on small files the tests write themselves: same images in, same arrays out."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ganops.config import DataConfig
from ganops.data import prepare, sources
from ganops.data.sources import folder
from ganops.errors import GanopsError
from tests.data.sample_files import sample_images, write_csv, write_folder, write_idx


@pytest.fixture(scope="module")
def images_and_labels():
    return sample_images(count=60, side=12, classes=3)


def expected01(images):
    return (images.astype(np.float32) / 255.0)[..., None]


def test_idx_gzip_and_raw_with_labels(tmp_path, images_and_labels):
    images, labels = images_and_labels
    for compress in (True, False):
        image_file = write_idx(tmp_path / f"img{compress}", images, compress)
        label_file = write_idx(tmp_path / f"lab{compress}", labels.astype(np.uint8), compress)
        loaded = sources.load(DataConfig(source="idx", path=str(image_file), labels_path=str(label_file),
                                         image_size=12))
        assert loaded.images.dtype == np.uint8  # no resize: prepare scales the file's own bytes
        np.testing.assert_allclose(loaded.unit_images(), expected01(images), atol=1e-7)
        np.testing.assert_array_equal(loaded.labels, labels)
        assert loaded.sources[3] == f"img{compress}:3"
        assert (loaded.orig_shapes == [12, 12, 1]).all()


def test_npz_with_and_without_labels_and_float_scale(tmp_path, images_and_labels):
    images, labels = images_and_labels
    np.savez(tmp_path / "a.npz", x=images, y=labels)
    np.savez(tmp_path / "b.npz", x=images.astype(np.float32) / 255.0)  # 0–1 floats, unlabelled
    a = sources.load(DataConfig(source="npz", path=str(tmp_path / "a.npz"), image_size=12))
    b = sources.load(DataConfig(source="npz", path=str(tmp_path / "b.npz"), image_size=12))
    np.testing.assert_allclose(a.unit_images(), expected01(images), atol=1e-7)
    np.testing.assert_allclose(b.images, a.unit_images(), atol=1e-6)
    np.testing.assert_array_equal(a.labels, labels)
    assert b.labels is None


def test_csv_0_255_and_0_1_labelled_and_not(tmp_path, images_and_labels):
    images, labels = images_and_labels
    write_csv(tmp_path / "a.csv", images, labels)
    write_csv(tmp_path / "b.csv", images, None, scale=255.0)
    a = sources.load(DataConfig(source="csv", path=str(tmp_path / "a.csv"), image_size=12))
    b = sources.load(DataConfig(source="csv", path=str(tmp_path / "b.csv"), image_size=12, label_column=None))
    np.testing.assert_allclose(a.images, expected01(images), atol=1e-7)
    np.testing.assert_allclose(b.images, a.images, atol=1e-6)
    np.testing.assert_array_equal(a.labels, labels)
    assert b.labels is None and a.sources[0] == "a.csv:line 2"
    assert a.images.flags.c_contiguous  # each image's pixels together: prepare gathers whole images


@pytest.mark.parametrize("suffix", [".png", ".bmp"])
def test_folder_with_class_subfolders_and_flat(tmp_path, images_and_labels, suffix):
    images, labels = images_and_labels
    write_folder(tmp_path / "classes", images, labels, suffix)
    write_folder(tmp_path / "flat", images, None, suffix)
    by_class = sources.load(DataConfig(source="folder", path=str(tmp_path / "classes"), image_size=12))
    flat = sources.load(DataConfig(source="folder", path=str(tmp_path / "flat"), image_size=12))
    order = np.argsort(labels, kind="stable")  # class folders are read in label order
    np.testing.assert_allclose(by_class.images, expected01(images)[order], atol=1e-7)
    np.testing.assert_array_equal(by_class.labels, labels[order])
    assert by_class.classes == {0: "0", 1: "1", 2: "2"}
    np.testing.assert_allclose(flat.images, expected01(images), atol=1e-7)
    assert flat.labels is None and flat.sources[0] == f"00000{suffix}"


def test_folder_jpeg_rgb_named_classes_and_sizes(tmp_path):
    rng = np.random.default_rng(1)
    for name, side in (("cat", 20), ("dog", 16)):
        (tmp_path / name).mkdir()
        for i in range(3):
            pixels = rng.integers(0, 256, (side, side + 4, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.jpg", quality=95)
    loaded = sources.load(DataConfig(source="folder", path=str(tmp_path), image_size=8, channels=3))
    assert loaded.images.shape == (6, 8, 8, 3)
    assert loaded.classes == {0: "cat", 1: "dog"}
    np.testing.assert_array_equal(loaded.labels, [0, 0, 0, 1, 1, 1])
    assert loaded.orig_shapes[0].tolist() == [20, 24, 3] and loaded.orig_shapes[-1].tolist() == [16, 20, 3]
    assert loaded.images.min() >= 0.0 and loaded.images.max() <= 1.0


def test_folder_mixed_channels_convert_when_allowed(tmp_path):
    gray = np.full((10, 10), 200, dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "a.png")
    Image.fromarray(np.stack([gray] * 3, axis=-1)).save(tmp_path / "b.png")
    loaded = sources.load(DataConfig(source="folder", path=str(tmp_path), image_size=10,
                                     convert_mixed_channels=True))
    np.testing.assert_allclose(loaded.images[0], loaded.images[1], atol=1e-6)  # luma of gray RGB is gray


def test_parallel_folder_decode_matches_serial(tmp_path, images_and_labels):
    images, _ = images_and_labels
    write_folder(tmp_path, images, None)
    paths = sorted(str(p) for p in tmp_path.iterdir())
    serial = folder.decode_all(paths, workers=1)
    parallel = folder.decode_all(paths, workers=2)
    assert len(parallel) == len(serial) == len(images)
    for (a, kind_a), (b, kind_b) in zip(serial, parallel, strict=False):
        np.testing.assert_array_equal(a, b)
        assert kind_a == kind_b == "grayscale"


def test_resize_to_is_pil_bicubic_per_image():
    rng = np.random.default_rng(2)
    batch = rng.random((5, 28, 20, 3), dtype=np.float32)
    for size in (8, 32):
        resized = sources.resize_to(batch, size)
        for i in range(len(batch)):
            for c in range(3):
                plane = Image.fromarray(batch[i, :, :, c]).resize((size, size), sources.RESIZE_FILTER)
                np.testing.assert_allclose(resized[i, :, :, c], np.clip(np.asarray(plane), 0, 1), atol=1e-5)


def test_gray_sources_expand_to_rgb(tmp_path, images_and_labels):
    images, _ = images_and_labels
    path = write_idx(tmp_path / "img.gz", images)
    loaded = sources.load(DataConfig(source="idx", path=str(path), image_size=16, channels=3))
    assert loaded.images.shape == (60, 16, 16, 3)
    np.testing.assert_array_equal(loaded.images[..., 0], loaded.images[..., 2])
    native = sources.load(DataConfig(source="idx", path=str(path), image_size=12, channels=3))
    assert native.images.dtype == np.uint8 and native.images.shape == (60, 12, 12, 3)
    np.testing.assert_array_equal(native.images, np.repeat(images[..., None], 3, axis=-1))


def test_idx_gzip_members_and_trailing_bytes(tmp_path, images_and_labels):
    import gzip

    images, _ = images_and_labels
    body = write_idx(tmp_path / "raw", images, compress=False).read_bytes()
    (tmp_path / "members.gz").write_bytes(gzip.compress(body[:1000]) + gzip.compress(body[1000:]))
    loaded = sources.load(DataConfig(source="idx", path=str(tmp_path / "members.gz"), image_size=12))
    np.testing.assert_array_equal(loaded.images[..., 0], images)
    (tmp_path / "long.gz").write_bytes(gzip.compress(body + b"\0" * 7))
    with pytest.raises(GanopsError, match=r"long.gz: trailing bytes after the body: header says 60×12×12 "
                                          r"values = 8,640 bytes, file has 8,647"):
        sources.load(DataConfig(source="idx", path=str(tmp_path / "long.gz"), image_size=12))
    (tmp_path / "short").write_bytes(body[:10])
    with pytest.raises(GanopsError, match=r"short: truncated IDX header \(10 bytes, expected 16\)"):
        sources.load(DataConfig(source="idx", path=str(tmp_path / "short"), image_size=12))
    damaged = bytearray(gzip.compress(body))
    damaged[-8] ^= 0xFF  # the CRC of the uncompressed data
    (tmp_path / "crc.gz").write_bytes(bytes(damaged))
    with pytest.raises(GanopsError, match=r"crc.gz: corrupt gzip stream"):
        sources.load(DataConfig(source="idx", path=str(tmp_path / "crc.gz"), image_size=12))


@pytest.mark.parametrize("image_size", [10, 12], ids=["resized", "native"])
def test_every_source_prepares_the_same_data(tmp_path, images_and_labels, image_size):
    """Same unlabelled images through each format → identical prepared pixels (the same data hash),
    whether resized (floats everywhere) or at their own size (uint8 from idx and npz, floats from the rest)."""
    images, _ = images_and_labels
    np.savez(tmp_path / "x.npz", x=images)
    configs = [
        DataConfig(source="idx", path=str(write_idx(tmp_path / "x.gz", images))),
        DataConfig(source="npz", path=str(tmp_path / "x.npz")),
        DataConfig(source="csv", path=str(write_csv(tmp_path / "x.csv", images, None)), label_column=None),
        DataConfig(source="folder", path=str(write_folder(tmp_path / "pngs", images, None))),
    ]
    hashes = {cfg.source: prepare.run(cfg.model_copy(update={"image_size": image_size}), tmp_path / cfg.source).data_hash
              for cfg in configs}
    assert len(set(hashes.values())) == 1, hashes


def test_idx_read_in_the_background_prepares_like_npz(tmp_path):
    """A body larger than one decompressed piece (4 MB) arrives while prepare already scales its first
    images: same result as the npz source, and a truncated file still fails with nothing written."""
    images, labels = sample_images(count=7000, side=28, classes=10, seed=4)
    np.savez(tmp_path / "x.npz", x=images, y=labels)
    gz = write_idx(tmp_path / "x.gz", images)
    label_file = write_idx(tmp_path / "y.gz", labels.astype(np.uint8))
    via_idx = prepare.run(DataConfig(source="idx", path=str(gz), labels_path=str(label_file), image_size=28),
                          tmp_path / "idx")
    via_npz = prepare.run(DataConfig(source="npz", path=str(tmp_path / "x.npz"), image_size=28), tmp_path / "npz")
    assert via_idx.data_hash == via_npz.data_hash
    gz.write_bytes(gz.read_bytes()[:-1_000_000])
    with pytest.raises(GanopsError, match=r"x.gz: truncated gzip stream"):
        prepare.run(DataConfig(source="idx", path=str(gz), image_size=28), tmp_path / "stage" / "out")
    assert not any((tmp_path / "stage").iterdir())
