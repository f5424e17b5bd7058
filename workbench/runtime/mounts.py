"""From filesystem grants to WASI preopens: the guest's virtual filesystem.

Guest paths are virtual: ``/`` is the sandbox's workspace root, so
``filesystem:read:/docs`` preopens ``<root>/docs`` read-only as ``/docs``.
``/tmp`` is a private scratch folder made for the run (unless ``;host=`` says
otherwise), and ``;host=PATH`` maps a guest path to any host folder.  A guest
sees exactly these folders; wasmtime's WASI (cap-std) refuses ``..``, absolute
paths and symlinks that leave a preopen.

Preopens can only be whole folders, so finer grants are mounted by their folder
and enforced per call by the WASI guard (:mod:`workbench.runtime.guard`):

- a glob grant ``/data/**/*.json`` mounts ``/data``;
- a single-file grant ``/docs/a.txt`` mounts ``/docs``;
- a deny carve-out inside a grant leaves the mount as it is.

Those mounts are marked ``fine``; a deny rule covering a whole grant removes it.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PolicyError

__all__ = ["Mount", "plan_mounts", "host_root", "learn_mounts"]

SCRATCH = "/tmp"


@dataclass(frozen=True)
class Mount:
    """One guest folder and the host folder behind it."""

    guest_path: str
    host_path: str
    writable: bool
    capability: str
    scratch: bool = False
    fine: bool = False  # the guard enforces rules finer than this folder

    def __str__(self) -> str:
        mode = "read-write" if self.writable else "read-only"
        where = "private scratch" if self.scratch else self.host_path
        return f"{self.guest_path} → {where} ({mode})"


def _inside(path: str, folder: str) -> bool:
    return folder == "/" or path == folder or path.startswith(folder.rstrip("/") + "/")


def _folder_of(grant: Any, root: Path) -> tuple[str, Path | None, bool]:
    """(guest folder to mount, its host folder or None for scratch, fine?) for one grant."""
    guest = grant.guest_path
    fine = grant.pattern is not None
    if grant.host is not None:
        host = Path(grant.host).expanduser()
        if grant.pattern is None and host.is_file():
            return posixpath.dirname(guest) or "/", host.parent, True
        return guest, host, fine
    if guest == SCRATCH or (guest.startswith(SCRATCH + "/")):
        return SCRATCH, None, fine or guest != SCRATCH
    host = root / guest.lstrip("/")
    if grant.pattern is None and not host.is_dir():
        parent = host.parent
        if host.is_file() or (grant.writable and not host.exists() and parent.is_dir()):
            return posixpath.dirname(guest) or "/", parent, True  # a single file: mount its folder
    return guest, host, fine


def plan_mounts(policy: Any, root: Path, scratch: Path | None) -> list[Mount]:
    """The preopens for ``policy``: checked, merged (write wins), in a stable order.

    ``scratch`` is the run's private folder for ``/tmp``; pass ``None`` to only
    check the policy (a placeholder is then shown for ``/tmp``).
    """
    denies = [c for c in policy.denies if c.domain == "filesystem"]
    by_guest: dict[str, Mount] = {}
    for grant in policy.filesystem_grants():
        covering = [c for c in denies if c.scope and _inside(grant.guest_path, c.scope)]
        if any(c.action == "read" for c in covering):
            continue  # a read deny over the whole grant: deny wins, nothing to mount
        writable = grant.writable and not covering  # a write deny over it leaves it read-only
        guest, host, fine = _folder_of(grant, root)
        fine = fine or any(c.scope and c.scope != guest and _inside(c.scope, guest) for c in denies)
        is_scratch = host is None
        if is_scratch:
            host = scratch if scratch is not None else Path("<scratch>")
        else:
            assert host is not None
            if not host.exists():
                raise PolicyError(
                    f"granted folder {grant.guest_path} does not exist (looked for {host})",
                    hint="create it, fix the capability, or map it with ;host=PATH",
                )
            if not host.is_dir():
                raise PolicyError(f"granted path {guest} is not a folder ({host})", hint="grant the folder that holds it")
            host = host.resolve()
        previous = by_guest.get(guest)
        if previous is not None:  # several grants on one folder: write wins, finer rules stay checked
            capability = str(grant.capability) if writable and not previous.writable else previous.capability
            writable = writable or previous.writable
            fine = fine or previous.fine
        else:
            capability = str(grant.capability)
        by_guest[guest] = Mount(guest, str(host), writable, capability, is_scratch, fine)
    return [by_guest[g] for g in sorted(by_guest, key=lambda g: (g.count("/"), g))]


def learn_mounts(root: Path, scratch: Path | None) -> list[Mount]:
    """Learn mode: the whole workspace root read-write at ``/`` (and the private ``/tmp``),
    every access allowed and recorded by the guard."""
    mounts = [Mount("/", str(root), True, "learn-mode", False, False)]
    if scratch is not None:
        mounts.append(Mount(SCRATCH, str(scratch), True, "learn-mode", True, False))
    return mounts


def host_root(root: str | os.PathLike[str]) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise PolicyError(f"sandbox root {path} is not a folder", hint="pass root= an existing folder")
    return path.resolve()
