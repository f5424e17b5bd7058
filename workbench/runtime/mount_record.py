"""What a run records of its mounts: one ``filesystem``/``mount`` event per mount, in order.

Why apart from the run: the record says exactly what the guest could reach (a single-file
mount lists its files, and which were created or copied for this run; a fine mount is
marked; the language runtime's own read-only folders say whose they are), and the
notebook's mount lines and the audit log read it.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..languages import Program
from .context import Emit
from .mounts import Mount, OpenMounts

__all__ = ["record_mounts"]


def record_mounts(emit: Emit, mounts: Sequence[Mount], opened: OpenMounts, program: Program) -> None:
    """Emit one mount event for each of ``mounts`` and each of the language's system mounts."""
    for mount in mounts:
        detail: dict[str, Any] = {"writable": mount.writable, "scratch": mount.scratch}
        if mount.files:
            names = {guest for guest, _ in mount.files}
            detail["files"] = [guest for guest, _ in mount.files]
            created = [g for g in opened.created if g in names]
            copied = [g for g in opened.copied if g in names]
            if created:
                detail["created"] = created
            if copied:
                detail["copied"] = copied
        if mount.fine:
            detail["fine"] = True
        emit("filesystem", "mount", target=mount.guest_path, resolved=mount.guest_path,
             capability=mount.capability, detail=detail)
    for system in program.system_mounts:
        emit("filesystem", "mount", target=system.guest_path, resolved=system.guest_path,
             reason=f"read-only {system.purpose}, provided by the {program.lang} runtime",
             detail={"writable": False, "system": True})
