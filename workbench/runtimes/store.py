"""Where installed runtimes live, how an installation is recognised as intact, and removal.

The folder is ``$WORKBENCH_RUNTIMES_DIR``, else ``runtimes/`` in the compile cache's folder
(:func:`~workbench.runtime.cache.default_cache_dir`).  It obeys the compile cache's rules
(:mod:`workbench.runtime.private_files`), because it holds native code that is loaded as it is
found (the interpreter compiled once, ~290 MB): made 0700 and used only if it is this user's and
no one else can write to it.  One runtime is one folder, ``<name>/``:

- the pinned files (``python-snapshot.wasm``, ``lib/python315.zip``), ``data/`` (matplotlib's);
- ``compiled/``: the interpreter compiled for its engine (a :class:`~workbench.runtime.CompileCache`);
- ``installed.meta``: a checked record of what was installed (the spec's pins) and of each pinned
  file's identity (size, times, inode) when it was verified.  A later process trusts a file
  still matching its identity without hashing 160 MB again; a file that changed makes the
  installation "damaged" (reinstall), never used.

An install is built in ``.install-<name>-*`` beside it and renamed into place last, so a
folder named ``<name>`` is whole or absent; leftovers of an interrupted install are removed by
the next install or ``remove``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import InstallError, RuntimeMissingError
from ..runtime.private_files import ensure_private_dir, identity, read_checked, write_checked
from .pins import CATALOG, RuntimeSpec, spec_for

__all__ = ["runtimes_dir", "Installed", "installed", "require", "write_record", "disk_use", "listing",
           "remove", "locked", "RECORD", "TEMP_PREFIX"]

RECORD = "installed.meta"
TEMP_PREFIX = ".install-"
_FORMAT = 1


def runtimes_dir() -> Path:
    """``$WORKBENCH_RUNTIMES_DIR``, else ``<compile cache folder>/runtimes``."""
    explicit = os.environ.get("WORKBENCH_RUNTIMES_DIR")
    if explicit:
        return Path(explicit)
    from ..runtime.cache import default_cache_dir

    return default_cache_dir() / "runtimes"


def _private(directory: Path) -> Path:
    if not ensure_private_dir(directory):
        raise InstallError(
            f"the runtimes folder {directory} cannot be used: it could not be made, or another user can write to it",
            hint="make it yours with mode 0700 (chmod 700), or set WORKBENCH_RUNTIMES_DIR to a private folder",
        )
    return directory


@contextlib.contextmanager
def locked(directory: Path | None = None) -> Iterator[Path]:
    """Hold the runtimes folder's lock (one install or removal at a time, across processes)."""
    base = _private(directory or runtimes_dir())
    with open(base / ".lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield base
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _record_key(spec: RuntimeSpec) -> str:
    return f"runtime:{spec.name}:{spec.wheel_sha256}:{_FORMAT}"


def write_record(folder: Path, spec: RuntimeSpec) -> None:
    """Record ``folder`` as an installation of ``spec``: its pins and its files' identities now."""
    files = {artifact.path: identity(folder / artifact.path) for artifact in spec.artifacts}
    body = {"name": spec.name, "requirement": spec.requirement, "files": files,
            "sha256": {artifact.path: artifact.sha256 for artifact in spec.artifacts}}
    if not write_checked(folder, folder / RECORD, _record_key(spec), json.dumps(body).encode()):
        raise InstallError(f"could not write the installation record in {folder}",
                           hint="check the folder's permissions and free disk space")


@dataclass(frozen=True)
class Installed:
    """An intact installation: its folder and where each part is."""

    spec: RuntimeSpec
    folder: Path

    @property
    def interpreter(self) -> Path:
        return self.folder / self.spec.interpreter.path

    @property
    def stdlib_dir(self) -> Path:
        """The folder holding only the stdlib zip (mounted read-only at ``/usr/local/lib``)."""
        return (self.folder / self.spec.stdlib.path).parent

    @property
    def data_dir(self) -> Path | None:
        return self.folder / "data" if self.spec.data_member else None

    @property
    def compiled_dir(self) -> Path:
        return self.folder / "compiled"


def installed(spec: RuntimeSpec, directory: Path | None = None) -> Installed | None:
    """The installation of ``spec`` if it is there and intact (its files are those verified), else None."""
    folder = (directory or runtimes_dir()) / spec.name
    if not (folder / RECORD).is_file():
        return None
    payload = read_checked(folder, folder / RECORD, _record_key(spec))
    try:
        body = json.loads(payload) if payload is not None else None
        current = {artifact.path: identity(folder / artifact.path) for artifact in spec.artifacts}
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or body.get("files") != current:
        return None
    return Installed(spec, folder)


def require(name: str, directory: Path | None = None) -> Installed:
    """The intact installation of runtime ``name``, or :class:`RuntimeMissingError` with the command
    that installs it (an unknown name is :class:`~workbench.errors.UnknownRuntimeError`)."""
    spec = spec_for(name)
    found = installed(spec, directory)
    if found is not None:
        return found
    folder = (directory or runtimes_dir()) / spec.name
    damaged = folder.exists()
    raise RuntimeMissingError(
        f"the {spec.name} runtime is {'damaged (its files changed since they were verified)' if damaged else 'not installed'}"
        f" ({spec.requirement}: {spec.description})",
        runtime=spec.name,
        hint=f"install it once with: workbench runtimes install {spec.name}"
        + (" (it replaces the damaged copy)" if damaged else ""),
    )


def disk_use(path: Path) -> int:
    """Bytes of every file under ``path`` (links are not followed)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for top, _, files in os.walk(path, followlinks=False):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


@dataclass(frozen=True)
class Listing:
    """One row of ``workbench runtimes list``."""

    name: str
    requirement: str
    state: str  # "installed", "not installed", "damaged"
    disk_bytes: int
    folder: Path
    description: str


def listing(directory: Path | None = None) -> list[Listing]:
    """Every runtime the catalog knows, with its state and disk use."""
    base = directory or runtimes_dir()
    rows = []
    for name in sorted(CATALOG):
        spec = CATALOG[name]
        folder = base / name
        if installed(spec, base) is not None:
            state = "installed"
        elif folder.exists():
            state = "damaged"
        else:
            state = "not installed"
        rows.append(Listing(name, spec.requirement, state, disk_use(folder) if folder.exists() else 0, folder,
                            spec.description))
    return rows


def leftovers(base: Path, name: str) -> list[Path]:
    """Folders of interrupted installs of ``name``."""
    try:
        return [entry for entry in base.iterdir() if entry.name.startswith(f"{TEMP_PREFIX}{name}-")]
    except OSError:
        return []


def remove(name: str, directory: Path | None = None) -> int:
    """Delete runtime ``name`` (and leftovers of interrupted installs); returns the bytes freed."""
    spec = spec_for(name)
    base = directory or runtimes_dir()
    if not base.exists():
        return 0
    with locked(base):
        targets = [base / spec.name, *leftovers(base, spec.name)]
        freed = 0
        for target in targets:
            if target.exists() or target.is_symlink():
                freed += disk_use(target)
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
        return freed
