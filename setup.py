"""The one build step pyproject.toml cannot declare: the wheel carries the built-in catalog.

The catalog lives at the repository's root (``extensions/``: the design's top-level folder, read
in place by a checkout and an editable install).  A wheel holds only what is inside the package,
so ``build_py`` copies the folder into the built package as ``workbench/extensions/``
(``workbench/builtin_catalog.py`` finds either).  Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CATALOG = Path(__file__).resolve().parent / "extensions"


class BuildWithCatalog(build_py):
    """``build_py``, then ``extensions/`` copied into the built package (not for an editable install,
    which reads the repository's own folder)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "workbench" / "extensions"
        shutil.rmtree(target, ignore_errors=True)  # never a stale module from an earlier build
        shutil.copytree(CATALOG, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithCatalog})
