"""Where catalog modules are found: the built-in ``extensions/`` and the user's own folders.

The user's folders come from ``WORKBENCH_EXTENSIONS`` (paths separated by ``os.pathsep``) or
``Catalog(folders=...)``; they are searched before the built-in folder, so a user's module of
the same name replaces the built-in one.  Each module is a sub-folder with a ``manifest.toml``.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Iterable

from ..builtin_catalog import BUILTIN_EXTENSIONS
from ..errors import ModuleError
from .manifest import Manifest, load_manifest

__all__ = ["Catalog", "default_catalog", "BUILTIN", "ENV_VAR"]

#: the built-in catalog: the repository's extensions/ (a checkout, an editable install) or the
#: package's own copy (a wheel): see workbench/builtin_catalog.py
BUILTIN = BUILTIN_EXTENSIONS
ENV_VAR = "WORKBENCH_EXTENSIONS"


class Catalog:
    """The modules in ``folders`` (searched in order) and then the built-in ``extensions/``."""

    def __init__(self, folders: Iterable[str | os.PathLike[str]] = (), *, builtin: bool = True) -> None:
        self.folders = [Path(f).expanduser() for f in folders]
        if builtin:
            self.folders.append(BUILTIN)

    def names(self) -> list[str]:
        seen: list[str] = []
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for child in sorted(folder.iterdir()):
                if (child / "manifest.toml").is_file() and child.name not in seen:
                    seen.append(child.name)
        return sorted(seen)

    def get(self, name: str) -> Manifest:
        """The checked manifest of ``name`` (ModuleError naming close matches when there is none)."""
        if isinstance(name, str) and "/" not in name and "\\" not in name and name not in ("", ".", ".."):
            for folder in self.folders:
                if (folder / name / "manifest.toml").is_file():
                    return load_manifest(folder / name)
        names = self.names()
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the catalog has: {', '.join(names) or 'nothing'}"
        raise ModuleError(f"no module {name!r} in the catalog", hint=hint)

    def manifests(self) -> list[Manifest]:
        return [self.get(name) for name in self.names()]


def default_catalog() -> Catalog:
    """The built-in catalog plus the folders in ``WORKBENCH_EXTENSIONS``."""
    extra = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return Catalog(extra)
