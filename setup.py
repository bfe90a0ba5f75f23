"""The build's one step beyond pyproject.toml: the browser assets into the package.

``pip wheel .`` and ``python -m build`` copy the npm-installed files aisoule serves (htmx, Swagger
UI, ReDoc; pinned in package-lock.json) from node_modules into aisoule/vendor/ (git-ignored), so
the wheel carries them and an installed aisoule serves its pages without node_modules
(aisoule/assets.py). Run ``npm ci`` first. An sdist carries the copy, so a wheel built from it
(``python -m build`` does) needs no node_modules. The checkout keeps no copy afterwards. An editable install (``pip install -e``) reads
the checkout's node_modules and makes no copy.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent


def _vendor() -> bool:
    """Copy the assets into the package; whether it did (False: an sdist's copy is there)."""
    spec = importlib.util.spec_from_file_location("_aisoule_assets", HERE / "aisoule" / "assets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not (HERE / "node_modules").is_dir() and module.complete(module.PACKAGED):
        return False  # building from an sdist: it carries the copy
    try:
        written = module.copy_into_package()
    except FileNotFoundError as exc:
        raise SystemExit(f"aisoule build: {exc}") from None
    print(f"aisoule build: {len(written)} browser asset files into {module.PACKAGED}")
    return True


def _unvendor() -> None:
    """The checkout keeps no copy once it is in the build: a later `npm ci` could leave it
    stale, and the app reads the copy before node_modules."""
    shutil.rmtree(HERE / "aisoule" / "vendor", ignore_errors=True)


class BuildPy(build_py):
    def run(self) -> None:
        made = not getattr(self, "editable_mode", False) and _vendor()
        try:
            super().run()
        finally:
            if made:
                _unvendor()


class Sdist(sdist):
    def run(self) -> None:
        made = _vendor()
        try:
            super().run()
        finally:
            if made:
                _unvendor()


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
