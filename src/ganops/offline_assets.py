"""Pictures that render offline: the JavaScript, CSS and fonts that DVC's plots page and GX's Data Docs load from
CDNs, pinned here and installed from the npm registry once, at install time (`make install`).

- `install(dest)` downloads each pinned package's tarball, checks it against the sha512 `dist.integrity` written
  below (the registry's own figure, looked up when the pin was chosen) and keeps only the files the pages use,
  plus `dvc-plots.html`: DVC's page template with vega, vega-lite and vega-embed inlined. It then points
  `plots.html_template` in the repository's `.dvc/config.local` at that template, so a plain `dvc plots show`
  or `dvc plots diff` draws without the network. Nothing here downloads while the pipeline runs.
- `localize_data_docs(docs_dir)` rewrites the CDN links of a Data Docs site to copies of the same files inside
  it (`static/offline/`), so the site renders styled, with icons, from disk or from an archived folder. When
  the assets are not installed it changes nothing and says so; the pages then load from the CDNs as before.

The installed folder lives at the repository root (`.offline-assets/`, gitignored), found through
`tracking.project_root()`, so stages that DVC runs in a temporary copy of the repository find it too.

    python -m ganops.offline_assets install
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from ganops import artifacts
from ganops.errors import GanopsError

ASSETS_DIR = ".offline-assets"  # at the repository root; one line in .gitignore
MANIFEST_FILE = "manifest.json"  # the pins the folder was built from: install is a no-op while they match
PACKAGES_DIR = "npm"  # <name>@<version>/<file>, as the CDNs lay them out
DVC_TEMPLATE_FILE = "dvc-plots.html"
DOCS_ASSETS_DIR = "static/offline"  # inside a Data Docs site, beside GX's own static/ files
REGISTRY = "https://registry.npmjs.org"
DOWNLOAD_TIMEOUT_S = 60


@dataclasses.dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity: sha512 of the tarball, base64
    files: tuple[str, ...]  # paths inside the tarball's top folder (npm's `package/`)

    @property
    def tarball_url(self) -> str:
        basename = self.name.rsplit("/", 1)[-1]  # "@scope/name" -> "name"
        return f"{REGISTRY}/{self.name}/-/{basename}-{self.version}.tgz"

    @property
    def folder(self) -> str:
        return f"{self.name}@{self.version}"


# dvc-render 1.0 writes Vega-Lite 5 specs (and its page asks for vega 5.20, vega-lite 5.2, vega-embed 6.18);
# GX 1.x Data Docs ask for vega@5, vega-lite@5, vega-embed@6. The last releases of those majors serve both.
VEGA = Package(
    "vega", "5.33.1",
    "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==",
    ("build/vega.min.js",))
VEGA_LITE = Package(
    "vega-lite", "5.23.0",
    "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
    ("build/vega-lite.min.js",))
VEGA_EMBED = Package(
    "vega-embed", "6.29.0",
    "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
    ("build/vega-embed.min.js",))
# The rest: exactly the versions GX 1.x's page templates name (great_expectations/render/view/templates).
BOOTSTRAP = Package(
    "bootstrap", "4.3.1",
    "sha512-rXqOmH1VilAt2DyPzluTi2blhk17bO7ef+zLLPlWvG494pDxcM234pJ8wTc/6R40UWizAIIMgxjvxZg5kmsbag==",
    ("dist/css/bootstrap.min.css", "dist/js/bootstrap.min.js"))
BOOTSTRAP_DARK = Package(
    "@forevolve/bootstrap-dark", "1.1.0",
    "sha512-A3ucpEpxPoTVO490lZZCfjPXxv832l7mm1IxX3bXyxvgwnPGXDLyh7dWrphXKO8YBAu3EswbBEu3VSW8NRMW3A==",
    ("dist/css/bootstrap-prefers-dark.css",))
BOOTSTRAP_TABLE = Package(
    "bootstrap-table", "1.19.1",
    "sha512-WvV+l1AI/C+zThaKmfHmi/IuayVNB0qdFyEhFx1jyZhO0oLtNJNANkCR3rvJf6Dkh72dsLElxpE/bzK9seEQLA==",
    ("dist/bootstrap-table.min.css",
     "dist/bootstrap-table.min.js",
     "dist/extensions/filter-control/bootstrap-table-filter-control.min.js"))
# GX takes the filter-control stylesheets from 1.19.0; its .min.css differs from 1.19.1's.
BOOTSTRAP_TABLE_FILTER_CSS = Package(
    "bootstrap-table", "1.19.0",
    "sha512-L+USHm3X9FKocx/6yngGu12yF6r6s1Ntuc+hoIK2a2QQJjHw5kcySLiE2HY/9sEaSGAOfPbfQOtBH3uKkcpqEA==",
    ("dist/extensions/filter-control/bootstrap-table-filter-control.css",
     "dist/extensions/filter-control/bootstrap-table-filter-control.min.css"))
DATEPICKER = Package(
    "bootstrap-datepicker", "1.9.0",
    "sha512-9rYYbaVOheGYxjOr/+bJCmRPihfy+LkLSg4fIFMT9Od8WwWB/MB50w0JO1eBgKUMbb7PFHQD5uAfI3ArAxZRXA==",
    ("dist/css/bootstrap-datepicker.min.css", "dist/js/bootstrap-datepicker.min.js"))
# all.min.css names each font as woff2 and then ttf; every current browser takes the woff2.
FONT_AWESOME = Package(
    "@fortawesome/fontawesome-free", "6.6.0",
    "sha512-60G28ke/sXdtS9KZCpZSHHkCbdsOGEhIUGlwq6yhY74UpTiToIh8np7A8yphhM4BWsvNFtIvLpi4co+h9Mr9Ow==",
    ("css/all.min.css",
     "webfonts/fa-brands-400.woff2",
     "webfonts/fa-regular-400.woff2",
     "webfonts/fa-solid-900.woff2",
     "webfonts/fa-v4compatibility.woff2"))
JQUERY = Package(
    "jquery", "3.7.1",
    "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==",
    ("dist/jquery.min.js",))
POPPER = Package(
    "popper.js", "1.12.9",
    "sha512-s0EEi9xiSCdqz9lV4IiVH5yIZnDX/U1t0tCjB+0jXx9jW8lrR7kOpVupiUg175ogqVoudpDXHF1p6dKATCHMeg==",
    ("dist/umd/popper.min.js",))

PACKAGES = (VEGA, VEGA_LITE, VEGA_EMBED, BOOTSTRAP, BOOTSTRAP_DARK, BOOTSTRAP_TABLE, BOOTSTRAP_TABLE_FILTER_CSS,
            DATEPICKER, FONT_AWESOME, JQUERY, POPPER)

# Every script and stylesheet URL that GX 1.x Data Docs pages load, and the pinned file serving it. The two with
# a Subresource Integrity hash in GX's pages (popper, bootstrap.min.js) have exactly that hash in the tarball.
DATA_DOCS_URLS: dict[str, tuple[Package, str]] = {
    "https://cdn.jsdelivr.net/npm/vega@5": (VEGA, "build/vega.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-lite@5": (VEGA_LITE, "build/vega-lite.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-embed@6": (VEGA_EMBED, "build/vega-embed.min.js"),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (BOOTSTRAP, "dist/css/bootstrap.min.css"),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (BOOTSTRAP, "dist/js/bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        (BOOTSTRAP_DARK, "dist/css/bootstrap-prefers-dark.css"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        (BOOTSTRAP_TABLE, "dist/bootstrap-table.min.css"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        (BOOTSTRAP_TABLE, "dist/bootstrap-table.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        (BOOTSTRAP_TABLE, "dist/extensions/filter-control/bootstrap-table-filter-control.min.js"),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        (BOOTSTRAP_TABLE_FILTER_CSS, "dist/extensions/filter-control/bootstrap-table-filter-control.css"),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        (BOOTSTRAP_TABLE_FILTER_CSS, "dist/extensions/filter-control/bootstrap-table-filter-control.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        (DATEPICKER, "dist/css/bootstrap-datepicker.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        (DATEPICKER, "dist/js/bootstrap-datepicker.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (FONT_AWESOME, "css/all.min.css"),
    "https://code.jquery.com/jquery-3.7.1.min.js": (JQUERY, "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (POPPER, "dist/umd/popper.min.js"),
}
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


# --- install ---------------------------------------------------------------------------------------

def default_dir() -> Path:
    """Where `install` puts the assets and where the pipeline looks for them: the user's repository root."""
    # Here, not at the top: tracking imports mlflow, which takes seconds and is not needed for a path.
    from ganops.tracking import project_root

    return project_root() / ASSETS_DIR


