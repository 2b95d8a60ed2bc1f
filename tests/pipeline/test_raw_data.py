"""Raw images under DVC: `dvc add` them into data/raw, and an edit in place reruns prepare and what follows
(a real `dvc add` / edit / `dvc repro` cycle in a temporary git repository)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from ganops import artifacts
from ganops.config import DataConfig
from ganops.data import prepare
from tests.helpers import write_shrunk_params

RAW = "data/raw/digits"


def _run(args, cwd, env):
    done = subprocess.run(args, cwd=cwd, env=env, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def _write_images(folder: Path, invert_first: int = 0) -> None:
    digits = load_digits()
    images = (digits.images[:400] * 15).astype(np.uint8)  # 0–16 → 0–240
    images[:invert_first] = 255 - images[:invert_first]
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "images.npz", x=images, y=digits.target[:400])


@pytest.fixture
def raw_repo(tmp_path, repo_root):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(repo_root / name, repo / name)
    for name in ("pipeline", "src", "data/raw"):
        shutil.copytree(repo_root / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # All 400 images of the raw file; only prepare and validate run.
    write_shrunk_params(repo / "params.yaml", data={"source": "npz", "path": f"{RAW}/images.npz", "max_images": None})
    _write_images(repo / RAW)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q", "-b", "main"], repo, env)
    _run([*dvc, "init", "-q"], repo, env)
    _run([*dvc, "config", "core.analytics", "false"], repo, env)
    _run([*dvc, "add", "-q", RAW], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "raw images under DVC"], repo, env)
    return repo, env, dvc


def _data_hash(repo: Path) -> str:
    return json.loads((repo / "data/prepared" / artifacts.PreparedData.INFO_FILE).read_text())["data_hash"]


def test_editing_a_raw_file_reruns_prepare_and_what_follows(raw_repo):
    repo, env, dvc = raw_repo
    first = _run([*dvc, "repro", "validate"], repo, env)
    assert {"prepare", "validate"} <= set(re.findall(r"Running stage '(\w+)'", first.stdout))
    assert "outside" not in first.stderr  # data.path is inside data/raw: no note
    before, tracked = _data_hash(repo), (repo / f"{RAW}.dvc").read_text()
    assert "Running stage" not in _run([*dvc, "repro", "validate"], repo, env).stdout

    _write_images(repo / RAW, invert_first=10)  # an edit in place: same file name, new pixels
    status = json.loads(_run([*dvc, "status", "--json"], repo, env).stdout)
    assert {"changed deps": {"data/raw": "modified"}} in status["prepare"]
    again = _run([*dvc, "repro", "validate"], repo, env)
    assert set(re.findall(r"Running stage '(\w+)'", again.stdout)) == {"prepare", "validate"}
    assert _data_hash(repo) != before

    # `dvc add` again records the new version of the raw data for git.
    _run([*dvc, "add", "-q", RAW], repo, env)
    assert (repo / f"{RAW}.dvc").read_text() != tracked


def test_a_data_path_outside_the_raw_folder_gets_a_note(tmp_path):
    raw = tmp_path / "data" / "raw"
    inside = DataConfig(source="npz", path=str(raw / "x" / "images.npz"))
    outside = DataConfig(source="npz", path=str(tmp_path / "elsewhere.npz"))
    assert prepare.untracked_input(inside, raw) is None
    note = prepare.untracked_input(outside, raw)
    assert note.startswith(f"{tmp_path / 'elsewhere.npz'} is outside {raw}/") and "dvc add" in note
    assert prepare.untracked_input(DataConfig(), raw) is None  # the built-in digits read no file
