"""Helpers shared across the test packages: the shrunk real config, and tiny real registry components
(generators, stores, servers). Imported as `from tests.helpers import ...`."""

from tests.helpers.params import SHRINK, shrunk_params, write_params, write_shrunk_params
from tests.helpers.paths import MNIST_DIR, REPO_ROOT, SHARED_DIR
from tests.helpers.registry import (
    IMAGE_SHAPE,
    LATENT_DIM,
    VENV_BIN,
    clean_env,
    free_port,
    metrics,
    register_version,
    save_tiny_generator,
    server,
    synthetic_evidence,
    synthetic_paired,
    wait_until_up,
    write_prepared_info,
)

__all__ = [
    "IMAGE_SHAPE",
    "LATENT_DIM",
    "MNIST_DIR",
    "REPO_ROOT",
    "SHARED_DIR",
    "SHRINK",
    "VENV_BIN",
    "clean_env",
    "free_port",
    "metrics",
    "register_version",
    "save_tiny_generator",
    "server",
    "shrunk_params",
    "synthetic_evidence",
    "synthetic_paired",
    "wait_until_up",
    "write_params",
    "write_prepared_info",
    "write_shrunk_params",
]
