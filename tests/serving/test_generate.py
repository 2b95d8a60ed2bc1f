"""`ganops generate` loads a registered generator by alias from the local store and writes PNGs and a grid."""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from ganops.cli import app
from ganops.registry import serving
from tests.helpers import (
    IMAGE_SHAPE,
    metrics,
    register_version,
    save_tiny_generator,
    write_params,
)


def test_generate_by_alias_writes_pngs_and_a_grid(store, tmp_path):
    register_version(save_tiny_generator(tmp_path / "generator.keras"), metrics(2.0))
    out = tmp_path / "samples"
    result = CliRunner().invoke(app, ["generate", "--model", "models:/gan-generator@champion", "-n", "12",
                                      "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"wrote 12 images and grid.png to {out} from "
                                          "models:/gan-generator@champion")
    pngs = sorted(out.glob("0*.png"))
    assert [p.name for p in pngs] == [f"{i:04d}.png" for i in range(12)]
    first = np.asarray(Image.open(pngs[0]))
    assert first.shape == IMAGE_SHAPE[:2] and first.dtype == np.uint8
    assert Image.open(out / "grid.png").size[0] > IMAGE_SHAPE[1] * 3

    # Same seed, same pictures as the registered model's own sampling.
    model = serving.generator_model(serving.load("models:/gan-generator@champion"))
    from ganops import shards

    np.testing.assert_array_equal(first, shards.from_signed(model.images(12, seed=3))[0, ..., 0])


def test_generate_defaults_to_the_champion_named_in_params(store, tmp_path):
    register_version(save_tiny_generator(tmp_path / "generator.keras"), metrics(2.0))
    params = write_params(tmp_path / "params.yaml")
    result = CliRunner().invoke(app, ["generate", "--params", str(params), "-n", "2", "--out",
                                      str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "from models:/gan-generator@champion" in result.output


def test_generate_with_an_unknown_alias_is_a_one_line_error(store, tmp_path):
    result = CliRunner().invoke(app, ["generate", "--model", "models:/gan-generator@nope", "--out",
                                      str(tmp_path / "s")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("ganops generate: error: models:/gan-generator@nope:")


def test_generate_per_class_writes_a_labelled_folder_the_folder_source_reads_back(store, tmp_path):
    register_version(save_tiny_generator(tmp_path / "generator.keras", num_classes=3), metrics(2.0))
    out = tmp_path / "synthetic"
    result = CliRunner().invoke(app, ["generate", "--model", "models:/gan-generator@champion", "--per-class", "4",
                                      "--seed", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"wrote 12 images (4 a class) into class folders of {out} from "
                                          "models:/gan-generator@champion")
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "2"]
    model = serving.generator_model(serving.load("models:/gan-generator@champion"))
    from ganops import shards

    np.testing.assert_array_equal(np.asarray(Image.open(out / "2" / "0003.png")),
                                  shards.from_signed(model.images(4, seed=1 * 3 + 2, label=2))[3, ..., 0])

    from ganops.config import DataConfig
    from ganops.data import sources

    loaded = sources.load(DataConfig(source="folder", path=str(out), image_size=IMAGE_SHAPE[0]))
    assert len(loaded) == 12 and np.bincount(loaded.labels).tolist() == [4, 4, 4]


def test_generate_per_class_refuses_what_it_cannot_do_in_one_line(store, tmp_path):
    register_version(save_tiny_generator(tmp_path / "generator.keras"), metrics(2.0))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep me")
    cases = [(["--per-class", "2", "--out", str(tmp_path / "new")], "--per-class needs a conditional generator"),
             (["--per-class", "2", "-n", "4", "--out", str(tmp_path / "new")], "--per-class writes every class"),
             (["--per-class", "2", "--out", str(taken)], "exists and is not an empty folder")]
    for arguments, message in cases:
        result = CliRunner().invoke(app, ["generate", "--model", "models:/gan-generator@champion", *arguments])
        assert result.exit_code == 1, result.output
        last = result.output.strip().splitlines()[-1]
        assert last.startswith("ganops generate: error: ") and message in last, last
    assert not (tmp_path / "new").exists() and [p.name for p in taken.iterdir()] == ["mine.txt"]
