"""The serving tests share the registry tests' helpers (tiny generators, server processes)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))

from registry_helpers import empty_store_template, store  # noqa: E402, F401  (fixtures)
