"""The guard's state and machinery shared by every call it checks: resolving a path argument,
judging it, recording the outcome, arming a kill.

:class:`GuardCore` is the base of :class:`~workbench.runtime.guard.Guard`; the calls that change
names live in :mod:`guard_names`, the calls on descriptors in :mod:`guard_fds`, ``path_open`` and
``path_filestat_get`` in :mod:`guard`.  See :mod:`guard` for what the guard guarantees.
"""

from __future__ import annotations

import ctypes
import os
import posixpath
import stat as st
import time
from typing import Any, Callable

import wasmtime

from .._wasmtime_ffi import ffi, memory_handle
from .context import Emit, RunContext
from .errnos import WASI, wasi_errno
from .fdtable import FdEntry, FdTable, MountRoot
from .guard_decisions import Decisions, Verdict, inside
from .guard_wasm import HANDLED
from .hostwalk import MAX_PATH_BYTES, Walk, WalkMissing, WalkRefused, walk

__all__ = ["GuardCore", "Refusal", "Target", "Pending", "ACTIONS", "MAX_DESCRIPTORS"]

EACCES, EBADF, EFAULT, EILSEQ, EPERM, ENOTCAPABLE = 2, 8, 21, 25, 63, 76
ENOENT, EEXIST, EINVAL, ENAMETOOLONG, EROFS = WASI["ENOENT"], WASI["EEXIST"], WASI["EINVAL"], WASI["ENAMETOOLONG"], WASI["EROFS"]
#: audit action per WASI function
ACTIONS = {
    "path_open": "open", "path_create_directory": "mkdir", "path_remove_directory": "rmdir",
    "path_unlink_file": "unlink", "path_rename": "rename", "path_link": "link", "path_symlink": "symlink",
    "path_readlink": "readlink", "path_filestat_get": "stat", "path_filestat_set_times": "utimes",
    "fd_filestat_set_times": "utimes", "fd_filestat_set_size": "truncate", "fd_allocate": "allocate",
    "fd_write": "write", "fd_pwrite": "write", "fd_readdir": "readdir",
}
#: descriptors a guest may hold open at once (files and folders; the preopens and stdio come on top):
#: each is a host descriptor, and a process's limit is shared by every run in it (and by its audit log)
MAX_DESCRIPTORS = 1024
#: calls that change a name (its existence or what it names): never on a single-file grant
NAME_CHANGES = frozenset({"mkdir", "rmdir", "unlink", "rename", "link", "symlink"})


class Refusal(Exception):
    """A call refused before it ran: its errno, why, and whether it is a violation (recorded as deny)."""

    def __init__(self, errno: int, reason: str, resolved: str | None, capability: str | None = None,
                 violation: bool = True, category: str = "filesystem"):
        super().__init__(reason)
        self.errno = errno
        self.reason = reason
        self.resolved = resolved
        self.capability = capability
        self.violation = violation
        self.category = category


class Target:
    """Where one path argument leads: its descriptor entry, the raw text, the resolved guest path,
    and (in a mount with fine rules, or when the path climbs with ``..``) the host walk.
    (A plain class with slots: one is made for every guarded call.)"""

    __slots__ = ("entry", "raw", "resolved", "walk", "mount")

    def __init__(self, entry: FdEntry, raw: str, resolved: str, walk: Walk | None = None) -> None:
        self.entry = entry
        self.raw = raw
        self.resolved = resolved
        self.walk = walk
        self.mount: MountRoot = entry.mount

    def close(self) -> None:
        if self.walk is not None:
            self.walk.close()


class Pending:
    """A call the guard let through, waiting for its outcome (``done``).
    (A plain class with slots: one is made for every guarded call.)"""

    __slots__ = ("fn", "requested", "resolved", "write", "capability", "reason", "decision", "detail", "target",
                 "second", "fd_ptr", "expected_inode", "truncate", "directory")

    def __init__(
        self,
        fn: str,
        requested: str,
        resolved: str | None,
        write: bool,
        capability: str | None,
        reason: str,
        decision: str,
        detail: dict[str, Any],
        target: Target | None = None,
        second: Target | None = None,
        fd_ptr: int | None = None,
        directory: bool = False,
    ) -> None:
        self.fn = fn
        self.requested = requested
        self.resolved = resolved
        self.write = write
        self.capability = capability
        self.reason = reason
        self.decision = decision
        self.detail = detail
        self.target = target
        self.second = second
        self.fd_ptr = fd_ptr
        self.expected_inode: int | None = None
        self.truncate = False
        self.directory = directory

    def close(self) -> None:
        if self.target is not None and self.target.walk is not None:
            self.target.walk.close()
        if self.second is not None and self.second.walk is not None:
            self.second.walk.close()


