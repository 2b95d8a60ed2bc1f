"""The pinned npm packages behind the offline pages, and which CDN URL of GX's Data Docs each file serves.

Changing a pin here changes `manifest()`, so `make install` downloads again (`ganops.offline_assets.installer`).
"""

from __future__ import annotations

import dataclasses

REGISTRY = "https://registry.npmjs.org"


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
