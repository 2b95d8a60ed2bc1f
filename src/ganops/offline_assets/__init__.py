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

The pins and the URLs they serve are in `pins`, downloading and the DVC template in `installer`, the Data Docs
rewrite in `data_docs`; their public names are all here.
"""

from ganops.offline_assets.data_docs import DOCS_ASSETS_DIR, DocsLocalization, localize_data_docs
from ganops.offline_assets.installer import (
    ASSETS_DIR,
    DVC_TEMPLATE_FILE,
    MANIFEST_FILE,
    PACKAGES_DIR,
    default_dir,
    dvc_template,
    install,
    is_installed,
    manifest,
    use_in_dvc,
)
from ganops.offline_assets.pins import (
    BOOTSTRAP,
    BOOTSTRAP_DARK,
    BOOTSTRAP_TABLE,
    BOOTSTRAP_TABLE_FILTER_CSS,
    DATA_DOCS_URLS,
    DATEPICKER,
    FONT_AWESOME,
    JQUERY,
    PACKAGES,
    POPPER,
    VEGA,
    VEGA_EMBED,
    VEGA_LITE,
    Package,
)

__all__ = [
    "ASSETS_DIR", "BOOTSTRAP", "BOOTSTRAP_DARK", "BOOTSTRAP_TABLE", "BOOTSTRAP_TABLE_FILTER_CSS", "DATA_DOCS_URLS",
    "DATEPICKER", "DOCS_ASSETS_DIR", "DVC_TEMPLATE_FILE", "FONT_AWESOME", "JQUERY", "MANIFEST_FILE", "PACKAGES",
    "PACKAGES_DIR", "POPPER", "VEGA", "VEGA_EMBED", "VEGA_LITE", "DocsLocalization", "Package", "default_dir",
    "dvc_template", "install", "is_installed", "localize_data_docs", "manifest", "use_in_dvc",
]
