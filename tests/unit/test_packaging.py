"""Packaging that fits beside other tools: ranges in pyproject.toml, the tested versions pinned in
constraints.txt, the documented extras and Makefile targets, and the GPU side of the device plan."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

EXTRAS = {"dev", "gpu", "s3", "server", "lint"}


@pytest.fixture(scope="module")
def project(repo_root) -> dict:
    return tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def constraints(repo_root) -> dict[str, str]:
    pins = {}
    for line in (repo_root / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def requirements(project: dict, *extras: str) -> list[Requirement]:
    """What installing the project with `extras` asks for; an extra that names another of the project's own
    (`dev` lists `ganops[server]`) brings that one's requirements instead of a line of its own."""
    wanted, found, index = list(extras), [Requirement(line) for line in project["dependencies"]], 0
    while index < len(wanted):
        for line in project["optional-dependencies"][wanted[index]]:
            req = Requirement(line)
            if canonicalize_name(req.name) == canonicalize_name(project["name"]):
                wanted += [extra for extra in sorted(req.extras) if extra not in wanted]
            else:
                found.append(req)
        index += 1
    return found


def test_dependencies_are_ranges_not_pins(project):
    for req in requirements(project, *EXTRAS):
        operators = {spec.operator for spec in req.specifier}
        assert operators, f"{req}: no version range"
        assert not operators & {"==", "==="}, f"{req}: an exact pin belongs in constraints.txt"
        assert ">=" in operators and "<" in operators, f"{req}: give a lower and an upper bound"


def test_what_make_install_installs_is_pinned_in_constraints(project, constraints):
    # `make install` installs `.[dev]` (and `.[dev,gpu]` with GPU=1) under `-c constraints.txt`.
    for req in requirements(project, "dev", "gpu"):
        name = canonicalize_name(req.name)
        assert name in constraints, f"{req.name}: not pinned in constraints.txt (run `make constraints`)"
        assert req.specifier.contains(constraints[name]), \
            f"{req.name}: constraints.txt pins {constraints[name]}, outside pyproject's {req.specifier}"


def test_python_versions_3_11_to_3_13(project):
    supported = SpecifierSet(project["requires-python"])
    for minor in ("3.11", "3.12", "3.13"):
        assert supported.contains(f"{minor}.0"), f"requires-python {supported} excludes {minor}"
        assert f"Programming Language :: Python :: {minor}" in project["classifiers"]
    assert not supported.contains("3.10.0")  # keras 3.15, pandas 3 and numpy 2.4 need 3.11


def test_extras(project):
    extras = project["optional-dependencies"]
    assert EXTRAS <= set(extras)
    names = {extra: {canonicalize_name(Requirement(r).name) for r in extras[extra]} for extra in EXTRAS}
    assert {"pytest", "pytest-timeout"} <= names["dev"]
    assert {"dvc-s3", "boto3"} <= names["s3"]
    assert "psycopg2-binary" in names["server"]
    assert "ruff" in names["lint"]
    gpu = Requirement(extras["gpu"][0])
    cpu = next(r for r in requirements(project) if r.name == "tensorflow")
    assert gpu.name == "tensorflow" and gpu.extras == {"and-cuda"}
    assert gpu.specifier == cpu.specifier, "the gpu extra must ask for the same TensorFlow versions"


def test_license_is_an_spdx_expression(repo_root, project):
    assert project["license"] == "Apache-2.0"
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # setuptools ≥77 refuses both
    build = tomllib.loads((repo_root / "pyproject.toml").read_text())["build-system"]
    setuptools = next(Requirement(r) for r in build["requires"] if r.startswith("setuptools"))
    assert not setuptools.specifier.contains("76.9") and setuptools.specifier.contains("77.0")


def make(repo_root, *args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # Not the variables of a `make test GPU=1` that runs these tests: each call says what it sets.
    env = {k: v for k, v in os.environ.items() if k not in {"GPU", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    done = subprocess.run(["make", "--no-print-directory", *args], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_help_lists_the_documented_targets(repo_root):
    listed = {line.split()[0] for line in make(repo_root, "help").splitlines() if line.strip()}
    assert {"pipeline", "test", "test-slow", "bench", "install", "help"} <= listed


def test_make_install_adds_the_gpu_extra_only_when_asked(repo_root, tmp_path):
    # -n prints the commands without running them; -B prints them even when .venv is up to date.
    assert "-e '.[dev]'" in make(repo_root, "-n", "-B", "install", "GPU=0")
    assert "-e '.[dev,gpu]'" in make(repo_root, "-n", "-B", "install", "GPU=1")
    fresh = tmp_path / "venv"
    fresh.mkdir()
    assert "-e '.[dev]'" in make(repo_root, "-n", "-B", "install", f"VENV={fresh}")  # the CPU build by default
    (fresh / ".installed-dev-gpu").touch()  # a .venv installed with GPU=1 stays a GPU one
    assert "-e '.[dev,gpu]'" in make(repo_root, "-n", "-B", "install", f"VENV={fresh}")


def test_gpu_plan_records_gpu_settings():
    """What a GPU plan records, from a list of GPU device names (a DevicePlan is built from names)."""
    import tensorflow as tf

    from ganops.training.devices import DevicePlan

    plan = DevicePlan(strategy=tf.distribute.get_strategy(), device="gpu", devices=("/device:GPU:0",),
                      precision="mixed_float16", jit_compile=True)
    assert plan.loss_scaling
    assert plan.params()["runtime.device"] == "gpu" and plan.params()["runtime.devices"] == "/device:GPU:0"
    assert plan.describe().startswith("1× gpu") and plan.describe().endswith("mixed_float16, XLA on")


def test_device_plan_picks_gpu_settings_on_a_gpu():
    """`devices.plan` asks TensorFlow for the GPUs itself: this runs where one is visible (e.g. after
    `make install GPU=1` on a GPU machine) and is skipped on CPU-only machines such as CI."""
    import tensorflow as tf

    from ganops.config import TrainConfig
    from ganops.training import devices

    gpus = tf.config.list_logical_devices("GPU")
    if not gpus:
        pytest.skip("no GPU visible to TensorFlow")
    plan = devices.plan(TrainConfig(batch_size=64 * len(gpus)))
    assert plan.device == "gpu" and plan.devices == tuple(gpu.name for gpu in gpus)
    assert plan.replicas == len(gpus)
    assert plan.precision == "mixed_float16" and plan.loss_scaling and plan.jit_compile  # GPU defaults
    explicit = devices.plan(TrainConfig(batch_size=64 * len(gpus), precision="float32", jit_compile=False))
    assert explicit.device == "gpu" and explicit.precision == "float32" and not explicit.jit_compile
