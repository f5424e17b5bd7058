"""From filesystem grants to WASI preopens: the guest's virtual filesystem.

Guest paths are virtual: ``/`` is the sandbox's workspace root, so
``filesystem:read:/docs`` preopens ``<root>/docs`` read-only as ``/docs``.
``/tmp`` is a private scratch folder made for the run (unless ``;host=`` says
otherwise), and ``;host=PATH`` maps a guest path to any host folder.  A guest
sees exactly these folders and nothing else; wasmtime's WASI (cap-std) refuses
``..``, absolute paths and symlinks that leave a preopen.

Fail closed: a glob grant or a deny carved out *inside* a grant cannot be
expressed as preopens, so until the WASI guard enforces them they are refused
with an error instead of silently granting the whole folder.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PolicyError

__all__ = ["Mount", "plan_mounts"]


@dataclass(frozen=True)
class Mount:
    """One guest folder and the host folder behind it."""

    guest_path: str
    host_path: str
    writable: bool
    capability: str
    scratch: bool = False

    def __str__(self) -> str:
        mode = "read-write" if self.writable else "read-only"
        where = "private scratch" if self.scratch else self.host_path
        return f"{self.guest_path} → {where} ({mode})"


def _inside(path: str, folder: str) -> bool:
    return folder == "/" or path == folder or path.startswith(folder.rstrip("/") + "/")


def plan_mounts(policy: Any, root: Path, scratch: Path | None) -> list[Mount]:
    """The preopens for ``policy``: checked, merged (write wins), in a stable order.

    ``scratch`` is the run's private folder for ``/tmp``; pass ``None`` to only
    check the policy (a placeholder is then shown for ``/tmp``).
    """
    grants = list(policy.filesystem_grants())
    denies = [c for c in policy.denies if c.domain == "filesystem"]
    by_guest: dict[str, Mount] = {}
    for grant in grants:
        if grant.pattern is not None:
            raise PolicyError(
                f"glob grant {grant.capability} needs per-file checks, which this version does not enforce yet",
                hint=f"grant the folder instead (filesystem:{'write' if grant.writable else 'read'}:{grant.guest_path})",
            )
        guest = grant.guest_path
        if any(_inside(guest, c.scope) for c in denies):
            continue  # the whole grant is denied: deny wins
        inner = [c for c in denies if c.scope != guest and _inside(c.scope, guest)]
        if inner:
            raise PolicyError(
                f"deny rule {inner[0]} carves a hole inside {grant.capability}; this version cannot enforce "
                "deny carve-outs inside a granted folder yet",
                hint="grant only the sub-folders the module needs instead",
            )
        if grant.host is not None:
            host = Path(grant.host).expanduser()
            is_scratch = False
        elif guest == "/tmp" and scratch is not None:
            host, is_scratch = scratch, True
        elif guest == "/tmp":
            host, is_scratch = Path("<scratch>"), True
        else:
            host = root / guest.lstrip("/")
            is_scratch = False
        if not is_scratch:
            if not host.exists():
                raise PolicyError(
                    f"granted folder {guest} does not exist (looked for {host})",
                    hint=f"create it, fix the capability, or map it with ;host=PATH",
                )
            if not host.is_dir():
                raise PolicyError(f"granted path {guest} is not a folder ({host})", hint="grant the folder that holds it")
            host = host.resolve()
        previous = by_guest.get(guest)
        writable = grant.writable or (previous.writable if previous else False)
        capability = str(grant.capability) if grant.writable or previous is None else previous.capability
        by_guest[guest] = Mount(guest, str(host), writable, capability, is_scratch)
    return [by_guest[g] for g in sorted(by_guest, key=lambda g: (g.count("/"), g))]


def normalise_guest_path(path: str) -> str:
    """``/a//b/`` → ``/a/b`` (no ``..`` resolution: callers reject those)."""
    return posixpath.normpath("/" + path.lstrip("/")) if path else "/"


def host_root(root: str | os.PathLike[str]) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise PolicyError(f"sandbox root {path} is not a folder", hint="pass root= an existing folder")
    return path.resolve()
