"""`python -m ganops.offline_assets install`: download and verify the pinned assets (`make install` runs it)."""

from __future__ import annotations

import argparse
import sys

import ganops.offline_assets
from ganops.errors import GanopsError
from ganops.offline_assets.installer import ASSETS_DIR, default_dir, install, use_in_dvc
from ganops.offline_assets.pins import PACKAGES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ganops.offline_assets",
                                     description=(ganops.offline_assets.__doc__ or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help=f"download and verify the pinned assets into <repository>/{ASSETS_DIR}")
    parser.parse_args(argv)

    dest = default_dir()
    try:
        changed = install(dest)
    except GanopsError as exc:
        print(f"offline assets: error: {exc}", file=sys.stderr)
        return 1
    template = use_in_dvc(dest.parent, dest)
    plots = f"; dvc plots template: {template}" if template else ""
    print(f"offline assets: {'installed' if changed else 'up to date'} in {dest} "
          f"({len(PACKAGES)} pinned npm packages{plots})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
