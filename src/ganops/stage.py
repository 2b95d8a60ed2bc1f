"""What every entry point shares (the pipeline's stage scripts and the `ganops` command): quiet logs and the
mapping from user errors to an exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from ganops import startup
from ganops.errors import GanopsError

# Before TensorFlow or Great Expectations are imported: entry points import this module first.
startup.setup()


Result = TypeVar("Result")


def entry_point(main: Callable[..., Result], name: str | None = None) -> Callable[..., Result]:
    """Run `main`; a GanopsError becomes `ganops NAME: error: MESSAGE` on stderr and exit status 1, anything
    else keeps its traceback. NAME is `name`, else the DVC stage running, else the script's file name."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> Result:
        try:
            return main(*args, **kwargs)
        except GanopsError as exc:
            who = name or os.environ.get("DVC_STAGE") or os.path.basename(sys.argv[0]).removesuffix(".py")
            print(f"ganops {who}: error: {exc}", file=sys.stderr, flush=True)
            sys.exit(1)

    return wrapper
