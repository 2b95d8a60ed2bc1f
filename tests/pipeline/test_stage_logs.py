"""A stage's log reads cleanly: each entry point, run in its own process as DVC runs it, ends with one line
saying what it wrote and shows none of TensorFlow's start-up noise (the absl warning, `I0000` lines, the false
`E0000 … cuInit` error of a CPU machine), while real errors still show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ganops import startup
from tests.helpers import write_params, write_shrunk_params

REPO_ROOT = Path(__file__).resolve().parents[2]
NOISE = ("cuInit", "E0000", "absl", "I0000")


def _env(**extra: str) -> dict[str, str]:
    # As a user's shell would have it: no TensorFlow log settings (the test session sets some).
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GANOPS_TF_LOG")}
    return {**env, **extra}


def run_stage(script: str, *args: str | Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"pipeline/{script}.py", *map(str, args)], cwd=REPO_ROOT, env=_env(**env),
                          check=False, capture_output=True, text=True, timeout=300)


def assert_quiet(result: subprocess.CompletedProcess) -> None:
    shown = result.stdout + result.stderr
    assert not [word for word in NOISE if word in shown], shown


@pytest.fixture(scope="module")
def stage_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stages")


@pytest.fixture(scope="module")
def prepared(stage_dir) -> tuple[Path, subprocess.CompletedProcess]:
    out = stage_dir / "prepared"
    result = run_stage("prepare", "--params", write_shrunk_params(stage_dir / "prepare.yaml"),
                       "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result


def test_prepare_prints_what_it_wrote(prepared):
    out, result = prepared
    assert result.stderr == ""
    assert result.stdout == f"prepare: wrote {out} (195 train + 45 validation + 60 test images 8x8x1 from digits)\n"


def test_validate_prints_one_summary_line(prepared, stage_dir):
    out = stage_dir / "validation"
    result = run_stage("validate", "--params", write_shrunk_params(stage_dir / "validate.yaml"), "--prepared", prepared[0],
                       "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no GX progress bars
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"validate: wrote {out} (") and lines[0].endswith(
        "checks passed on 300 images)"), result.stdout
    passed, _, evaluated = lines[0].split("(")[1].split()[:3]
    assert passed == evaluated


def test_featurize_loads_tensorflow_without_noise(prepared, stage_dir):
    model = stage_dir / "featurizer.keras"
    result = run_stage("featurize", "--params", write_shrunk_params(stage_dir / "featurize.yaml", featurize={"epochs": 1}),
                       "--prepared", prepared[0], "--model", model, "--metrics", stage_dir / "featurizer.json")
    assert result.returncode == 0, result.stderr
    assert_quiet(result)
    assert result.stdout.splitlines()[-1].startswith(f"featurize: wrote {model}, {stage_dir / 'featurizer.json'} ("), \
        result.stdout


def test_a_real_error_after_tensorflow_loads_still_prints_its_one_line(prepared, stage_dir):
    bad = write_params(stage_dir / "bad.yaml", featurize={"epochs": 1, "epcohs": 1})
    result = run_stage("featurize", "--params", bad, "--prepared", prepared[0], "--model", stage_dir / "bad.keras",
                       "--metrics", stage_dir / "bad.json")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("ganops featurize: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "featurize.epcohs: unknown key" in result.stderr


def test_ganops_tf_log_shows_everything(prepared, stage_dir):
    bad = write_params(stage_dir / "bad.yaml", featurize={"epochs": 1, "epcohs": 1})
    result = run_stage("featurize", "--params", bad, "--prepared", prepared[0], "--model", stage_dir / "bad.keras",
                       "--metrics", stage_dir / "bad.json", GANOPS_TF_LOG="1")
    assert result.returncode == 1
    assert "I0000" in result.stderr and result.stderr.endswith("featurize.epcohs: unknown key\n")


FAKE_TENSORFLOW = '''
import os
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n"
            b"I0000 00:00:1764617000.100000    4242 port.cc:153] oneDNN custom operations are on.\\n"
            b"E0000 00:00:1764617000.200000    4242 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
            b"CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\\n"
            b"W0000 00:00:1764617000.300000    4242 loader.cc:10] a real warning from C++\\n")
raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")
'''


def test_a_failing_tensorflow_import_still_shows_its_messages(tmp_path):
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(FAKE_TENSORFLOW)
    code = "from ganops import startup; startup.setup(); import tensorflow"
    result = subprocess.run([sys.executable, "-c", code], env=_env(PYTHONPATH=str(tmp_path), CUDA_VISIBLE_DEVICES="-1"),
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert_quiet(result)
    lines = result.stderr.splitlines()
    assert lines[0].endswith("loader.cc:10] a real warning from C++")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ImportError: libtensorflow_framework.so.2: cannot open shared object file"


CPU_FEATURES = ("I0000 00:00:1796154499.536096   18173 cpu_feature_guard.cc:227] This TensorFlow binary is "
                "optimized to use available CPU instructions in performance-critical operations.\n"
                "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
                "appropriate compiler flags.\n")


@pytest.mark.parametrize(("text", "shown"), [
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n", ""),
    ("I0000 00:00:1796154499.457880   18173 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
     "not be used.\n", ""),
    (CPU_FEATURES, ""),  # its second line goes with it
    (CPU_FEATURES + "Traceback (most recent call last):\n", "Traceback (most recent call last):\n"),
    ("W0000 00:00:1796154499.1   18173 loader.cc:10] a real warning\nTo enable the following instructions: x\n",
     "W0000 00:00:1796154499.1   18173 loader.cc:10] a real warning\nTo enable the following instructions: x\n"),
    ("I1201 19:36:03.100000    4242 port.cc:153] after InitializeLog\nsomething else\n", "something else\n"),
])
def test_only_the_known_start_up_messages_are_dropped(text, shown):
    assert startup.without_startup_noise(text) == shown


def test_cuinit_failure_is_dropped_only_without_an_nvidia_driver():
    line = ("E0000 00:00:1796154503.856695   18173 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
            "Failed call to cuInit: UNKNOWN ERROR (303)\n")
    assert startup.without_startup_noise(line, nvidia_driver=False) == ""
    assert startup.without_startup_noise(line, nvidia_driver=True) == line
