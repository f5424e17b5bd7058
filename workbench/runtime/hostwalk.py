"""Resolving a guest's path on the host the way wasmtime's WASI will, one component at a time.

Why: a rule finer than a folder (a single file, a glob, a carve-out) is about the object a call
reaches, and the text of a path does not say which object that is.  ``l/../secret`` names
``secret`` to :func:`posixpath.normpath`, but the host resolves the symlink ``l`` first and
applies ``..`` to where it leads.  So the guard walks the path itself, like cap-std does:

- each component is looked up with ``lstat`` relative to the folder reached so far, held open
  as an ``O_PATH`` descriptor (never re-resolved by name, so a concurrent rename or a swapped
  symlink cannot move the walk somewhere else after a component was checked);
- a symlink is read and its (relative) text spliced in front of what remains, so ``..`` after it
  applies to the folder the link led to; an absolute symlink is refused, as cap-std refuses it;
- ``..`` never climbs above the folder the guest's descriptor names (cap-std's rule too);
- every folder walked through and every symlink followed is shown to ``gate`` first, so a walk
  cannot pass through a place the policy hides.

The result names the object's parent folder (an open descriptor) and its name, so the guard
can act on exactly that object (``mkdirat``, ``unlinkat``, ``renameat`` ...), and its real
guest path, which is what the policy decides on and the audit record shows.

Host work is linear in the input and capped: at most :data:`MAX_PATH_BYTES` of path,
:data:`MAX_SYMLINKS` links followed (``ELOOP``, like the kernel) and :data:`MAX_STEPS` components
looked at per call, one ``lstat`` each.
"""

from __future__ import annotations

import os
import posixpath
import stat as st
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from .errnos import WASI

__all__ = ["Walk", "WalkRefused", "WalkMissing", "walk", "MAX_PATH_BYTES", "MAX_SYMLINKS", "MAX_STEPS", "O_PATH",
           "open_folder"]

#: the longest path the guard resolves (Linux's PATH_MAX); longer requests are refused
MAX_PATH_BYTES = 4096
#: symlinks followed in one resolution before giving up with ELOOP (the kernel's limit)
MAX_SYMLINKS = 40
#: components looked at in one resolution, links' texts included: the host's work per call is capped
MAX_STEPS = 4096

O_PATH = getattr(os, "O_PATH", os.O_RDONLY)
_FOLDER_FLAGS = O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

#: ``gate(kind, guest_path)``: ``None`` to go on, or ``(reason, capability)`` to refuse;
#: kind is ``"folder"`` (walked through) or ``"link"`` (a symlink about to be followed)
Gate = Callable[[str, str], "tuple[str, str | None] | None"]


class WalkRefused(Exception):
    """The path cannot be resolved safely; ``errno`` is what the guest gets."""

    def __init__(self, errno: int, reason: str, where: str, capability: str | None = None, violation: bool = True):
        super().__init__(reason)
        self.errno = errno
        self.reason = reason
        self.where = where
        self.capability = capability
        self.violation = violation


class WalkMissing(Exception):
    """A folder on the way does not exist; ``where`` is the guest path as far as it resolved."""

    def __init__(self, where: str):
        super().__init__(where)
        self.where = where


def _join(folder: str, name: str) -> str:
    return folder + name if folder.endswith("/") else f"{folder}/{name}"


def _parts(text: str) -> list[str]:
    return [part for part in text.split("/") if part and part != "."]


@dataclass
class Walk:
    """Where a path leads: ``name`` in the folder ``parent_fd`` (or the folder ``folder_fd`` itself).

    - ``guest``: the real guest path of the object (no symlink, no ``..``);
    - ``stat``: its ``lstat``, or None when the last component does not exist (yet);
    - ``links``: guest paths of the symlinks followed on the way;
    - ``parent_fd``: an ``O_PATH`` descriptor of the folder holding ``name``; None when the
      path names a folder itself (``.``, ``a/..``): that folder is then ``folder_fd``;
    - ``direct``: the path was one name in the base folder, and no symlink was followed, so a
      ``*at(base, name, O_NOFOLLOW)`` call reaches exactly the object at the checked path.
    Call :meth:`close` when done: the walk owns the descriptors it opened.
    """

    guest: str
    name: str
    stat: os.stat_result | None
    parent_fd: int | None
    folder_fd: int | None = None
    links: list[str] = field(default_factory=list)
    direct: bool = False
    _owned: list[int] = field(default_factory=list, repr=False)

    @property
    def parent_guest(self) -> str:
        return posixpath.dirname(self.guest) if self.name else self.guest

    def close(self) -> None:
        owned, self._owned = self._owned, []
        for fd in owned:
            try:
                os.close(fd)
            except OSError:
                pass


def open_folder(name: str, dir_fd: int, expected: os.stat_result | None = None) -> int:
    """``O_PATH`` descriptor of the folder ``name`` in ``dir_fd``, never through a symlink.

    With ``expected`` (its ``lstat``), the folder opened must be that very one."""
    fd = os.open(name, _FOLDER_FLAGS, dir_fd=dir_fd)
    if expected is not None:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (expected.st_dev, expected.st_ino):
            os.close(fd)
            raise OSError(0, "changed while it was being resolved")
    return fd


