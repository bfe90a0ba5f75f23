"""The npm-installed browser files aisoule serves (pinned in package-lock.json, never a CDN).

Where they are read from, first found wins: ``AISOULE_ASSETS_DIR`` (a node_modules folder), the
copy a built wheel carries (``aisoule/vendor/``, made by the build: setup.py), then the source
checkout's ``node_modules`` (``make run`` fills it). The copy mirrors node_modules' layout, so
one relative path names a file in all three.

This module imports nothing of aisoule: setup.py loads it by path to make the copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# URL name under /static/vendor -> (path under node_modules, media type).
DASHBOARD: dict[str, tuple[str, str]] = {
    "htmx.min.js": ("htmx.org/dist/htmx.min.js", "text/javascript"),
}
API_DOCS: dict[str, tuple[str, str]] = {
    "swagger-ui-bundle.js": ("swagger-ui-dist/swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": ("swagger-ui-dist/swagger-ui.css", "text/css"),
    "favicon.png": ("swagger-ui-dist/favicon-32x32.png", "image/png"),
    "redoc.standalone.js": ("redoc/bundles/redoc.standalone.js", "text/javascript"),
}
# Shipped beside the files: each package's licence and its package.json (name, version).
_ALONGSIDE = ("LICENSE", "NOTICE", "package.json")

HERE = Path(__file__).resolve().parent
PACKAGED = HERE / "vendor"
CHECKOUT = HERE.parent / "node_modules"


def _files() -> list[str]:
    return [rel for rel, _ in (*DASHBOARD.values(), *API_DOCS.values())]


def complete(root: Path) -> bool:
    return all((root / rel).is_file() for rel in _files())


def default_dir() -> Path:
    """The wheel's copy when it holds every file, else the checkout's node_modules."""
    return PACKAGED if complete(PACKAGED) else CHECKOUT


def copy_into_package(source: Path = CHECKOUT, target: Path = PACKAGED) -> list[Path]:
    """The served files (and their packages' licences) from ``source`` into ``target``, replacing
    what was there; the files written. Refuses when ``source`` lacks one (run ``npm ci``)."""
    missing = [rel for rel in _files() if not (source / rel).is_file()]
    if missing:
        raise FileNotFoundError(
            f"browser assets missing under {source}: {', '.join(missing)} (run `npm ci` at the "
            "repository root)"
        )
    if target.exists():
        shutil.rmtree(target)
    written = []
    packages = {rel.split("/", 1)[0] for rel in _files()}
    wanted = _files() + [f"{p}/{name}" for p in sorted(packages) for name in _ALONGSIDE]
    for rel in wanted:
        src = source / rel
        if not src.is_file():
            continue  # a package without a NOTICE
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        written.append(dest)
    return written
