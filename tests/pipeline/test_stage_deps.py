"""Each stage's `deps` in dvc.yaml cover the code it runs, so changing that code reruns the stage, and name no
library code it does not run, so an unrelated change does not. The code a stage runs is its script's import
closure inside `src/`, found statically with `ast`: imports at module level and inside functions alike (the
entry points and the library import heavy modules lazily), `from package import submodule`, relative imports,
and each package's `__init__.py` that has code of its own."""

from __future__ import annotations

import ast
import re
from collections import deque
from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SRC = REPO_ROOT / "src"
STAGES: dict[str, dict] = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]

# Modules that cannot change any stage output, so a change to them need not rerun a stage. Their own imports
# are still followed: an exemption vouches for the file, not for what it imports.
# Not exempt: `ganops.startup`. Besides quieting logs it sets the default `KERAS_BACKEND`, which decides the
# backend that computes every network, featurizer and sample, so a change there can change outputs.
EXEMPT = {
    # Maps a GanopsError to one stderr line and exit status 1. Its only other effect, `startup.setup()`, is
    # startup's code, which is checked on its own.
    "ganops.stage": "error-to-exit-code mapping",
    "ganops.errors": "the exception class, nothing else",
}


# ---- the import closure ----------------------------------------------------------------------------------

def module_file(name: str, src: Path) -> Path | None:
    """The file that runs when module `name` is imported, if it lives under `src`; None otherwise."""
    base = src.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def has_code(tree: ast.Module) -> bool:
    """Whether a module does anything beyond its docstring and `from __future__` imports."""
    for index, node in enumerate(tree.body):
        docstring = index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if not (docstring or future):
            return True
    return False


def imported_names(tree: ast.Module, package: str | None) -> list[str]:
    """Every dotted name the module may import, anywhere in it (`ast.walk` reaches function bodies). For
    `from a import b` both `a` and `a.b` are named: `b` counts when it resolves to a submodule. `package` is
    the package relative imports start from (None for a script)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = absolute_module(node, package)
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


def absolute_module(node: ast.ImportFrom, package: str | None) -> str:
    if node.level == 0:
        return node.module
    if package is None:
        raise ValueError(f"relative import at line {node.lineno} outside a package")
    parts = package.split(".")
    anchor = parts[:len(parts) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def with_parents(name: str) -> list[str]:
    """`a.b.c` → `a`, `a.b`, `a.b.c`: importing a module runs each enclosing package's `__init__.py` first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def import_closure(script: Path, src: Path) -> dict[str, tuple[str, ...]]:
    """Each module under `src` that running `script` may import, with the shortest import chain that reaches
    it (the script's name first). Packages whose `__init__.py` has no code are left out."""
    chains: dict[str, tuple[str, ...]] = {}
    queue = deque([(ast.parse(script.read_text()), None, (script.name,))])
    while queue:
        tree, package, chain = queue.popleft()
        for name in imported_names(tree, package):
            for module in with_parents(name):
                path = module_file(module, src)
                if module in chains or path is None:
                    continue
                module_tree = ast.parse(path.read_text())
                if path.name == "__init__.py" and not has_code(module_tree):
                    continue
                chains[module] = (*chain, module)
                is_package = path.name == "__init__.py"
                queue.append((module_tree, module if is_package else module.rpartition(".")[0], chains[module]))
    return chains


# ---- dvc.yaml --------------------------------------------------------------------------------------------

def stage_script(stage: dict) -> str:
    cmd = " ".join(stage["cmd"]) if isinstance(stage["cmd"], list) else stage["cmd"]
    scripts = re.findall(r"(?<!\S)(pipeline/\w+\.py)(?!\S)", cmd)
    assert len(scripts) == 1, f"expected one pipeline/*.py script in cmd {cmd!r}, found {scripts}"
    return scripts[0]


def stage_deps(stage: dict) -> list[PurePosixPath]:
    return [PurePosixPath(dep.rstrip("/")) for dep in stage.get("deps", [])]


def covers(dep: PurePosixPath, file: PurePosixPath) -> bool:
    return dep == file or dep in file.parents


def repo_path(path: Path) -> PurePosixPath:
    return PurePosixPath(path.relative_to(REPO_ROOT).as_posix())


def required_modules(stage: dict) -> dict[PurePosixPath, tuple[str, ...]]:
    """The stage's non-exempt closure as repository paths, each with the chain that reached it."""
    script = stage_script(stage)
    closure = import_closure(REPO_ROOT / script, SRC)
    return {repo_path(module_file(name, SRC)): (script, *chain[1:])
            for name, chain in closure.items() if name not in EXEMPT}


# ---- the checks, one case per stage ----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(STAGES))
def test_deps_cover_the_code_the_stage_runs(name):
    stage = STAGES[name]
    deps = stage_deps(stage)
    script = PurePosixPath(stage_script(stage))
    missing = [f"{name}: {script} (the stage's own script)"] if script not in deps else []
    missing += [f"{name}: {file} ({' → '.join(chain)})"
                for file, chain in sorted(required_modules(stage).items())
                if not any(covers(dep, file) for dep in deps)]
    assert not missing, (
        f"stage {name!r} runs code its deps in dvc.yaml do not cover, so changing it would not rerun the stage; "
        "add each file (or a folder holding only code the stage imports) to its deps:\n  " + "\n  ".join(missing))


@pytest.mark.parametrize("name", list(STAGES))
def test_no_stale_code_deps(name):
    stage = STAGES[name]
    required = required_modules(stage)
    stale = [f"{name}: {dep}" for dep in stage_deps(stage)
             if dep.parts[0] == "src" and not any(covers(dep, file) for file in required)]
    assert not stale, (
        f"stage {name!r} lists deps under src/ that hold no module it imports (exempt ones aside: "
        f"{', '.join(sorted(EXEMPT))}), so a change there reruns it for nothing; remove them from its deps in "
        "dvc.yaml:\n  " + "\n  ".join(stale))


def test_exemptions_name_real_modules():
    # A renamed module would otherwise leave its exemption silently unused.
    assert [name for name in EXEMPT if module_file(name, SRC) is None] == []


# ---- the checker itself ----------------------------------------------------------------------------------

def test_closure_follows_lazy_submodule_and_relative_imports(tmp_path):
    src = tmp_path / "src"
    files = {
        "run.py": "from pkg import top\n\ndef main():\n    from pkg import lazy  # a submodule, imported late\n",
        "src/pkg/__init__.py": '"""Docstring only: no code, not in the closure."""\nfrom __future__ import annotations\n',
        "src/pkg/top.py": "import os\n\ndef helper():\n    import pkg.deep.leaf\n",
        "src/pkg/lazy.py": "from .sibling import VALUE\n",
        "src/pkg/sibling.py": "VALUE = 1\n",
        "src/pkg/deep/__init__.py": "from ..sibling import VALUE  # code: in the closure\n",
        "src/pkg/deep/leaf.py": "",
        "src/pkg/unused.py": "",
    }
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)

    closure = import_closure(tmp_path / "run.py", src)

    assert set(closure) == {"pkg.top", "pkg.lazy", "pkg.sibling", "pkg.deep", "pkg.deep.leaf"}
    assert closure["pkg.deep.leaf"] == ("run.py", "pkg.top", "pkg.deep.leaf")
    assert closure["pkg.sibling"] == ("run.py", "pkg.lazy", "pkg.sibling")
