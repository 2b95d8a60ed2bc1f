"""The pictures render offline: real pages drawn by headless Chromium with every network request failing.

- a `dvc plots show` page from a tiny real DVC repository wired the way `make install` wires this one;
- Data Docs built by the validate stage's code on built-in digits, then localized.

Each check also runs on the page as the tools write it without the offline assets, where it must fail: proof
that the network really is off and that the check sees the difference a reader would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ganops import offline_assets
from ganops.data import validate
from tests.helpers import shrunk_params

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
OFFLINE = ("--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND")

PLOTS = """plots:
  - history.csv:
      x: epoch
      y: [d_loss, g_loss]
      title: GAN losses ÷ epoch
  - class_histogram.csv:
      x: class
      y: [generated, real]
      template: simple
"""

# Appended to a copy of a Data Docs page: after load and fonts, it records what only the page's styles, fonts
# and scripts produce, as JSON in the DOM that --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => document.fonts.ready.then(() => setTimeout(() => {
  const icon = document.querySelector(".fas");
  const result = {
    flex: getComputedStyle(document.querySelector(".d-flex")).display,
    icon_font: icon ? getComputedStyle(icon).fontFamily : null,
    fonts_loaded: [...document.fonts].filter((f) => f.status === "loaded").map((f) => f.family),
    jquery: typeof window.jQuery === "function",
    bootstrap_js: !!(window.jQuery && jQuery.fn.collapse),
    bootstrap_table: document.querySelectorAll(".bootstrap-table").length,
    vega_embed: typeof window.vegaEmbed === "function",
  };
  const out = document.createElement("script");
  out.type = "application/json";
  out.id = "offline-probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
}, 100)));
</script>
"""
PROBE_RESULT = re.compile(r'<script type="application/json" id="offline-probe">(.*?)</script>', re.DOTALL)
# What a page fetches by itself: script, link and img sources, and url() in styles.
LOADED = re.compile(r"""(?:<(?:script|link|img)\b[^>]*?\b(?:src|href)\s*=\s*["']|url\(\s*['"]?)([^"')\s]+)""",
                    re.IGNORECASE)
# What must resolve to a file for the page to look right: scripts, stylesheets and images. (Not the favicon:
# GX 1.24 writes its link one folder short on validation pages, with or without the network.)
LOCAL_FILE = re.compile(
    r'<(?:script\b[^>]*?\bsrc|link\b[^>]*?\brel="stylesheet"[^>]*?\bhref|img\b[^>]*?\bsrc)="([^"]+)"', re.IGNORECASE)
SRI_TAG = re.compile(r'<script\b[^>]*\bsrc="([^"]+)"[^>]*\bintegrity="([^"]+)"', re.IGNORECASE)


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    pytest.skip(f"no headless Chromium on PATH (looked for {', '.join(BROWSERS)}): `apt-get install chromium`")


@pytest.fixture(scope="module")
def assets_dir() -> Path:
    installed = offline_assets.default_dir()
    if not offline_assets.is_installed(installed):
        pytest.skip(f"offline assets not installed in {installed}: run `make install`")
    return installed


def render(chromium: str, page: Path, profile: Path) -> str:
    """The DOM after the page's scripts ran, with every http(s) request failing."""
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         f"--user-data-dir={profile}", *OFFLINE, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def drawn_plots(dom: str, ids: list[str]) -> dict[str, bool]:
    """Per plot div: whether vega drew into it (a <canvas>, or an <svg class="marks"> with the SVG renderer).

    vega-embed's own elements carry no id, so a plot's content runs up to the next plot div."""
    chunks = {chunk.split('"', 1)[0]: chunk for chunk in dom.split('<div id="')[1:]}
    return {id_: "<canvas" in chunks.get(id_, "") or 'class="marks"' in chunks.get(id_, "") for id_ in ids}


# --- dvc plots show -------------------------------------------------------------------------------

