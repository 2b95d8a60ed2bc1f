"""Size limits for the library: no function in src/ganops over 60 lines, no module over 350, so each stays one
readable step. An exception needs a reason, in ALLOWED below (and in the code's own docstring)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "ganops"
MAX_FUNCTION_LINES = 60  # from the `def` line to the last line of the body, docstring and comments included
MAX_MODULE_LINES = 350

# {qualified name: why it may be longer}. A module is named by its path under src/ganops ("data/validate.py"),
# a function by module path and dotted name ("evaluation/evaluate.py:compute", "models/gan.py:GAN.train_step").
ALLOWED: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    """(dotted name, line count) of every function and method, nested ones included."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                found.append((name, node.end_lineno - node.lineno + 1))
            found += _functions(node, f"{name}.")
    return found


def test_the_package_is_found():
    assert len(_modules()) > 20, PACKAGE


def test_no_module_over_the_limit():
    too_long = []
    for path in _modules():
        name = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES and name not in ALLOWED:
            too_long.append(f"{name}: {lines} lines")
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them, or say why in ALLOWED): {too_long}"


def test_no_function_over_the_limit():
    too_long = []
    for path in _modules():
        module = path.relative_to(PACKAGE).as_posix()
        for function, lines in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            name = f"{module}:{function}"
            if lines > MAX_FUNCTION_LINES and name not in ALLOWED:
                too_long.append(f"{name}: {lines} lines")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split them, or say why in ALLOWED): {too_long}"


def test_the_check_catches_a_long_function_and_names_it():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f"class Model:\n    def step(self):\n    {body.replace(chr(10), chr(10) + '    ')}\n")
    assert _functions(tree) == [("Model.step", MAX_FUNCTION_LINES + 1)]


def test_allowed_entries_still_exist():
    """An exception for a function or module that is gone (or now short) is stale: remove it."""
    sizes = {}
    for path in _modules():
        module = path.relative_to(PACKAGE).as_posix()
        sizes[module] = (len(path.read_text(encoding="utf-8").splitlines()), MAX_MODULE_LINES)
        for function, lines in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            sizes[f"{module}:{function}"] = (lines, MAX_FUNCTION_LINES)
    stale = [name for name in ALLOWED if name not in sizes or sizes[name][0] <= sizes[name][1]]
    assert not stale, f"ALLOWED entries no longer needed: {stale}"