def manifest() -> dict[str, dict]:
    """The pins, as written to the installed folder's manifest.json."""
    return {package.folder: {"integrity": package.integrity, "files": list(package.files)} for package in PACKAGES}


def is_installed(dest: Path) -> bool:
    try:
        return json.loads((dest / MANIFEST_FILE).read_text()) == manifest()
    except (OSError, ValueError):
        return False


def install(dest: Path) -> bool:
    """Download, verify and unpack every pinned package into `dest`, with the DVC template; False when `dest`
    already holds exactly these pins (nothing is downloaded then). Atomic: `dest` is built beside itself and
    swapped in whole."""
    dest = Path(dest)
    if is_installed(dest):
        with artifacts.atomic_path(dest / DVC_TEMPLATE_FILE) as tmp:  # cheap, and follows edits of _DVC_PAGE
            tmp.write_text(dvc_template(dest), encoding="utf-8")
        return False
    with artifacts.atomic_path(dest) as tmp:
        for package in PACKAGES:
            _unpack(package, _download(package), tmp / PACKAGES_DIR / package.folder)
        (tmp / DVC_TEMPLATE_FILE).write_text(dvc_template(tmp), encoding="utf-8")
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest(), indent=2) + "\n")
    return True


def _download(package: Package) -> bytes:
    url = package.tarball_url
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise GanopsError(f"could not download {url}: {getattr(exc, 'reason', exc)}") from None
    algorithm, _, expected = package.integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise GanopsError(f"{url} does not match its pinned integrity "
                          f"({package.integrity[:20]}…, got {algorithm}-{actual[:13]}…); nothing was installed")
    return data


