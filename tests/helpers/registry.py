"""Tiny real registry components for the registry, serving and docs tests: generators registered into a real
store with synthetic gate evidence, and real server processes on free localhost ports, always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

VENV_BIN = Path(sys.executable).parent
IMAGE_SHAPE = (8, 8, 1)
LATENT_DIM = 4


def save_tiny_generator(path: Path, seed: int = 0, num_classes: int = 0) -> Path:
    """A real (untrained) Keras generator from the project's own builder, on tiny shapes (conditional on
    `num_classes` labels when given)."""
    import keras

    from ganops.models.networks import build_pair

    keras.utils.set_random_seed(seed)
    generator, _ = build_pair("mlp", LATENT_DIM, IMAGE_SHAPE, base_filters=4, num_classes=num_classes)
    generator.save(path)
    return path


def register_version(generator_path: Path, metrics: dict, cfg=None, evidence: dict | None = None) -> dict:
    """What train + register do to the store: a record with params, then a registered version logged into it
    carrying the gate's evidence (synthetic, from `metrics["fd"]`, unless given)."""
    import mlflow

    from ganops import lineage, tracking
    from ganops.config import RegisterConfig
    from ganops.registry import registration

    if evidence is None:
        evidence = synthetic_evidence(metrics["fd"], featurizer=metrics["featurizer_hash"])
    tracking.configure()
    with mlflow.start_run(run_name="test", tags={lineage.DATA_HASH_TAG: "d" * 40}):
        mlflow.log_params({"train.arch": "mlp", "train.latent_dim": LATENT_DIM})
        return registration.log_and_register(cfg or RegisterConfig(max_images_per_request=16), generator_path,
                                         metrics, evidence)


def write_prepared_info(folder: Path) -> Path:
    """The one file of a prepared folder that a record needs (its datasets' shapes, counts and hash)."""
    from ganops import artifacts

    folder.mkdir(parents=True, exist_ok=True)
    artifacts.write_dataset_info(folder / artifacts.PreparedData.INFO_FILE, artifacts.DatasetInfo(
        source="digits", height=8, width=8, channels=1, num_classes=10, train_count=60, validation_count=20,
        test_count=20, data_hash="d" * 40))
    return folder


def metrics(fd_ratio: float, featurizer: str = "f" * 40) -> dict:
    return {"fd": 2.0 * fd_ratio, "fd_ratio": fd_ratio, "real": {"fd": 2.0}, "num_samples": 60,
            "featurizer_hash": featurizer}


def synthetic_paired(fd: float, featurizer: str = "f" * 40, copying: float = 0.5, spread: float = 0.2,
                     replicates: int = 200) -> dict:
    """A paired-evidence file as evaluate writes it, for gate tests about the decision rather than the numbers:
    fd replicates scattered around `fd` by the same seeded draws for every version, as paired replicates are."""
    scatter = np.random.default_rng(0).normal(0.0, spread, replicates)
    return {"fd": (fd + scatter).tolist(), "precision": [0.8] * replicates, "recall": [0.8] * replicates,
            "num_samples": 60, "bootstrap_replicates": replicates, "seed": 0, "featurizer_hash": featurizer,
            "data_hash": "d" * 40, "copying": copying, "copying_floor_high": 0.6}


def synthetic_evidence(fd: float, featurizer: str = "f" * 40, **paired) -> dict:
    from ganops.registry import registration

    return registration.gate_evidence({"fd": fd, "precision": 0.8, "recall": 0.8},
                                  synthetic_paired(fd, featurizer, **paired))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


@contextlib.contextmanager
def server(args: list[str], health_url: str, env: dict, log: Path, timeout: float = 120,
           cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """Start a server in its own process group, wait for `health_url`, yield its process, and always stop the
    whole group (both `mlflow server` and `mlflow models serve` run their workers as child processes)."""
    with open(log, "w") as log_file:
        process = subprocess.Popen(args, env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            wait_until_up(health_url, process, timeout)
            yield process
        except Exception as exc:
            raise RuntimeError(f"{exc}\n--- server log ---\n{log.read_text()[-3000:]}") from exc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    env.update(extra)
    return env
