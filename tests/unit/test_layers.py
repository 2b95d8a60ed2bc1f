"""The layers contract in pyproject.toml (`[tool.importlinter]`): data flows one way, so no module imports from a
stage after it. `lint-imports` checks every import, function-level ones included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(cwd: Path, *args: str, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_ganops_imports_flow_one_way(repo_root):
    done = _lint(repo_root, pythonpath=repo_root / "src")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_the_contract_catches_a_back_import_inside_a_function(tmp_path):
    package = tmp_path / "flow"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "early.py").write_text("def names():\n    from flow import late  # reaches back\n    return late\n")
    (package / "late.py").write_text("from flow import early\n")
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_package = "flow"\n\n[[tool.importlinter.contracts]]\n'
                      'name = "one way"\ntype = "layers"\nlayers = ["flow.late", "flow.early"]\n')
    done = _lint(tmp_path, "--config", str(config), pythonpath=tmp_path)
    assert done.returncode == 1 and "flow.early -> flow.late" in done.stdout, done.stdout + done.stderr
