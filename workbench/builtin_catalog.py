"""Where the built-in catalog (the repository's ``extensions/``) is, in a checkout and installed.

The design keeps the catalog at the repository's root, beside the package: a checkout and an
editable install read it there.  A wheel installs only what is inside the package, so its build
(``setup.py``) copies the folder into the package as ``workbench/extensions/``.  This module
answers which of the two this installation has; the catalog (:mod:`workbench.modules.catalog`)
and the C adapter (``workbench.h``) both ask it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUILTIN_EXTENSIONS", "builtin_extensions"]

_PACKAGE = Path(__file__).resolve().parent


def builtin_extensions(package: Path = _PACKAGE) -> Path:
    """The built-in catalog folder for the package at ``package``: its own copy (a wheel), else the
    ``extensions/`` beside it (a checkout or an editable install)."""
    installed = package / "extensions"
    if (installed / "include").is_dir():
        return installed
    return package.parent / "extensions"


#: found once, at import
BUILTIN_EXTENSIONS = builtin_extensions()