def walk(
    base_fd: int,
    base_guest: str,
    raw: str,
    *,
    follow: bool,
    gate: Gate | None = None,
) -> Walk:
    """Resolve ``raw`` (relative) from the folder ``base_fd``, which the guest knows as ``base_guest``.

    ``follow``: a symlink as the last component is followed (``O_NOFOLLOW`` otherwise; a
    trailing ``/`` always follows).  Raises :class:`WalkRefused` for what must be refused
    (an escape, an absolute symlink, a gate's refusal, too many links, a path too long)
    and :class:`WalkMissing` when a folder on the way does not exist.
    """
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise WalkRefused(WASI["ENAMETOOLONG"], f"path longer than {MAX_PATH_BYTES} bytes", base_guest)
    if raw.startswith("/"):
        raise WalkRefused(WASI["ENOTCAPABLE"], "absolute paths are not resolved inside a preopen", raw)
    pending = deque(_parts(raw))
    need_folder = raw.endswith("/") or raw.endswith("/.") or raw in ("", ".")
    fds = [base_fd]
    names = [base_guest]
    result = Walk(base_guest, "", None, None, direct=len(pending) == 1 and pending[0] != ".." and not need_folder)
    hops = steps = 0
    try:
        while pending:
            part = pending.popleft()
            here = names[-1]
            steps += 1
            if steps > MAX_STEPS:
                raise WalkRefused(WASI["ENAMETOOLONG"], f"more than {MAX_STEPS} path components to resolve", here)
            if part == "..":
                if len(fds) == 1:
                    where = posixpath.normpath(posixpath.join(here, "..", *pending))  # where the text leads
                    raise WalkRefused(
                        WASI["ENOTCAPABLE"], f"'..' leaves {base_guest}, the folder the descriptor names",
                        "/" + where.lstrip("/"),
                    )
                os.close(fds.pop())
                result._owned.pop()
                names.pop()
                continue
            guest = _join(here, part)
            last = not pending
            try:
                info = os.stat(part, dir_fd=fds[-1], follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    result.guest, result.name, result.stat, result.parent_fd = guest, part, None, fds[-1]
                    return result
                raise WalkMissing(posixpath.normpath(_join(guest, "/".join(pending)))) from None
            except OSError as exc:
                raise WalkRefused(_wasi(exc), f"{guest}: {exc.strerror}", guest, violation=False) from None
            if st.S_ISLNK(info.st_mode) and (not last or follow or need_folder):
                if gate is not None and (refusal := gate("link", guest)) is not None:
                    raise WalkRefused(WASI["EACCES"], f"{guest} is a symlink this run may not read: {refusal[0]}",
                                      guest, refusal[1])
                hops += 1
                result.direct = False
                if hops > MAX_SYMLINKS:
                    raise WalkRefused(WASI["ELOOP"], f"more than {MAX_SYMLINKS} symlinks on the way", guest)
                result.links.append(guest)
                target = os.readlink(part, dir_fd=fds[-1])
                if target.startswith("/"):
                    raise WalkRefused(
                        WASI["ENOTCAPABLE"],
                        f"{guest} is an absolute symlink ({target}); only relative links are followed", guest,
                    )
                if not target:
                    raise WalkRefused(WASI["ENOENT"], f"{guest} is an empty symlink", guest, violation=False)
                spliced = _parts(target)
                if last and (target.endswith("/") or target.endswith("/.")):
                    need_folder = True
                pending.extendleft(reversed(spliced))
                if not spliced and last:  # the link points at '.': its own folder
                    break
                continue
            if last and not need_folder:
                result.guest, result.name, result.stat, result.parent_fd = guest, part, info, fds[-1]
                return result
            if not st.S_ISDIR(info.st_mode):
                raise WalkRefused(WASI["ENOTDIR"], f"{guest} is not a folder", guest, violation=False)
            if gate is not None and not last and (refusal := gate("folder", guest)) is not None:
                where = guest if ".." in pending else _join(guest, "/".join(pending))  # what was asked for
                reason = refusal[0] if not result.links else f"{result.links[0]} is a symlink to {where}: {refusal[0]}"
                raise WalkRefused(WASI["EACCES"], reason, where, refusal[1])
            try:
                fd = open_folder(part, fds[-1], info)
            except OSError as exc:
                raise WalkRefused(WASI["EACCES"], f"{guest} changed while the guard resolved it", guest) from exc
            fds.append(fd)
            result._owned.append(fd)
            names.append(guest)
            if last:
                break
        # the path names a folder itself ('', '.', 'a/..', 'a/'): that folder is the object
        folder_fd = fds[-1]
        result.guest, result.name, result.parent_fd, result.folder_fd = names[-1], "", None, folder_fd
        result.stat = os.fstat(folder_fd)
        return result
    except BaseException:
        result.close()
        raise


def _wasi(exc: OSError) -> int:
    from .errnos import wasi_errno

    return wasi_errno(exc.errno)
