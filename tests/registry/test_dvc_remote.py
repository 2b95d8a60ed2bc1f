"""Sharing data and pipeline outputs through a DVC remote: push from one clone, pull into a fresh one
(a local-directory remote; S3, GCS, Azure or SSH remotes work the same way with their URL)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import clean_env

STAGE = """\
stages:
  build:
    cmd: python -c "import pathlib; p = pathlib.Path('models/out'); p.mkdir(parents=True, exist_ok=True);
      (p / 'model.txt').write_text(pathlib.Path('data/raw.txt').read_text().upper())"
    deps:
      - data/raw.txt
    outs:
      - models/out
"""


def run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_push_outputs_to_a_remote_and_pull_them_into_a_fresh_clone(tmp_path):
    env = clean_env(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                    GIT_COMMITTER_EMAIL="t@t")
    dvc = [sys.executable, "-m", "dvc"]
    origin, remote, clone = tmp_path / "origin", tmp_path / "remote", tmp_path / "clone"
    origin.mkdir()
    run(["git", "init", "-q", "-b", "main"], origin, env)
    run([*dvc, "init", "-q"], origin, env)
    run([*dvc, "config", "core.analytics", "false"], origin, env)
    (origin / "data").mkdir()
    (origin / "data/raw.txt").write_text("digits\n")
    run([*dvc, "add", "-q", "data/raw.txt"], origin, env)
    (origin / "dvc.yaml").write_text(STAGE)
    run([*dvc, "repro", "-q"], origin, env)
    run([*dvc, "remote", "add", "-d", "storage", str(remote)], origin, env)
    pushed = run([*dvc, "push"], origin, env)
    assert "3 files pushed" in pushed  # raw.txt, model.txt and the manifest of models/out
    run(["git", "add", "-A"], origin, env)
    run(["git", "commit", "-qm", "data and pipeline outputs tracked by DVC"], origin, env)

    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
    assert not (clone / "models/out").exists()  # git carries only the pointers (.dvc files, dvc.lock)
    run([*dvc, "pull"], clone, env)
    assert (clone / "data/raw.txt").read_text() == "digits\n"
    assert (clone / "models/out/model.txt").read_text() == "DIGITS\n"
    assert "up to date" in run([*dvc, "status"], clone, env).lower()
