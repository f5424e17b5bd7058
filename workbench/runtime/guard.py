"""The WASI guard: every path-resolving call a guest makes is checked and recorded.

Preopens already confine a guest to its granted folders (wasmtime's cap-std
refuses ``..``, absolute paths and symlinks that leave a preopen).  The guard
adds what preopens cannot express and sees what they hide:

- glob grants (``/data/**/*.json``), single-file grants and deny carve-outs
  (``!filesystem:read:/docs/private``) are enforced per call, on the object the
  call reaches: in a mount with such rules the guard resolves the guest's path on
  the host component by component (:mod:`hostwalk`: a symlink before the ``..``
  after it, every folder walked through and every link followed checked), performs
  calls that change names (``mkdir``, ``unlink``, ``rename`` ...) itself on exactly
  the object it checked, and proves that what ``path_open`` opened is that object
  (its inode, :mod:`identity`), so a concurrent change on the host cannot slip a
  different file in between check and use;
- calls on a descriptor (``fd_filestat_set_times``, ``fd_write`` ...) are judged by
  the rules of the path the descriptor was opened for (:mod:`fdtable`);
- every attempt is recorded as an :class:`~workbench.events.Event` with the
  requested path, the resolved guest path, the rights asked, the decision, the
  errno and the rule that decided;
- attempts at paths outside every grant are seen too: an empty read-only folder
  is preopened as ``/``, so a guest's libc hands ``/etc/passwd`` to ``path_open``
  instead of failing silently (design.md §5);
- ``on_violation``: ``deny`` fails the call with ``EACCES`` and goes on, ``kill``
  traps the guest at once with a message naming the rule (whichever layer refused:
  the guard, or cap-std behind it), ``audit`` (learn mode) allows and records
  everything, for :meth:`RunResult.suggested_policy`.

The host side of each check is a raw C-API callback (:mod:`guard_wasm` explains
the wasm side), so no wasmtime-py ``Func`` machinery sits on the call path.
The threat model is in docs/decisions.md ("Fine-grained filesystem rules").
"""

from __future__ import annotations

import os
import stat as st
import time
from typing import Any, Callable

from .context import RunContext
from .fdtable import FdEntry, MountRoot
from .guard_abi import FLAG_WORDS, PathFilestatGet, PathOpen, decode, undefined_bits
from .guard_core import (
    ACTIONS,
    MAX_DESCRIPTORS,
    EACCES,
    EEXIST,
    EINVAL,
    ENOENT,
    ENOTCAPABLE,
    EPERM,
    Pending,
    Refusal,
)
from .guard_fds import DescriptorCalls
from .guard_names import NameCalls
from .guard_wasm import CLOSE, HANDLED, NOFOLLOW, STRIP_CREAT, STRIP_TRUNC, TRUNCATE, VERIFY, WIPE
from .errnos import wasi_errno
from .hostwalk import Walk, open_folder
from .identity import wasi_inode

__all__ = ["Guard", "ACTIONS", "EACCES", "MAX_DESCRIPTORS"]

_WRITE_RIGHTS = (1 << 0) | (1 << 6) | (1 << 8) | (1 << 22)  # fd_datasync, fd_write, fd_allocate, fd_filestat_set_size
_O_CREAT, _O_DIRECTORY, _O_EXCL, _O_TRUNC = 1, 2, 4, 8
_FDFLAG_APPEND = 1
_FOLLOW = 1
EMFILE = 33


