"""Where the tests find this checkout and the shared data beside it."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = REPO_ROOT.parent / "shared"  # real datasets, when present (tests needing them skip otherwise)
MNIST_DIR = SHARED_DIR / "data" / "mnist-t10k"
