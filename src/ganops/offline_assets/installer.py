"""Install the pinned packages (`install`) into the repository's `.offline-assets/` and point DVC's plots page at
a template with vega inlined (`dvc_template`, `use_in_dvc`)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from ganops import artifacts
from ganops.errors import GanopsError
from ganops.offline_assets.pins import PACKAGES, VEGA, VEGA_EMBED, VEGA_LITE, Package

ASSETS_DIR = ".offline-assets"  # at the repository root; one line in .gitignore
MANIFEST_FILE = "manifest.json"  # the pins the folder was built from: install is a no-op while they match
PACKAGES_DIR = "npm"  # <name>@<version>/<file>, as the CDNs lay them out
DVC_TEMPLATE_FILE = "dvc-plots.html"
DOWNLOAD_TIMEOUT_S = 60


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
            extracted = tar.extractfile(members[name])
            if extracted is None:  # not reached: only regular files are listed
                raise GanopsError(f"{package.folder}: {name} is not a regular file")
            target.write_bytes(extracted.read())


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