class Guard(NameCalls, DescriptorCalls):
    """The guard for one run: dispatches each checked call to its handler, and records outcomes."""

    def __init__(self, run: RunContext, mounts: list[MountRoot], *, housekeeping: tuple[str, ...] = ()) -> None:
        super().__init__(run, mounts, housekeeping=housekeeping)
        self._handlers: dict[str, Callable[[Any], int]] = {
            "path_open": self._path_open,
            "path_create_directory": self._mkdir,
            "path_remove_directory": self._rmdir,
            "path_unlink_file": self._unlink,
            "path_rename": self._rename,
            "path_link": self._link,
            "path_symlink": self._symlink,
            "path_readlink": self._readlink,
            "path_filestat_get": self._filestat_get,
            "path_filestat_set_times": self._set_times,
            "fd_renumber": self._renumber,
            "poll_oneoff": self._poll,
            "fd_filestat_set_times": self._fd_change,
            "fd_filestat_set_size": self._fd_change,
            "fd_allocate": self._fd_change,
            "fd_write": self._fd_write,
            "fd_pwrite": self._fd_write,
            "fd_readdir": self._fd_readdir,
            "fd_close": self._fd_close,
        }

    def check(self, fn: str, args: Any) -> int:
        """Decide one call: 0 lets it through, an errno refuses it, ``HANDLED | errno`` reports a
        call the guard performed itself; kill mode arms a trap."""
        if self.pending is not None:  # the last call trapped before its outcome came back
            self.pending.close()
            self.pending = None
        self._fn = fn
        a = decode(fn, args)
        odd = undefined_bits(fn, a)
        if odd is not None:
            return self._undefined_bits(a, odd)
        return self._handlers[fn](a)

    def _undefined_bits(self, a: Any, name: str) -> int:
        """Refuse a call whose flag word holds bits WASI does not define: ``EINVAL``, recorded as a
        deny (kill mode stops the run).  wasmtime's WASI would trap on it instead (decisions.md,
        "Odd argument values")."""
        kind, defined = next((k, d) for n, k, d in FLAG_WORDS[self._fn] if n == name)
        value = getattr(a, name)
        fields = a._fields
        if "path" in fields:
            where = self._raw_of(a.path, a.path_len)
        elif "old_path" in fields:
            where = self._raw_of(a.old_path, a.old_len)
        else:
            entry = self.fds.get(a.fd)
            where = entry.path if entry is not None else f"descriptor {a.fd}"
        reason = (
            f"{self._fn}'s argument {name} ({kind}) is {value:#x}: the bits {value & ~defined:#x} are not defined "
            f"by WASI (defined: {defined:#x}); refused with EINVAL (a malformed or hostile module)"
        )
        detail = {"argument": name, "value": f"{value:#x}", "defined": f"{defined:#x}", "type": kind}
        return self._refuse(ACTIONS[self._fn], where, Refusal(EINVAL, reason, None), detail)

    def _path_open(self, a: PathOpen) -> int:
        dirfd, lookup, ptr, length = a.dirfd, a.lookup, a.path, a.path_len
        oflags, rights, fdflags, fd_ptr = a.oflags, a.rights, a.fdflags, a.fd_out
        write = bool(rights & _WRITE_RIGHTS or oflags & (_O_CREAT | _O_TRUNC) or fdflags & _FDFLAG_APPEND)
        directory = bool(oflags & _O_DIRECTORY)
        detail: dict[str, Any] = {"oflags": oflags, "rights": "write" if write else "read", "follow": bool(lookup & _FOLLOW)}
        try:
            target = self._target(dirfd, ptr, length, follow=bool(lookup & _FOLLOW))
        except Refusal as refusal:
            return self._refuse("open", self._raw_of(ptr, length), refusal, detail)
        code = 0
        pending = Pending("path_open", target.raw, target.resolved, write, None, "", "allow", detail, target,
                           fd_ptr=fd_ptr, directory=directory)
        try:
            walked = target.walk
            if walked is not None and walked.stat is not None:
                directory = directory or st.S_ISDIR(walked.stat.st_mode)
            verdict = self._judge(target, write, directory, "open")
            if target.mount.device is not None:  # a request written, or a response to make now
                target.mount.device.opened(target.resolved, write)
            if walked is not None and target.mount.fine:
                code = self._prepare_open(walked, oflags, write)
                if code & HANDLED:
                    target.close()
                    self._record("open", target, verdict, code & 0xFFFF, self._links(detail, target))
                    return code
                if code & VERIFY:
                    pending.expected_inode = self._expected(walked)
                pending.truncate = bool(code & STRIP_TRUNC)
        except Refusal as refusal:
            target.close()
            return self._refuse("open", target.raw, refusal, self._links(detail, target))
        pending.capability, pending.reason = verdict.capability, verdict.reason
        pending.decision = "audit" if self.mode == "audit" else "allow"
        pending.directory = directory
        if target.walk is not None:
            self._links(detail, target)
        self.pending = pending
        return code

    def _prepare_open(self, walked: Walk, oflags: int, write: bool) -> int:
        """In a fine mount: do what ``path_open`` would do to the name (create, refuse), on exactly
        the object checked, and ask the guard to verify what the real call then opens.

        One name in the descriptor's own folder that is not a symlink or a folder needs none of
        that: opened without following symlinks, it is the object at the checked path (NOFOLLOW).
        A folder is always verified: the guest may keep it and resolve names from it later, so it
        must be the very folder the guard will resolve them from."""
        if oflags & _O_CREAT and oflags & _O_DIRECTORY:
            return HANDLED | EINVAL
        kind = walked.stat.st_mode if walked.stat is not None else 0
        if walked.direct and not oflags & _O_DIRECTORY and not st.S_ISLNK(kind) and not st.S_ISDIR(kind):
            if walked.stat is None and not oflags & _O_CREAT:
                return HANDLED | ENOENT
            return NOFOLLOW
        if walked.stat is None:  # the last component does not exist
            if not oflags & _O_CREAT:
                return HANDLED | ENOENT
            assert walked.parent_fd is not None
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_EXCL if oflags & _O_EXCL else 0)
            try:
                os.close(os.open(walked.name, flags, 0o666, dir_fd=walked.parent_fd))
                walked.stat = os.stat(walked.name, dir_fd=walked.parent_fd, follow_symlinks=False)
            except OSError as exc:
                return HANDLED | wasi_errno(exc.errno)
            return VERIFY | STRIP_CREAT
        if oflags & _O_CREAT and oflags & _O_EXCL:
            return HANDLED | EEXIST
        code = VERIFY | (STRIP_CREAT if oflags & _O_CREAT else 0)
        if oflags & _O_TRUNC and st.S_ISREG(walked.stat.st_mode):
            code |= STRIP_TRUNC  # truncated only once the opened file is proven to be this one
        return code

    @staticmethod
    def _expected(walked: Walk) -> int | None:
        return None if walked.stat is None else wasi_inode(walked.stat)

    def _filestat_get(self, a: PathFilestatGet) -> int:
        dirfd, flags, ptr, length = a.dirfd, a.flags, a.path, a.path_len
        detail: dict[str, Any] = {"rights": "read"}
        try:
            target, verdict = self._judged(dirfd, ptr, length, follow=bool(flags & _FOLLOW), write=False, action="stat")
        except Refusal as refusal:
            return self._refuse("stat", self._raw_of(ptr, length), refusal, detail)
        walked = target.walk
        pending = Pending("path_filestat_get", target.raw, target.resolved, False, verdict.capability, verdict.reason,
                           "audit" if self.mode == "audit" else "allow", self._links(detail, target), target)
        if walked is not None and target.mount.fine:
            if walked.stat is None:
                target.close()
                self._record("stat", target, verdict, ENOENT, detail)
                return HANDLED | ENOENT
            self.pending = pending
            if walked.direct and not st.S_ISLNK(walked.stat.st_mode):
                return NOFOLLOW  # one name in the descriptor's folder: the object at the checked path
            pending.expected_inode = self._expected(walked)
            return VERIFY
        self.pending = pending
        return 0

    def done(self, fn: str, errno: int, inode: int) -> int:
        """After the real call: record the outcome, follow new descriptors, revoke what is not
        the object checked.  Returns the call's result (errno | CLOSE/TRUNCATE/WIPE)."""
        pending, self.pending = self.pending, None
        if pending is None:
            return errno
        try:
            return self._done(pending, fn, errno, inode)
        finally:
            pending.close()

    def _done(self, pending: Pending, fn: str, errno: int, inode: int) -> int:
        if fn == "poll_oneoff":
            deadline = self.deadline()
            if deadline is not None and time.monotonic() >= deadline:
                self.stop("time", "wall-clock deadline reached during a sleep")
                self.stop_now = True
            return errno
        if fn == "fd_renumber":
            if errno == 0:
                self.fds.renumbered(pending.detail["from"], pending.detail["to"])
            return errno
        action = ACTIONS[fn]
        result = errno
        if pending.decision == "allow" and errno in (EPERM, ENOTCAPABLE):
            # the policy allowed the name, wasmtime's WASI (cap-std) refused where it leads
            pending.decision = "kill" if self.mode == "kill" else "deny"
            pending.reason = (
                f"{pending.resolved} leads outside its granted folder (a symlink or a '..' through one); "
                "wasmtime's WASI refused it"
            )
            self._arm_kill(action, pending.resolved or pending.requested, None, pending.reason)
        elif errno == 0 and pending.expected_inode is not None and inode != pending.expected_inode:
            pending.decision = "kill" if self.mode == "kill" else "deny"
            pending.reason = (
                f"what wasmtime opened for {pending.resolved} is not the object the guard checked (it changed on "
                "the host in between); refused"
            )
            pending.detail = {**pending.detail, "race": True}
            self._arm_kill(action, pending.resolved or pending.requested, pending.capability, pending.reason)
            errno = EACCES
            result = EACCES | (CLOSE if fn == "path_open" else WIPE)
        elif errno == 0 and fn == "path_open" and pending.target is not None and pending.fd_ptr is not None:
            new_fd = self._u32(pending.fd_ptr)
            if self.holding() >= MAX_DESCRIPTORS:
                pending.decision = "kill" if self.mode == "kill" else "deny"
                pending.reason = (f"too many open descriptors: a guest may hold {MAX_DESCRIPTORS} at once (close some); "
                                  "the host's own limit is shared by everything in this process")
                pending.capability = None
                self._arm_kill(action, pending.resolved or pending.requested, None, pending.reason)
                errno = EMFILE
                result = EMFILE | CLOSE
            else:
                self.opens += 1
                self._opened(pending, new_fd)
                if pending.truncate:
                    result |= TRUNCATE
        elif errno == 0 and fn == "path_rename" and pending.second is not None:
            self.fds.renamed(pending.resolved or "", pending.second.resolved)
        self.emit(
            "filesystem", action, pending.decision,
            target=pending.requested, resolved=pending.resolved, capability=pending.capability,
            reason=pending.reason, errno=errno, detail=pending.detail,
        )
        return result

    def _opened(self, pending: Pending, new_fd: int) -> None:
        target = pending.target
        assert target is not None
        host_fd = None
        walked = target.walk
        if walked is not None and target.mount.fine and pending.directory and walked.stat is not None:
            try:  # the folder the guest now holds, for resolving paths relative to it
                if walked.name:
                    host_fd = open_folder(walked.name, walked.parent_fd or -1, walked.stat)
                elif walked.folder_fd is not None:
                    host_fd = os.dup(walked.folder_fd)
            except OSError:
                host_fd = None
        may_write = pending.write
        self.fds.opened(new_fd, FdEntry(target.resolved, target.mount, may_write, pending.directory, host_fd))
