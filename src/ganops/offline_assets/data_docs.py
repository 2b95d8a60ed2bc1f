"""Point a GX Data Docs site's CDN scripts and stylesheets at pinned local copies (`localize_data_docs`)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

from ganops.offline_assets.installer import PACKAGES_DIR, default_dir, is_installed
from ganops.offline_assets.pins import DATA_DOCS_URLS

DOCS_ASSETS_DIR = "static/offline"  # inside a Data Docs site, beside GX's own static/ files

# GX's logo, fetched from S3 (with a cache-busting query) although the site ships a copy in static/images/.
_GX_LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/"
                      r"(?:logo-long|full_logo_dark)\.png(?:\?[^\"')\s]*)?")
_GX_LOCAL_LOGO = "static/images/logo-long.png"  # relative to the site's root
_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.IGNORECASE)
_TAG_URL = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
# A file:// page cannot fetch in CORS mode, and SRI needs CORS: the local copies load without these attributes.
_SRI_ATTRIBUTES = re.compile(r"""\s+(?:integrity|crossorigin)(?:\s*=\s*(?:"[^"]*"|'[^']*'))?""", re.IGNORECASE)
# What a page fetches by itself (not links the reader may follow): script and link tags, images, CSS url().
_REMOTE_LOAD = re.compile(r"""(?:<(?:script|link|img)\b[^>]*?\b(?:src|href)\s*=\s*["']|url\(\s*['"]?)"""
                          r"""(https?://[^"')\s]+)""", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class DocsLocalization:
    pages: int  # HTML pages in the site
    remote: tuple[str, ...]  # distinct URLs the pages still fetch from the network (scripts, styles, images)
    assets_dir: Path | None  # the installed assets the copies came from; None when they are not installed

    @property
    def offline(self) -> bool:
        return not self.remote

    @property
    def warning(self) -> str | None:
        """One line for the stage's log when the site still needs the network, else None."""
        if self.offline:
            return None
        if self.assets_dir is None:
            return (f"Data Docs load their styles and scripts from CDNs ({len(self.remote)} URLs): offline assets "
                    f"are not installed (run `make install` or `python -m ganops.offline_assets install`)")
        return (f"Data Docs still load {len(self.remote)} URLs from the network with no pinned copy, "
                f"e.g. {self.remote[0]}")


def localize_data_docs(docs_dir: Path, assets_dir: Path | None = None) -> DocsLocalization:
    """Point every CDN script and stylesheet of the Data Docs site in `docs_dir` at a copy of the same pinned
    file under `docs_dir/static/offline/` (relative links, so the folder can be moved or archived), and GX's
    logo at the site's own copy. Without installed assets (`assets_dir`, default `default_dir()`) the pages are
    left as they are. Never raises for missing assets: pictures are not worth failing validation over.
    """
    docs_dir = Path(docs_dir)
    source = Path(assets_dir) if assets_dir is not None else default_dir()
    pages = sorted(docs_dir.rglob("*.html"))
    if not is_installed(source):
        return DocsLocalization(len(pages), _remote_loads(pages), None)
    if not pages:
        return DocsLocalization(0, (), source)

    copied = docs_dir / DOCS_ASSETS_DIR
    used = {package for package, _ in DATA_DOCS_URLS.values()}
    for package in used:
        shutil.copytree(source / PACKAGES_DIR / package.folder, copied / package.folder, dirs_exist_ok=True)
    for page in pages:
        html = page.read_text(encoding="utf-8")
        to_root = Path(os.path.relpath(docs_dir, page.parent)).as_posix()

        def local(match: re.Match, to_root: str = to_root) -> str:
            tag = match.group(0)
            url = _TAG_URL.search(tag)
            if url is None or url.group(1) not in DATA_DOCS_URLS:
                return tag
            package, name = DATA_DOCS_URLS[url.group(1)]
            path = f"{to_root}/{DOCS_ASSETS_DIR}/{package.folder}/{name}"
            return _SRI_ATTRIBUTES.sub("", tag.replace(url.group(1), path))

        localized = _GX_LOGO.sub(f"{to_root}/{_GX_LOCAL_LOGO}", _TAG.sub(local, html))
        if localized != html:
            page.write_text(localized, encoding="utf-8")
    return DocsLocalization(len(pages), _remote_loads(pages), source)


def _remote_loads(pages: list[Path]) -> tuple[str, ...]:
    found = {match.group(1) for page in pages for match in _REMOTE_LOAD.finditer(page.read_text(encoding="utf-8"))}
    return tuple(sorted(found))
