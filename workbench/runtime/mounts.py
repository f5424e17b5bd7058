"""From filesystem grants to WASI preopens: the guest's virtual filesystem.

Guest paths are virtual: ``/`` is the sandbox's workspace root, so
``filesystem:read:/docs`` preopens ``<root>/docs`` read-only as ``/docs``.
``/tmp`` is a private scratch folder made for the run (unless ``;host=`` says
otherwise), and ``;host=PATH`` maps a guest path to any host folder or file.  A guest
sees exactly these folders; wasmtime's WASI (cap-std) refuses ``..``, absolute
paths and symlinks that leave a preopen.

Planning (:func:`plan_mounts`, at ``Sandbox(...)`` and again for every run) decides the
shape; opening (:func:`open_mounts`, per run) makes it real, race-free:

- a folder is reached from the root one component at a time (:mod:`hostwalk`), and
  wasmtime preopens that very folder (``/proc/self/fd/N``), so a symlink planted by an
  earlier guest can never carry a mount outside the root; only an explicit ``;host=``
  names a place outside it;
- a single-file grant never mounts its folder: the file is hard-linked into a private
  folder made for the run, which is mounted in the file's place (a file that cannot be
  linked there is copied for a read grant, refused for a write grant); a write grant on a
  missing file creates exactly that file, a read grant on one is refused;
- a file granted inside a granted folder rides on that folder's mount;
- a glob grant ``/data/**/*.json`` mounts ``/data``;
- rules finer than a folder (globs anywhere above or below it, deny carve-outs, single
  files) mark the mount ``fine``: the WASI guard then resolves and checks every call in it;
- a deny rule covering a whole grant removes its mount (read) or makes it read-only (write).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PolicyError
from ..policy.filesystem import deny_matches, reach
from .fdtable import MountRoot
from .hostwalk import O_PATH, WalkMissing, WalkRefused, walk

__all__ = ["Mount", "OpenMounts", "plan_mounts", "open_mounts", "host_root", "learn_mounts", "file_grants_of"]

SCRATCH = "/tmp"
_PROC_FD = Path("/proc/self/fd")


@dataclass(frozen=True)
class Mount:
    """One guest folder and the host folder behind it.

    ``files``: the single-file grants it carries, as ``(guest file, host file)``; for a
    ``file_mount`` they are all it holds (a private folder is made for each run).
    ``fine``: the guard enforces rules finer than this folder."""

    guest_path: str
    host_path: str
    writable: bool
    capability: str
    scratch: bool = False
    fine: bool = False
    files: tuple[tuple[str, str], ...] = ()
    file_mount: bool = False
    mapped: bool = False  # named by an explicit ;host= (not the root's own folder)

    def __str__(self) -> str:
        mode = "read-write" if self.writable else "read-only"
        if self.file_mount:
            shown = ", ".join(f"{guest} → {host}" for guest, host in self.files)
            return f"{shown} ({mode} file{'s' if len(self.files) > 1 else ''})"
        where = "private scratch" if self.scratch else self.host_path
        return f"{self.guest_path} → {where} ({mode})"


def file_grants_of(mounts: tuple[Mount, ...] | list[Mount]) -> frozenset[str]:
    """Guest paths of every single-file grant (they cover exactly that file)."""
    return frozenset(guest for mount in mounts for guest, _ in mount.files)


def _inside(path: str, folder: str) -> bool:
    return folder == "/" or path == folder or path.startswith(folder.rstrip("/") + "/")


@dataclass
class _Draft:
    guest: str
    host: Path | None  # None: scratch
    writable: bool
    capability: str
    fine: bool = False
    files: list[tuple[str, str]] = field(default_factory=list)
    file_mount: bool = False
    explicit: bool = False  # from ;host=


def _kind(grant: Any, root: Path) -> tuple[str, Path | None, bool]:
    """("folder" | "file" | "scratch", host path, explicit ;host=) of one grant."""
    guest = grant.guest_path
    if grant.host is not None:
        host = Path(grant.host).expanduser()
        if not host.is_absolute():
            host = root / host
        if grant.pattern is None and host.is_file():
            return "file", host, True
        return "folder", host, True
    if guest == SCRATCH or guest.startswith(SCRATCH + "/"):
        return "scratch", None, False
    host = root / guest.lstrip("/")
    if grant.pattern is None and not host.is_dir():
        if host.is_file() or (grant.writable and not os.path.lexists(host) and host.parent.is_dir()):
            return "file", host, False
    return "folder", host, False


def _check_beneath(host: Path, root: Path, guest: str, *, is_file: bool) -> None:
    """A path under the root must not lead outside it through a symlink (checked again, race-free, per run)."""
    real = Path(os.path.realpath(host))
    if real != root and root not in real.parents:
        what = "file" if is_file else "folder"
        raise PolicyError(
            f"granted {what} {guest} leads outside the sandbox root through a symlink ({host} → {real})",
            hint="mount planning never follows a link out of the root; map a host path explicitly with ;host=PATH",
        )


def plan_mounts(policy: Any, root: Path, scratch: Path | None = None) -> list[Mount]:
    """The preopens for ``policy``: checked, merged (write wins), in a stable order.

    Pure planning: nothing on the host is created or opened (see :func:`open_mounts`).
    ``scratch`` is accepted for compatibility and ignored.
    """
    denies = [c for c in policy.denies if c.domain == "filesystem"]
    drafts: dict[str, _Draft] = {}
    singles: list[tuple[Any, Path, bool, bool]] = []  # (grant, host file, writable, explicit)
    for grant in policy.filesystem_grants():
        covering = [c for c in denies if c.scope and deny_matches(c, grant.guest_path)]
        if any(c.action == "read" for c in covering):
            continue  # a read deny over the whole grant: deny wins, nothing to mount
        writable = grant.writable and not covering  # a write deny over it leaves it read-only
        kind, host, explicit = _kind(grant, root)
        if kind == "file":
            assert host is not None
            if not explicit:
                _check_beneath(host, root, grant.guest_path, is_file=True)
            singles.append((grant, host, writable, explicit))
            continue
        if kind == "scratch":
            guest = SCRATCH
        else:
            guest = grant.guest_path
            assert host is not None
            if not host.exists():
                raise PolicyError(
                    f"granted {'folder' if grant.pattern or not grant.writable else 'path'} {grant.guest_path} "
                    f"does not exist (looked for {host})",
                    hint="create it, fix the capability, or map it with ;host=PATH",
                )
            if not host.is_dir():
                raise PolicyError(f"granted path {guest} is not a folder ({host})", hint="grant the folder that holds it")
            if not explicit:
                _check_beneath(host, root, guest, is_file=False)
        fine = grant.pattern is not None or kind == "scratch" and grant.guest_path != SCRATCH
        previous = drafts.get(guest)
        if previous is None:
            drafts[guest] = _Draft(guest, host if kind != "scratch" else None, writable, str(grant.capability), fine,
                                   explicit=explicit)
        else:  # several grants on one folder: write wins, finer rules stay checked
            if writable and not previous.writable:
                previous.capability = str(grant.capability)
            previous.writable = previous.writable or writable
            previous.fine = previous.fine or fine
    for grant, host, writable, explicit in singles:
        guest = grant.guest_path
        holder = max((d for d in drafts.values() if not d.file_mount and _inside(guest, d.guest) and guest != d.guest),
                     key=lambda d: len(d.guest), default=None)
        if holder is None:  # a file mount in the file's folder, made of single files only
            folder = posixpath.dirname(guest) or "/"
            holder = drafts.get(folder)
            if holder is None or not holder.file_mount:
                if holder is not None:
                    raise PolicyError(f"{guest} is granted as a file and {folder} as something else",
                                      hint="grant the folder, or only files in it")
                holder = drafts[folder] = _Draft(folder, None, False, str(grant.capability), True, file_mount=True)
        holder.files.append((guest, str(host)))
        if writable and not holder.writable:
            holder.writable = True
            holder.capability = str(grant.capability)
        holder.fine = True
    files = frozenset(guest for d in drafts.values() for guest, _ in d.files)
    mounts = []
    for guest in sorted(drafts, key=lambda g: (g.count("/"), g)):
        draft = drafts[guest]
        fine = draft.fine or _finer_rules_inside(guest, policy, files)
        if draft.file_mount:
            shown = "<files>"
        elif draft.host is None:
            shown = "<scratch>"
        else:
            shown = str(draft.host.resolve())
        is_scratch = draft.host is None and not draft.file_mount
        mounts.append(Mount(guest, shown, draft.writable, draft.capability, is_scratch, fine,
                            tuple(sorted(draft.files)), draft.file_mount, draft.explicit))
    return mounts


def _finer_rules_inside(guest: str, policy: Any, files: frozenset[str]) -> bool:
    """Could any rule tell two paths in this mount apart?  Then the guard must decide each call.

    Globs count wherever they are rooted, above or below the mount (``!filesystem:read:/**/*.key``
    matches inside ``/proj/src``); plain deny rules count when they lie strictly inside it."""
    return any(
        (where := reach(cap, guest)) == "glob" or (where == "below" and (cap.deny or cap.scope in files))
        for cap in policy.capabilities
        if cap.domain == "filesystem" and cap.scope
    )


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


@dataclass
class OpenMounts:
    """The mounts of one run, opened: what to preopen and what the guard resolves from.

    ``preopens``: ``(guest, host path for wasmtime, writable)``; ``roots``: the guard's view of
    each, in the same order.  :meth:`close` releases descriptors and private folders."""

    preopens: list[tuple[str, str, bool]] = field(default_factory=list)
    roots: list[MountRoot] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # guest paths of files created for write grants
    copied: list[str] = field(default_factory=list)  # guest paths of read grants served from a copy
    _fds: list[int] = field(default_factory=list, repr=False)
    _folders: list[str] = field(default_factory=list, repr=False)

    def add(self, guest: str, host: str, writable: bool, *, fd: int | None = None, fine: bool = False,
            files: bool = False) -> None:
        opened = host if fd is None or not _PROC_FD.is_dir() else f"{_PROC_FD}/{fd}"
        self.preopens.append((guest, opened, writable))
        self.roots.append(MountRoot(guest, host, fd, fine, files, writable))
        if fd is not None:
            self._fds.append(fd)

    def close(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        folders, self._folders = self._folders, []
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def _open_folder(path: str | Path) -> int:
    return os.open(path, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _beneath(root_fd: int, guest: str, *, folder: bool) -> Any:
    """Walk ``guest`` from the root, never out of it (relative symlinks inside the root are followed)."""
    rel = guest.lstrip("/")
    try:
        return walk(root_fd, "/", rel + ("/" if folder and rel else ""), follow=True)
    except WalkRefused as refused:
        raise PolicyError(
            f"granted {'folder' if folder else 'file'} {guest} cannot be reached inside the sandbox root: {refused.reason}",
            hint="mount planning never follows a link out of the root; map a host path explicitly with ;host=PATH",
        ) from None
    except WalkMissing:
        raise PolicyError(f"granted {'folder' if folder else 'file'} {guest} does not exist (it changed since the "
                          "sandbox was made)", hint="create it, or fix the capability") from None


def open_mounts(mounts: list[Mount], root: Path, scratch: Path | None) -> OpenMounts:
    """Open ``mounts`` for one run (see the module docstring); the caller closes the result."""
    opened = OpenMounts()
    if not mounts:
        return opened
    root_fd = _open_folder(root)
    try:
        for mount in mounts:
            if mount.file_mount:
                _open_file_mount(opened, mount, root, root_fd)
            elif mount.scratch:
                folder = scratch if scratch is not None else Path(tempfile.mkdtemp(prefix="workbench-tmp-"))
                opened.add(mount.guest_path, str(folder), mount.writable, fd=_open_folder(folder), fine=mount.fine)
            elif mount.mapped or mount.capability == "learn-mode":
                opened.add(mount.guest_path, mount.host_path, mount.writable, fd=_open_folder(mount.host_path),
                           fine=mount.fine)
            else:
                walked = _beneath(root_fd, mount.guest_path, folder=True)
                try:
                    assert walked.folder_fd is not None
                    fd = os.dup(walked.folder_fd)
                finally:
                    walked.close()
                opened.add(mount.guest_path, mount.host_path, mount.writable, fd=fd, fine=mount.fine)
    except BaseException:
        opened.close()
        raise
    finally:
        os.close(root_fd)
    return opened


def _open_file_mount(opened: OpenMounts, mount: Mount, root: Path, root_fd: int) -> None:
    private = tempfile.mkdtemp(prefix="workbench-files-")
    opened._folders.append(private)
    for guest, host in mount.files:
        name = posixpath.basename(guest)
        parent: int | None = None
        if not _explicit(guest, root, host):
            walked = _beneath(root_fd, guest, folder=False)
        else:
            parent = _open_folder(os.path.dirname(host) or "/")
            try:
                walked = walk(parent, os.path.dirname(host), os.path.basename(host), follow=True)
            except (WalkRefused, WalkMissing) as exc:
                os.close(parent)
                raise PolicyError(f"the host file for {guest} ({host}) cannot be opened: {exc}") from None
        try:
            _link_into(opened, walked, private, name, guest, host, mount.writable)
        finally:
            walked.close()
            if parent is not None:
                os.close(parent)
    opened.add(mount.guest_path, private, mount.writable, fd=_open_folder(private), fine=True, files=True)


def _explicit(guest: str, root: Path, host: str) -> bool:
    """A ;host= file mapping (its host path is not the root's copy of the guest path)."""
    return Path(host) != root / guest.lstrip("/")


def _link_into(opened: OpenMounts, walked: Any, private: str, name: str, guest: str, host: str, writable: bool) -> None:
    import stat as st

    if walked.stat is None:
        if not writable or walked.parent_fd is None:
            raise PolicyError(f"granted file {guest} does not exist ({host})", hint="create it, or grant it for writing")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        os.close(os.open(walked.name, flags, 0o666, dir_fd=walked.parent_fd))
        walked.stat = os.stat(walked.name, dir_fd=walked.parent_fd, follow_symlinks=False)
        opened.created.append(guest)
    if not walked.name or not st.S_ISREG(walked.stat.st_mode):
        raise PolicyError(f"granted file {guest} is not a regular file ({host})", hint="grant the folder instead")
    fd = os.open(walked.name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=walked.parent_fd)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (walked.stat.st_dev, walked.stat.st_ino):
            raise PolicyError(f"granted file {guest} changed while it was being mounted", hint="run again")
        destination = os.path.join(private, name)
        try:
            os.link(walked.name, destination, src_dir_fd=walked.parent_fd, follow_symlinks=False)
            linked = os.stat(destination, follow_symlinks=False)
            if (linked.st_dev, linked.st_ino) != (now.st_dev, now.st_ino):  # swapped in between: not this file
                os.unlink(destination)
                raise PolicyError(f"granted file {guest} changed while it was being mounted", hint="run again")
        except OSError as exc:
            if writable:
                raise PolicyError(
                    f"cannot mount the single file {guest} for writing: linking {host} into a private folder failed "
                    f"({exc.strerror})",
                    hint="put the system's temporary folder on the same filesystem (set TMPDIR), or grant its folder",
                ) from None
            source = os.open(f"{_PROC_FD}/{fd}", os.O_RDONLY | os.O_CLOEXEC)  # a read grant: serve a copy
            try:
                with open(source, "rb", closefd=False) as reader, open(destination, "wb") as writer:
                    shutil.copyfileobj(reader, writer)
            finally:
                os.close(source)
            os.chmod(destination, 0o444)
            opened.copied.append(guest)
    finally:
        os.close(fd)