def test_dvc_plots_page_draws_offline(chromium, assets_dir, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()

    def run(*args: str) -> None:
        subprocess.run(args, cwd=repo, check=True, capture_output=True, text=True)

    run("git", "init", "-q")
    run(sys.executable, "-m", "dvc", "init", "-q")
    (repo / "history.csv").write_text("epoch,d_loss,g_loss\n1,0.9,1.4\n2,0.7,1.1\n3,0.6,0.9\n")
    (repo / "class_histogram.csv").write_text("class,generated,real\n0,0.4,0.5\n1,0.6,0.5\n")
    (repo / "dvc.yaml").write_text(PLOTS, encoding="utf-8")
    run(sys.executable, "-m", "dvc", "plots", "show", "-o", "cdn")  # DVC's own page, before the wiring

    template = offline_assets.use_in_dvc(repo, assets_dir)  # what `make install` does for this repository
    assert template == str(assets_dir.resolve() / offline_assets.DVC_TEMPLATE_FILE)
    run(sys.executable, "-m", "dvc", "plots", "show")  # plain: the template comes from .dvc/config.local
    page = (repo / "dvc_plots" / "index.html").read_text(encoding="utf-8")
    ids = re.findall(r'<div id = "([^"]+)">', page)
    assert len(ids) == 2, ids
    assert "<script src" not in page and "cdn.jsdelivr.net" not in page
    for package in (offline_assets.VEGA, offline_assets.VEGA_LITE, offline_assets.VEGA_EMBED):
        assert package.folder in page  # the versions comment: the inlined scripts are the pinned ones

    drawn = drawn_plots(render(chromium, repo / "dvc_plots" / "index.html", tmp_path / "profile"), ids)
    assert all(drawn.values()), f"plots not drawn offline: {drawn}"
    cdn = drawn_plots(render(chromium, repo / "cdn" / "index.html", tmp_path / "profile-cdn"), ids)
    assert not any(cdn.values()), f"DVC's CDN page drew offline, so the network was not off: {cdn}"


# --- Data Docs ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cdn_docs(prepare_digits, tmp_path_factory) -> Path:
    """Data Docs from the validate stage's code on 200 built-in digits, in a repository without the assets."""
    prepared = prepare_digits(max_images=200)
    out = tmp_path_factory.mktemp("data-docs")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DVC_ROOT", str(out))  # the repository root the stage sees: no .offline-assets there
        validate.run(prepared, shrunk_params().validation, out / "validation")
    docs = out / "validation" / validate.DOCS_DIR
    assert "cdn.jsdelivr.net" in (docs / "index.html").read_text(encoding="utf-8")
    return docs


@pytest.fixture(scope="module")
def offline_docs(cdn_docs, assets_dir, tmp_path_factory) -> tuple[Path, offline_assets.DocsLocalization]:
    docs = Path(shutil.copytree(cdn_docs, tmp_path_factory.mktemp("offline") / "docs"))
    return docs, offline_assets.localize_data_docs(docs, assets_dir)


def validation_page(docs: Path) -> Path:
    return next(docs.glob("validations/images/**/*.html"))


def test_data_docs_without_assets_are_left_as_they_are(cdn_docs, tmp_path):
    docs = Path(shutil.copytree(cdn_docs, tmp_path / "docs"))
    before = {page: page.read_bytes() for page in docs.rglob("*.html")}
    result = offline_assets.localize_data_docs(docs, tmp_path / "not-installed")
    assert result.assets_dir is None and not result.offline and result.pages == len(before)
    assert "make install" in result.warning and "\n" not in result.warning
    assert {page: page.read_bytes() for page in docs.rglob("*.html")} == before
    assert not (docs / offline_assets.DOCS_ASSETS_DIR).exists()


def test_data_docs_load_only_local_files(offline_docs, cdn_docs):
    docs, result = offline_docs
    pages = sorted(docs.rglob("*.html"))
    assert result.offline and result.warning is None and result.pages == len(pages) >= 5
    for page in pages:
        html = page.read_text(encoding="utf-8")
        for reference in LOADED.findall(html):
            assert not reference.startswith(("http:", "https:", "//")), f"{page.relative_to(docs)}: {reference}"
        for reference in LOCAL_FILE.findall(html):
            assert (page.parent / reference).is_file(), f"{page.relative_to(docs)}: {reference}"
    # Where GX's page names a file's Subresource Integrity hash, the local copy has exactly that hash.
    pinned = SRI_TAG.findall((cdn_docs / "index.html").read_text(encoding="utf-8"))
    assert pinned
    for url, integrity in pinned:
        package, name = offline_assets.DATA_DOCS_URLS[url]
        data = (docs / offline_assets.DOCS_ASSETS_DIR / package.folder / name).read_bytes()
        algorithm, _, expected = integrity.partition("-")
        assert base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == expected, url


def probe(chromium: str, page: Path, profile: Path) -> tuple[dict, str]:
    """Render a copy of `page` (beside it, so its relative links hold) with PROBE appended; its findings and DOM."""
    copy = page.with_name(f"probe-{page.name}")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = render(chromium, copy, profile)
    found = PROBE_RESULT.search(dom)
    assert found, "the probe did not run"
    return json.loads(found.group(1)), dom


def test_data_docs_render_styled_offline(chromium, offline_docs, cdn_docs, tmp_path):
    docs, _ = offline_docs
    for page in (docs / "index.html", validation_page(docs)):
        found, dom = probe(chromium, page, tmp_path / f"profile-{page.stem}")
        assert "ganops-validate" in dom  # GX's content: the validation run
        assert found["flex"] == "flex", found  # bootstrap.min.css applied
        assert "Font Awesome 6 Free" in found["icon_font"] and "Font Awesome 6 Free" in found["fonts_loaded"], found
        assert found["jquery"] and found["bootstrap_js"] and found["vega_embed"], found
        assert found["bootstrap_table"] > 0, found  # bootstrap-table turned GX's tables into its widgets

    cdn_copy = Path(shutil.copytree(cdn_docs, tmp_path / "cdn"))
    cdn, _ = probe(chromium, cdn_copy / "index.html", tmp_path / "profile-cdn")
    assert cdn["flex"] != "flex" and not cdn["fonts_loaded"] and not cdn["jquery"], \
        f"GX's CDN page was styled offline, so the network was not off: {cdn}"