class GuardCore:
    """The host side of the guard for one run: its state and the steps every call shares.

    - ``run``: the run's plan (policy, single-file grants, ``on_violation``), its record and its stop;
    - ``mounts``: every preopened folder, in preopen order (fd 3, 4, ...);
    - ``housekeeping``: guest paths (a trailing ``/`` for a prefix) that the language runtime
      itself looks for (an interpreter's own source files): answered ``ENOENT`` and recorded in
      their own category rather than as the guest's violations.
    """

    def __init__(self, run: RunContext, mounts: list[MountRoot], *, housekeeping: tuple[str, ...] = ()) -> None:
        plan, watch = run.plan, run.watch
        policy = self.policy = plan.policy
        self.must_stop = watch.check  # the run was asked to stop (deadline, cancel): trap at the next call
        self.deadline: Callable[[], float | None] = lambda: watch.deadline  # the run must end by then, or None
        self.clock_base_ns = time.monotonic_ns()  # ~ when the guest's monotonic clock started
        self.stop = watch.stop
        self.stop_now = False  # set when a call returns past the deadline: trap before the guest goes on
        self.mode: str = plan.on_violation
        self.emit: Emit = run.emit
        file_grants = self.file_grants = plan.file_grants
        self.decisions = Decisions(policy, file_grants, housekeeping)
        self.fds = FdTable()
        for index, mount in enumerate(mounts):
            self.fds.preopen(3 + index, FdEntry(mount.guest, mount, mount.writable, True, preopen=True))
        self.mount_roots = sorted({m.guest for m in mounts}, key=len, reverse=True)
        self.pending: Pending | None = None
        self.kill_reason: str | None = None
        self.context: Any = None
        self.memory: wasmtime.Memory | None = None
        self._fn = ""  # the call being checked
        self._memory_view: tuple[int, int] | None = None  # (address, size): see _base
        #: descriptors the guest opened so far, and (when the guard module counts closes in wasm,
        #: rather than the host seeing each) how to read how many it closed
        self.opens = 0
        self.read_closed: Callable[[], int] | None = None
        self._closed_seen = 0

    def holding(self) -> int:
        """Descriptors the guest holds open now, or an upper bound (never less than the truth)."""
        if self.read_closed is None:
            return self.fds.opened_count  # every close reaches the host (fd_close is checked)
        if self.opens - self._closed_seen >= MAX_DESCRIPTORS:  # close to the cap: ask wasm
            self._closed_seen = self.read_closed()
        return self.opens - self._closed_seen

    def close(self) -> None:
        """Release the host descriptors the guard holds (the run is over)."""
        if self.pending is not None:
            self.pending.close()
            self.pending = None
        self.fds.close_all()

    def _base(self, end: int) -> tuple[int, int]:
        """(address, size) of the guest's memory, read again only when a call reaches past ``end``.

        Why it may be kept for the whole run: the sandbox's memory creator never moves a memory
        (``linear_memory.py``), and a wasm memory only grows.  So a stale size can only be too
        small, and then it is read again before anything is refused.
        """
        cached = self._memory_view
        if cached is not None and end <= cached[1]:
            return cached
        assert self.memory is not None
        raw = ctypes.byref(memory_handle(self.memory))
        size = ffi.wasmtime_memory_data_size(self.context, raw)
        base = ctypes.addressof(ffi.wasmtime_memory_data(self.context, raw).contents)
        self._memory_view = (base, size)
        return base, size

    def _string(self, ptr: int, length: int) -> str | None:
        base, size = self._base(ptr + length)
        if ptr < 0 or length < 0 or ptr + length > size:
            return None
        try:
            return ctypes.string_at(base + ptr, length).decode("utf-8")
        except UnicodeDecodeError:
            return None

    def _u32(self, ptr: int) -> int:
        base, size = self._base(ptr + 4)
        if ptr < 0 or ptr + 4 > size:
            return 0
        return ctypes.c_uint32.from_address(base + ptr).value

    def _write(self, ptr: int, data: bytes) -> bool:
        base, size = self._base(ptr + len(data))
        if ptr < 0 or ptr + len(data) > size:
            return False
        ctypes.memmove(base + ptr, data, len(data))
        return True

    def _target(
        self, dirfd: int, ptr: int, length: int, *, follow: bool, name_op: bool = False, walk_always: bool = False
    ) -> Target:
        entry = self.fds.get(dirfd)
        if entry is None:
            raise Refusal(EBADF, f"descriptor {dirfd} is not a folder the guest was given", None)
        if length > MAX_PATH_BYTES:
            raise Refusal(ENAMETOOLONG, f"path of {length} bytes is longer than {MAX_PATH_BYTES}", None)
        raw = self._string(ptr, length)
        if raw is None:
            raise Refusal(EFAULT, "path is not valid UTF-8 inside guest memory", None)
        if "\x00" in raw:
            raise Refusal(EILSEQ, "path holds a NUL byte", None)
        if raw.startswith("/"):
            raise Refusal(ENOTCAPABLE, "absolute paths are not resolved inside a preopen", posixpath.normpath(raw))
        mount = entry.mount
        if not raw:
            textual = entry.path
        elif "//" in raw or raw[-1] == "/" or raw[0] == "." or "/." in raw:
            textual = posixpath.normpath(f"{entry.path}/{raw}")
        else:  # plain names: the join is already normal
            textual = f"{entry.path}/{raw}" if entry.path != "/" else f"/{raw}"
        if textual.startswith("//"):
            textual = textual[1:]
        climbs = ".." in raw and ".." in raw.split("/")
        target = Target(entry, raw, textual)
        if mount.fd is not None and (mount.fine or climbs or walk_always):
            if name_op:
                raw = raw.rstrip("/") or raw
            target.walk = self._walk(entry, raw, follow=follow, gate=mount.fine and self.mode != "audit")
            target.resolved = target.walk.guest
        elif climbs and not inside(textual, entry.path):  # without '..' the text cannot leave it
            raise Refusal(ENOTCAPABLE, f"'..' leaves the preopened folder {entry.path}", textual)
        for root in self.mount_roots:  # longest first
            if len(root) <= len(mount.guest):
                break
            for path in {textual, target.resolved}:
                if inside(path, root):  # libc would use that folder's own descriptor; this way is a side door
                    target.close()
                    raise Refusal(
                        ENOTCAPABLE, f"{path} lies in the mount {root}; it is reached through {root}, not {mount.guest}",
                        path,
                    )
        return target

    def _walk(self, entry: FdEntry, raw: str, *, follow: bool, gate: bool) -> Walk:
        mount = entry.mount
        assert mount.fd is not None
        check = self.decisions.gate if gate else None
        try:
            if entry.host_fd is not None:
                return walk(entry.host_fd, entry.path, raw, follow=follow, gate=check)
            if entry.path == mount.guest:
                return walk(mount.fd, mount.guest, raw, follow=follow, gate=check)
            # a folder the guest opened: reach it from its mount first (it becomes the base)
            base = walk(mount.fd, mount.guest, posixpath.relpath(entry.path, mount.guest) + "/", follow=True, gate=check)
            try:
                assert base.folder_fd is not None
                folder = os.dup(base.folder_fd)  # the second walk owns its base: it may be the parent it returns
            finally:
                base.close()
            try:
                walked = walk(folder, base.guest, raw, follow=follow, gate=check)
            except BaseException:
                os.close(folder)
                raise
            walked._owned.append(folder)
            walked.direct = False  # the folder found by name may not be the guest's descriptor's own
            return walked
        except WalkRefused as refused:
            raise Refusal(refused.errno, refused.reason, refused.where, refused.capability, refused.violation) from None
        except WalkMissing as missing:
            verdict = self.decisions.decide(missing.where, False, False, mount)
            if not verdict.allowed:
                raise Refusal(EACCES, verdict.reason, missing.where, verdict.capability) from None
            raise Refusal(ENOENT, f"{missing.where}: a folder on the way does not exist", missing.where,
                           violation=False) from None

    def _judged(self, dirfd: int, ptr: int, length: int, *, follow: bool, write: bool, action: str) -> tuple[Target, Verdict]:
        """A path argument resolved and judged as what it reaches (a folder is judged as one)."""
        target = self._target(dirfd, ptr, length, follow=follow)
        walked = target.walk
        directory = walked is not None and walked.stat is not None and st.S_ISDIR(walked.stat.st_mode)
        return target, self._judge(target, write, directory, action)

    def _judge(self, target: Target, write: bool, directory: bool, action: str) -> Verdict:
        """The decision on a resolved target (raises the refusal)."""
        path = target.resolved
        if target.mount.device is not None:  # /dev/workbench: the device decides, in every mode (device.py)
            allowed: Verdict | None
            why: str
            allowed, why = target.mount.device.judge(path, write, action)
            if allowed is None:
                raise Refusal(EACCES, why, path)
            return allowed
        if self.decisions.housekeeping(path) and (self.mode == "audit" or not self.decisions.decide(path, write, directory).allowed):
            raise Refusal(ENOENT, "the language runtime looked for one of its own files (not the guest's request); "
                                   "answered 'not found'", path, violation=False, category="runtime")
        if target.mount.system:  # the language runtime's own files: not the policy's to grant (nor to suggest)
            if write:
                raise Refusal(EROFS, f"{target.mount.guest} is provided read-only by the language runtime", path)
            return Verdict.plain(True, f"{target.mount.guest} is provided read-only by the language runtime")
        if self.mode == "audit":
            return Verdict.plain(True, "learn mode: allowed and recorded")
        verdict = self.decisions.decide(path, write, directory, target.mount)
        if not verdict.allowed:
            links = target.walk.links if target.walk is not None else []
            reason = verdict.reason if not links else f"{links[0]} is a symlink to {path}: {verdict.reason}"
            raise Refusal(EACCES, reason, path, verdict.capability)
        if action in NAME_CHANGES and path in self.file_grants:
            raise Refusal(EACCES, f"{path} is a single-file grant: its content may be used, its name not changed",
                           path, verdict.capability)
        if action in NAME_CHANGES and target.mount.files:
            raise Refusal(EACCES, f"{target.mount.guest} holds only single-file grants; no name in it may change",
                           path, verdict.capability)
        if write and not target.mount.writable:
            raise Refusal(EROFS, f"{target.mount.guest} is mounted read-only", path, verdict.capability)
        return verdict

    def _refuse(self, action: str, raw: str, refusal: Refusal, detail: dict[str, Any]) -> int:
        if not refusal.violation:
            category = refusal.category
            self.emit(
                category, action, "audit" if category == "runtime" else "allow",
                target=raw, resolved=refusal.resolved, capability=refusal.capability, reason=refusal.reason,
                errno=refusal.errno, detail=dict(detail),
            )
            return refusal.errno
        kill = self.mode == "kill"
        self.emit(
            "filesystem", action, "kill" if kill else "deny",
            target=raw, resolved=refusal.resolved, capability=refusal.capability, reason=refusal.reason,
            errno=refusal.errno, detail=dict(detail),
        )
        self._arm_kill(action, refusal.resolved or raw, refusal.capability, refusal.reason)
        return refusal.errno

    def _arm_kill(self, action: str, where: str, capability: str | None, reason: str) -> None:
        if self.mode == "kill" and self.kill_reason is None:
            self.kill_reason = f"{action} {where} denied{f' by {capability}' if capability else ''}: {reason}"

    def _record(self, action: str, target: Target, verdict: Verdict, errno: int, detail: dict[str, Any]) -> None:
        self.emit(
            "filesystem", action, "audit" if self.mode == "audit" else "allow",
            target=target.raw, resolved=target.resolved, capability=verdict.capability, reason=verdict.reason,
            errno=errno, detail=detail,
        )

    def _raw_of(self, ptr: int, length: int) -> str:
        if 0 <= length <= MAX_PATH_BYTES:
            text = self._string(ptr, length)
            if text is not None:
                return text
        return "<unreadable>"

    @staticmethod
    def _fine(*targets: Target) -> bool:
        return any(t.mount.fine and t.walk is not None for t in targets)

    def _perform(self, action: str, target: Target, verdict: Verdict, detail: dict[str, Any],
                 op: Callable[[], None]) -> int:
        """Run a host operation on the checked object; record and return HANDLED | errno."""
        try:
            op()
            errno = 0
        except OSError as exc:
            errno = wasi_errno(exc.errno)
        finally:
            target.close()
        self._record(action, target, verdict, errno, detail)
        return HANDLED | errno

    def _links(self, detail: dict[str, Any], *targets: Target) -> dict[str, Any]:
        if all(t.walk is None for t in targets):
            return detail
        links = [link for t in targets if t.walk is not None for link in t.walk.links]
        if links:
            detail["links"] = links
        return detail
