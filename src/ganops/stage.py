"""What every pipeline entry point shares: quiet logs and the mapping from user errors to an exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

from ganops import startup
from ganops.errors import GanopsError

# Before TensorFlow or Great Expectations are imported: entry points import this module first.
startup.setup()


def entry_point(main: Callable[..., object]) -> Callable[..., None]:
    """Run `main`; a GanopsError becomes one line on stderr and exit status 1."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> None:
        try:
            main(*args, **kwargs)
        except GanopsError as exc:
            name = os.environ.get("DVC_STAGE") or os.path.basename(sys.argv[0]).removesuffix(".py")
            print(f"ganops {name}: error: {exc}", file=sys.stderr, flush=True)
            sys.exit(1)

    return wrapper
