"""What the guard knows of a guest's descriptors: the mount and guest path each was opened for.

Why a table of its own: calls that take a descriptor (``path_open`` relative to a folder,
``fd_filestat_set_times``, ``fd_readdir`` ...) must be judged by the rules of the path the
descriptor was opened for, and wasmtime does not say what that was.  The guard follows every
descriptor the guest gets (preopens, ``path_open``, ``fd_renumber``, ``fd_close``) and, when
the guest renames a folder, the paths of the descriptors below it.

In a mount with fine rules a folder's entry also holds an ``O_PATH`` host descriptor of the
very folder the guest's descriptor names, so resolution starts from the object, not its name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MountRoot", "FdEntry", "FdTable"]


@dataclass
class MountRoot:
    """One preopened folder as the guard sees it.

    - ``guest``/``host``: the guest path and the host folder (for messages);
    - ``fd``: an ``O_PATH`` descriptor of the host folder, the same one wasmtime preopened
      (None for folders the guard never resolves in: system folders, the empty root);
    - ``fine``: rules finer than the folder apply inside (globs, single files, carve-outs);
    - ``files``: a single-file mount (a private folder holding only granted files, whose
      names the guest can neither change nor add to);
    - ``writable``: wasmtime mounted it read-write;
    - ``device``: the run's :class:`~workbench.runtime.device.Device` when this is ``/dev/workbench``
      (the guard then asks it, not the policy);
    - ``system``: a read-only folder the language runtime itself provides (its standard library):
      read without a grant, never written, whatever the policy.
    """

    guest: str
    host: str
    fd: int | None = None
    fine: bool = False
    files: bool = False
    writable: bool = False
    device: Any = None
    system: bool = False


class FdEntry:
    """A descriptor: the guest path it was opened for and the mount it lies in.

    ``may_write``: the policy let this path be written when it was opened (checked again by
    calls that change the file through the descriptor); ``host_fd``: for a folder in a fine
    mount, an ``O_PATH`` descriptor of that folder (owned by the table).  (A plain class with
    slots: one is made for every descriptor a guest opens.)"""

    __slots__ = ("path", "mount", "may_write", "directory", "host_fd", "preopen")

    def __init__(self, path: str, mount: MountRoot, may_write: bool = False, directory: bool = True,
                 host_fd: int | None = None, preopen: bool = False) -> None:
        self.path = path
        self.mount = mount
        self.may_write = may_write
        self.directory = directory
        self.host_fd = host_fd
        self.preopen = preopen


@dataclass
class FdTable:
    """The guest's descriptors, by number."""

    entries: dict[int, FdEntry] = field(default_factory=dict)
    preopened: int = 0  #: how many of the entries are the run's preopens (not counted as opened)

    @property
    def opened_count(self) -> int:
        """Descriptors the guest opened and holds now."""
        return len(self.entries) - self.preopened

    def get(self, fd: int) -> FdEntry | None:
        return self.entries.get(fd)

    def preopen(self, fd: int, entry: FdEntry) -> None:
        self.opened(fd, entry)
        self.preopened += 1  # (``entry.preopen`` is set by the caller)

    def opened(self, fd: int, entry: FdEntry) -> None:
        replaced = self.entries.get(fd)
        if replaced is not None and replaced.preopen:
            self.preopened -= 1
        self._release(replaced)
        self.entries[fd] = entry

    def closed(self, fd: int) -> None:
        entry = self.entries.pop(fd, None)
        if entry is not None and entry.preopen:
            self.preopened -= 1
        self._release(entry)

    def renumbered(self, source: int, target: int) -> None:
        moved = self.entries.pop(source, None)
        replaced = self.entries.pop(target, None)
        if replaced is not None and replaced.preopen:
            self.preopened -= 1
        self._release(replaced)
        if moved is not None:
            self.entries[target] = moved

    def renamed(self, old: str, new: str) -> None:
        """``old`` is now ``new``: descriptors at or below it follow (their host objects moved)."""
        prefix = old.rstrip("/") + "/"
        for entry in self.entries.values():
            if entry.path == old:
                entry.path = new
            elif entry.path.startswith(prefix):
                entry.path = new.rstrip("/") + "/" + entry.path[len(prefix):]

    def close_all(self) -> None:
        for entry in self.entries.values():
            self._release(entry)
        self.entries.clear()

    @staticmethod
    def _release(entry: FdEntry | None) -> None:
        if entry is not None and entry.host_fd is not None:
            fd, entry.host_fd = entry.host_fd, None
            try:
                os.close(fd)
            except OSError:
                pass