def _unpack(package: Package, tarball: bytes, dest: Path) -> None:
    """Only the listed files. npm tarballs keep everything under one top folder, usually `package/`."""
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        members = {member.name.split("/", 1)[-1]: member for member in tar.getmembers() if member.isfile()}
        for name in package.files:
            if name not in members:
                raise GanopsError(f"{package.folder} has no file {name}")
            target = dest / name  # a path from the table above, never one taken from the archive
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(members[name]).read())


# --- dvc plots -------------------------------------------------------------------------------------

# dvc-render fills {plot_divs} (each a div with a `vegaEmbed` call) and {refresh_tag}. There is no {scripts}:
# that is where DVC would put its CDN <script> tags.
_DVC_PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- {versions}: from the npm registry, inlined by ganops.offline_assets so the page draws offline -->
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""
_DVC_PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")


def dvc_template(assets_dir: Path) -> str:
    """DVC's plots page (dvc_render.html.PAGE_HTML) with vega, vega-lite and vega-embed inline."""
    scripts = []
    for package in (VEGA, VEGA_LITE, VEGA_EMBED):
        source = (Path(assets_dir) / PACKAGES_DIR / package.folder / package.files[0]).read_text(encoding="utf-8")
        if any(placeholder in source for placeholder in _DVC_PLACEHOLDERS):  # DVC would substitute into the code
            raise GanopsError(f"{package.folder} contains a DVC template placeholder")
        # Inside a <script> element "</script" ends it; "<\/script" means the same to JavaScript.
        source = source.replace("</script", "<\\/script")
        scripts.append(f"    <script>\n{source}\n    </script>")
    versions = ", ".join(package.folder for package in (VEGA, VEGA_LITE, VEGA_EMBED))
    return _DVC_PAGE.format(versions=versions, scripts="\n".join(scripts))


def use_in_dvc(repo: Path, assets_dir: Path) -> str | None:
    """Point `plots.html_template` in `repo`'s .dvc/config.local at the installed template, unless a DVC config
    there already names a template of its own. Return the template DVC now uses; None outside a DVC repository.

    config.local (machine-local, ignored by git) rather than .dvc/config: a clone without the assets keeps
    DVC's own page instead of failing on a template that is not there.
    """
    dvc_dir = (Path(repo) / ".dvc").resolve()
    if not dvc_dir.is_dir():
        return None
    template = Path(assets_dir).resolve() / DVC_TEMPLATE_FILE
    # DVC resolves a relative html_template against the .dvc folder: relative, the setting survives a move.
    ours = os.path.relpath(template, dvc_dir) if template.is_relative_to(dvc_dir.parent) else str(template)
    configured = _dvc_config(dvc_dir.parent, "plots.html_template")  # every level merged: repo, local, …
    if configured in (None, ours):
        _dvc_config(dvc_dir.parent, "--local", "plots.html_template", ours)
        configured = ours
    return configured


def _dvc_config(repo: Path, *args: str) -> str | None:
    """`dvc config ARGS` in `repo` through DVC's command line (its public interface for settings); the value
    read, or None when the option is unset."""
    done = subprocess.run([sys.executable, "-m", "dvc", "config", *args], cwd=repo, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        if len(args) == 1:
            return None  # unset
        raise GanopsError(f"dvc config {' '.join(args)}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip() or None


# --- Data Docs -------------------------------------------------------------------------------------

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


# --- command line ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ganops.offline_assets", description=__doc__.split("\n\n")[0])
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
