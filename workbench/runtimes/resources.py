"""Checks made before the expensive steps: free memory for the first compile, free disk for the files.

Why up front: compiling the scientific interpreter (104 MB of wasm, 89,000 functions) takes about
2.3 GB of memory in the compile helper for most of a minute; on a machine without it, the kernel's
OOM killer ends the helper (or worse, the notebook's kernel) after that minute.  Saying so first,
with the figures, costs a file read.

Available memory is the kernel's own estimate (``MemAvailable`` in ``/proc/meminfo``), capped by
the cgroup's limit when this process runs in one (a container); elsewhere, free pages
(``sysconf``), which underestimates, on the safe side.  ``WORKBENCH_SKIP_MEMORY_CHECK=1`` skips
the check (for a machine whose swap or overcommit the estimate does not see).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import InstallError
from .pins import RuntimeSpec

__all__ = ["available_memory", "check_memory", "check_disk", "disk_needed"]


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """What the cgroup (v2) still allows this process's group, when it has a limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text().strip()), 0)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes of memory a new process could use now, or None when this platform does not say."""
    found = _meminfo_available()
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            found = None
    room = _cgroup_room()
    if room is not None:
        found = room if found is None else min(found, room)
    return found


def check_memory(spec: RuntimeSpec, *, available: int | None = None) -> None:
    """Raise :class:`InstallError` when the first compile of ``spec`` would not fit in memory."""
    if os.environ.get("WORKBENCH_SKIP_MEMORY_CHECK", "") not in ("", "0"):
        return
    free = available_memory() if available is None else available
    if free is None or free >= spec.compile_memory_bytes:
        return
    raise InstallError(
        f"compiling the {spec.name} runtime needs about {spec.compile_memory_bytes / 1e9:.1f} GB of free memory "
        f"once; this machine has {free / 1e9:.1f} GB available",
        hint="close other programs (or give the container more memory) and try again; "
        "WORKBENCH_SKIP_MEMORY_CHECK=1 skips this check if you know better",
    )


def disk_needed(spec: RuntimeSpec) -> int:
    """Bytes an install uses at its peak: the wheel, the files taken from it, their compiled form."""
    compiled = 3 * spec.interpreter.size  # measured: 286 MB compiled + a 40 MB memory image for 104 MB
    return spec.wheel_size + spec.interpreter.size + 2 * spec.stdlib.size + compiled


def check_disk(folder: Path, spec: RuntimeSpec) -> None:
    """Raise :class:`InstallError` when ``folder``'s file system has no room for an install of ``spec``."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    need = disk_needed(spec)
    if free < need:
        raise InstallError(
            f"installing the {spec.name} runtime needs about {need / 1e6:.0f} MB of disk; {folder} has {free / 1e6:.0f} MB free",
            hint="free some disk, or set WORKBENCH_RUNTIMES_DIR to a folder on a larger disk",
        )
