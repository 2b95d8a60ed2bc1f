"""Process set-up shared by every entry point (pipeline/*.py via `ganops.stage`, the `ganops` CLI, the pyfunc
model's loader): environment defaults and a clean stderr while TensorFlow loads. Call `setup()` before anything
imports TensorFlow, Keras or Great Expectations; it is idempotent and imports none of them.

What it sets (each with `os.environ.setdefault`, so a value already in the environment wins):
- `KERAS_BACKEND=tensorflow`: the code is TensorFlow-specific; a keras.json naming jax must not change that.
- `TF_CPP_MIN_LOG_LEVEL=2`: TensorFlow's C++ warnings and errors only. An explicitly set value is respected.
- `GX_ANALYTICS_ENABLED=false`: the pipeline never sends usage statistics.
- `MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false` and `MLFLOW_LOGGING_LEVEL=WARNING`: no download bars or INFO
  lines ("Creating initial MLflow database tables…", "Validating input example…") in a stage's log. They take
  effect only where MLflow is imported after `setup()` (the entry points), not in `mlflow models serve`.

TensorFlow 2.21 writes absl lines while it loads, before anything can configure absl: `WARNING: All log
messages before absl::InitializeLog() is called are written to STDERR` and `I0000 … port.cc` (oneDNN) and
`I0000 … cudart_stub.cc` (each twice), at levels 0–1 `I0000 … cpu_feature_guard.cc` with a second line, and then
at device discovery, on machines without an NVIDIA driver, a false `E0000 … failed call to cuInit`.
`TF_CPP_MIN_LOG_LEVEL=3` drops the cuInit error but none of the others (absl writes below-threshold messages
to stderr until `absl::InitializeLog()` runs, which TensorFlow never calls). So the first `import tensorflow` —
wherever it happens — runs with file descriptor 2 pointed at a temporary file, together with device discovery;
afterwards whatever was captured, less this known noise (`without_startup_noise`), is written to the real
stderr in order. Import errors, Python warnings and any other C++ warning or error still show; a traceback is
printed after the descriptor is restored.

`GANOPS_TF_LOG=1` shows everything: no filtering, and `TF_CPP_MIN_LOG_LEVEL` defaults to 0 instead of 2.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

_ABSL_BEFORE_INIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# absl's prefix: severity, MMDD hh:mm:ss.micros (before InitializeLog: 0000 00:00:<unix seconds>.micros),
# thread id, file:line]
_ABSL_LINE = re.compile(r"^(?P<severity>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\] (?P<text>.*)")
_CUINIT = "failed call to cuInit"
_CONTINUED = ("To enable the following instructions:",)  # second lines of multi-line start-up messages


def setup() -> None:
    """Set the environment defaults and make the first TensorFlow import quiet (see the module docstring)."""
    verbose = os.environ.get("GANOPS_TF_LOG", "") not in ("", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    if verbose or "tensorflow" in sys.modules or any(isinstance(f, _QuietImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietImport())


def without_startup_noise(text: str, nvidia_driver: bool | None = None) -> str:
    """`text` (captured stderr) less TensorFlow's known start-up messages, in order. An absl message at
    information level is noise, and so is the text that continues it on the next line (cpu_feature_guard's
    "To enable the following instructions: …"); warnings and errors are kept, except the cuInit failure where
    no NVIDIA driver is present or CUDA devices are hidden (a CPU run): on a GPU machine it is a real problem."""
    kept, dropped_message = [], False
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        match = _ABSL_LINE.match(bare)
        if bare == _ABSL_BEFORE_INIT:
            noise = True
        elif match is not None:
            noise = match["severity"] == "I" or (
                _CUINIT in match["text"] and not (_nvidia_driver() if nvidia_driver is None else nvidia_driver))
        else:
            noise = dropped_message and bare.startswith(_CONTINUED)
        if not noise:
            kept.append(line)
        dropped_message = noise and (match is not None or dropped_message)
    return "".join(kept)


def _nvidia_driver() -> bool:
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
    return not hidden and Path("/dev/nvidiactl").exists()


@contextlib.contextmanager
def filtered_stderr(keep: Callable[[str], str] = without_startup_noise) -> Iterator[None]:
    """Capture file descriptor 2 (C++ and Python writes alike) for the block; then write `keep` of what was
    captured to stderr. A temporary file, not a pipe: nothing has to read while the block runs."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no stderr to protect (closed, or pythonw)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            shown = keep(capture.read().decode("utf-8", errors="replace"))
            if shown:
                sys.stderr.write(shown if shown.endswith("\n") else shown + "\n")
                sys.stderr.flush()


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` through the other finders, once, and wraps its loader in `_QuietLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one import only: a failed one is retried loudly
        for finder in sys.meta_path:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


class _QuietLoader(importlib.abc.Loader):
    """The real loader, its `exec_module` run inside `filtered_stderr`; everything else passes through."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # get_resource_reader, is_package, get_code… of the real loader
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with filtered_stderr():
            self._loader.exec_module(module)
            # Device discovery probes CUDA (the cuInit message); run it here rather than at the first op.
            module.config.list_physical_devices()
