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

import ctypes
import itertools
import os
import posixpath
import stat as st
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import wasmtime
from wasmtime import _bindings as ffi

from . import rawlink
from .deadline import KILL_PREFIX
from .errnos import WASI, wasi_errno
from .fdtable import FdEntry, FdTable, MountRoot
from .guard_wasm import (
    CLOSE,
    FN_IDS,
    HANDLED,
    SIGNATURES,
    STRIP_CREAT,
    STRIP_TRUNC,
    TRUNCATE,
    VERIFY,
    WASI as WASI_MODULE,
    WIPE,
    GuardLayout,
    forwarder_wat,
    guard_wat,
)
from .hostwalk import MAX_PATH_BYTES, Walk, WalkMissing, WalkRefused, open_folder, walk
from .identity import wasi_inode

__all__ = ["Guard", "GuardPlan", "guard_plan", "instantiate_guarded", "empty_root", "EACCES", "ACTIONS"]

EACCES, EBADF, EFAULT, EILSEQ, EPERM, ENOTCAPABLE = 2, 8, 21, 25, 63, 76
ENOENT, EEXIST, EINVAL, ENAMETOOLONG, EROFS = WASI["ENOENT"], WASI["EEXIST"], WASI["EINVAL"], WASI["ENAMETOOLONG"], WASI["EROFS"]
# rights and flags (WASI preview1)
_WRITE_RIGHTS = (1 << 0) | (1 << 6) | (1 << 8) | (1 << 22)  # fd_datasync, fd_write, fd_allocate, fd_filestat_set_size
_O_CREAT, _O_DIRECTORY, _O_EXCL, _O_TRUNC = 1, 2, 4, 8
_FDFLAG_APPEND = 1
_FOLLOW = 1
_ATIM, _ATIM_NOW, _MTIM, _MTIM_NOW = 1, 2, 4, 8

_NAMES = {number: name for name, number in FN_IDS.items()}
WASI_KEY = WASI_MODULE.encode()
#: audit action per WASI function
ACTIONS = {
    "path_open": "open", "path_create_directory": "mkdir", "path_remove_directory": "rmdir",
    "path_unlink_file": "unlink", "path_rename": "rename", "path_link": "link", "path_symlink": "symlink",
    "path_readlink": "readlink", "path_filestat_get": "stat", "path_filestat_set_times": "utimes",
    "fd_filestat_set_times": "utimes", "fd_filestat_set_size": "truncate", "fd_allocate": "allocate",
    "fd_write": "write", "fd_pwrite": "write", "fd_readdir": "readdir",
}
#: calls that change a name (its existence or what it names): never on a single-file grant
_NAME_CHANGES = frozenset({"mkdir", "rmdir", "unlink", "rename", "link", "symlink"})


@dataclass(frozen=True)
class GuardPlan:
    """Per module (and engine): which imports are guarded, and the two helper modules.

    ``import_keys``: the guest's imports in order, encoded for the C API, as (module, name,
    taken from the forwarder); ``wasi_keys``: the real WASI functions the guard imports, in order.
    """

    layout: GuardLayout
    forwarder: wasmtime.Module
    guard: wasmtime.Module
    import_keys: tuple[tuple[bytes, bytes, bool], ...]
    wasi_keys: tuple[bytes, ...]


_plans: dict[tuple[str, str, int, bool], GuardPlan | None] = {}
_plan_lock = threading.Lock()


def guard_plan(module: wasmtime.Module, sha: str, handle: Any, coarse_ns: int, fine: bool = False) -> GuardPlan | None:
    """The guard plan for a guest, or None when it imports nothing the guard wraps.

    ``fine``: the sandbox has mounts whose rules are finer than a folder (calls on descriptors
    are then checked too)."""
    key = (sha, handle.settings.fingerprint(), coarse_ns, fine)
    if key in _plans:
        return _plans[key]
    imports = tuple((imp.module, imp.name or "") for imp in module.imports)
    imported = {name for mod, name in imports if mod == WASI_MODULE}
    layout = GuardLayout.for_imports(imported, coarse_ns, fine)
    plan = None
    if layout.names:
        wrapped = set(layout.names)
        plan = GuardPlan(
            layout,
            wasmtime.Module(handle.engine, forwarder_wat(layout)),
            wasmtime.Module(handle.engine, guard_wat(layout)),
            tuple((m.encode(), n.encode(), m == WASI_MODULE and n in wrapped) for m, n in imports),
            tuple(n.encode() for n in layout.reals),
        )
    with _plan_lock:
        _plans[key] = plan
    return plan


_empty_root: str | None = None


def empty_root() -> str:
    """An empty read-only folder, preopened as ``/`` so attempts outside the grants reach the guard."""
    global _empty_root
    if _empty_root is None or not os.path.isdir(_empty_root):
        folder = tempfile.mkdtemp(prefix="workbench-empty-root-")
        os.chmod(folder, 0o555)
        _empty_root = folder
    return _empty_root


def _inside(path: str, folder: str) -> bool:
    return folder == "/" or path == folder or path.startswith(folder + "/")


class _Verdict(NamedTuple):
    allowed: bool
    capability: str | None
    reason: str


class _Refusal(Exception):
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


@dataclass
class _Target:
    """Where one path argument leads: its descriptor entry, the raw text, the resolved guest path,
    and (in a mount with fine rules, or when the path climbs with ``..``) the host walk."""

    entry: FdEntry
    raw: str
    resolved: str
    walk: Walk | None = None

    @property
    def mount(self) -> MountRoot:
        return self.entry.mount

    def close(self) -> None:
        if self.walk is not None:
            self.walk.close()


@dataclass
class _Pending:
    """A call the guard let through, waiting for its outcome (``done``)."""

    fn: str
    requested: str
    resolved: str | None
    write: bool
    capability: str | None
    reason: str
    decision: str
    detail: dict[str, Any]
    target: _Target | None = None
    second: _Target | None = None
    fd_ptr: int | None = None
    expected_inode: int | None = None
    truncate: bool = False
    directory: bool = False

    def close(self) -> None:
        for target in (self.target, self.second):
            if target is not None:
                target.close()


class Guard:
    """The host side of the guard for one run.

    - ``mounts``: every preopened folder, in preopen order (fd 3, 4, ...);
    - ``file_grants``: guest paths of single-file grants (they cover exactly that file);
    - ``housekeeping``: guest paths (a trailing ``/`` for a prefix) that the language runtime
      itself looks for (an interpreter's own source files): answered ``ENOENT`` and recorded in
      their own category rather than as the guest's violations.
    """

    def __init__(
        self,
        policy: Any,
        mounts: list[MountRoot],
        mode: str,
        emit: Callable[..., Any],
        *,
        file_grants: frozenset[str] = frozenset(),
        housekeeping: tuple[str, ...] = (),
        deadline: Callable[[], float | None] = lambda: None,
        stop: Callable[[str, str], None] = lambda kind, reason: None,
        must_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.policy = policy
        self.must_stop = must_stop  # the run was asked to stop (deadline, cancel): trap at the next call
        self.deadline = deadline  # time.monotonic() value the run must end by, or None
        self.clock_base_ns = time.monotonic_ns()  # ~ when the guest's monotonic clock started
        self.stop = stop
        self.stop_now = False  # set when a call returns past the deadline: trap before the guest goes on
        self.mode = mode
        self.emit = emit
        self.file_grants = file_grants
        self.housekeeping = housekeeping
        self.fds = FdTable()
        for index, mount in enumerate(mounts):
            self.fds.opened(3 + index, FdEntry(mount.guest, mount, mount.writable, True))
        self.mount_roots = sorted({m.guest for m in mounts}, key=len, reverse=True)
        self.pending: _Pending | None = None
        self.kill_reason: str | None = None
        self.context: Any = None
        self.memory: wasmtime.Memory | None = None
        self._decisions: dict[tuple[str, bool, bool], _Verdict] = {}
        self._uniform: dict[tuple[str, bool, bool], tuple[bool, str | None, str, str]] = {}
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
        self._fn = ""

    def close(self) -> None:
        """Release the host descriptors the guard holds (the run is over)."""
        if self.pending is not None:
            self.pending.close()
            self.pending = None
        self.fds.close_all()

    # -- reading and writing the guest's memory ------------------------------------------------
    def _base(self) -> tuple[int, int]:
        assert self.memory is not None
        raw = ctypes.byref(self.memory._memory)
        size = ffi.wasmtime_memory_data_size(self.context, raw)
        base = ctypes.addressof(ffi.wasmtime_memory_data(self.context, raw).contents)
        return base, size

    def _string(self, ptr: int, length: int) -> str | None:
        base, size = self._base()
        if ptr < 0 or length < 0 or ptr + length > size:
            return None
        try:
            return ctypes.string_at(base + ptr, length).decode("utf-8")
        except UnicodeDecodeError:
            return None

    def _u32(self, ptr: int) -> int:
        base, size = self._base()
        if ptr < 0 or ptr + 4 > size:
            return 0
        return ctypes.c_uint32.from_address(base + ptr).value

    def _write(self, ptr: int, data: bytes) -> bool:
        base, size = self._base()
        if ptr < 0 or ptr + len(data) > size:
            return False
        ctypes.memmove(base + ptr, data, len(data))
        return True

    # -- decisions -----------------------------------------------------------------------------
    def _decide(self, path: str, write: bool, directory: bool, mount: MountRoot | None = None) -> _Verdict:
        """The policy's decision for one access, as (allowed, capability string, reason).

        In a mount whose rules are the whole folder (not ``fine``: no glob, single-file
        grant or carve-out can match inside it), every path below it gets the same answer
        for the same rights, so the policy is asked once per (mount, rights) and its reason
        restated for each path: the per-call cost stays a dict lookup.  Nowhere else is a
        decision shared between two paths.
        """
        key = (path, write, directory)
        verdict = self._decisions.get(key)
        if verdict is not None:
            return verdict
        root = mount.guest if mount is not None and not mount.fine and path != mount.guest else None
        if root is not None and _inside(path, root):
            shared = self._uniform.get((root, write, directory))
            if shared is not None:
                allowed, capability, reason, first = shared
                return _Verdict(allowed, capability, reason.replace(f"'{first}'", f"'{path}'"))
        else:
            root = None
        decision = self.policy.check_path(path, write, directory=directory, files=self.file_grants)
        capability = None if decision.capability is None else str(decision.capability)
        verdict = _Verdict(decision.allowed, capability, decision.reason)
        if root is not None:
            self._uniform[(root, write, directory)] = (decision.allowed, capability, decision.reason, path)
        elif len(self._decisions) < 4096:
            self._decisions[key] = verdict
        return verdict

    def _gate(self, kind: str, path: str) -> tuple[str, str | None] | None:
        """May a walk pass through this folder (``kind="folder"``) or follow this symlink (``"link"``)?"""
        verdict = self._decide(path, False, kind == "folder")
        if verdict.allowed:
            return None
        return verdict.reason, verdict.capability

    def _housekeeping(self, path: str) -> bool:
        return any(path == item or (item.endswith("/") and path.startswith(item)) for item in self.housekeeping)

    # -- resolving a path argument -------------------------------------------------------------
    def _target(
        self, dirfd: int, ptr: int, length: int, *, follow: bool, name_op: bool = False, walk_always: bool = False
    ) -> _Target:
        entry = self.fds.get(dirfd)
        if entry is None:
            raise _Refusal(EBADF, f"descriptor {dirfd} is not a folder the guest was given", None)
        if length > MAX_PATH_BYTES:
            raise _Refusal(ENAMETOOLONG, f"path of {length} bytes is longer than {MAX_PATH_BYTES}", None)
        raw = self._string(ptr, length)
        if raw is None:
            raise _Refusal(EFAULT, "path is not valid UTF-8 inside guest memory", None)
        if "\x00" in raw:
            raise _Refusal(EILSEQ, "path holds a NUL byte", None)
        if raw.startswith("/"):
            raise _Refusal(ENOTCAPABLE, "absolute paths are not resolved inside a preopen", posixpath.normpath(raw))
        mount = entry.mount
        textual = posixpath.normpath(posixpath.join(entry.path, raw)) if raw else entry.path
        if textual.startswith("//"):
            textual = textual[1:]
        climbs = ".." in raw.split("/")
        target = _Target(entry, raw, textual)
        if mount.fd is not None and (mount.fine or climbs or walk_always):
            if name_op:
                raw = raw.rstrip("/") or raw
            target.walk = self._walk(entry, raw, follow=follow, gate=mount.fine and self.mode != "audit")
            target.resolved = target.walk.guest
        elif not _inside(textual, entry.path):
            raise _Refusal(ENOTCAPABLE, f"'..' leaves the preopened folder {entry.path}", textual)
        for root in self.mount_roots:  # longest first
            if len(root) <= len(mount.guest):
                break
            for path in {textual, target.resolved}:
                if _inside(path, root):  # libc would use that folder's own descriptor; this way is a side door
                    target.close()
                    raise _Refusal(
                        ENOTCAPABLE, f"{path} lies in the mount {root}; it is reached through {root}, not {mount.guest}",
                        path,
                    )
        return target

    def _walk(self, entry: FdEntry, raw: str, *, follow: bool, gate: bool) -> Walk:
        mount = entry.mount
        assert mount.fd is not None
        check = self._gate if gate else None
        try:
            if entry.host_fd is not None:
                return walk(entry.host_fd, entry.path, raw, follow=follow, gate=check)
            if entry.path == mount.guest:
                return walk(mount.fd, mount.guest, raw, follow=follow, gate=check)
            # a folder the guest opened: reach it from its mount first (it becomes the base)
            base = walk(mount.fd, mount.guest, posixpath.relpath(entry.path, mount.guest) + "/", follow=True, gate=check)
            try:
                folder = base.folder_fd
                assert folder is not None
                return walk(folder, base.guest, raw, follow=follow, gate=check)
            finally:
                base.close()
        except WalkRefused as refused:
            raise _Refusal(refused.errno, refused.reason, refused.where, refused.capability, refused.violation) from None
        except WalkMissing as missing:
            verdict = self._decide(missing.where, False, False, mount)
            if not verdict.allowed:
                raise _Refusal(EACCES, verdict.reason, missing.where, verdict.capability) from None
            raise _Refusal(ENOENT, f"{missing.where}: a folder on the way does not exist", missing.where,
                           violation=False) from None

    def _judge(self, target: _Target, write: bool, directory: bool, action: str) -> _Verdict:
        """The decision on a resolved target (raises the refusal)."""
        path = target.resolved
        if self._housekeeping(path) and (self.mode == "audit" or not self._decide(path, write, directory).allowed):
            raise _Refusal(ENOENT, "the language runtime looked for one of its own files (not the guest's request); "
                                   "answered 'not found'", path, violation=False, category="runtime")
        if self.mode == "audit":
            return _Verdict(True, None, "learn mode: allowed and recorded")
        verdict = self._decide(path, write, directory, target.mount)
        if not verdict.allowed:
            links = target.walk.links if target.walk is not None else []
            reason = verdict.reason if not links else f"{links[0]} is a symlink to {path}: {verdict.reason}"
            raise _Refusal(EACCES, reason, path, verdict.capability)
        if action in _NAME_CHANGES and path in self.file_grants:
            raise _Refusal(EACCES, f"{path} is a single-file grant: its content may be used, its name not changed",
                           path, verdict.capability)
        if action in _NAME_CHANGES and target.mount.files:
            raise _Refusal(EACCES, f"{target.mount.guest} holds only single-file grants; no name in it may change",
                           path, verdict.capability)
        if write and not target.mount.writable:
            raise _Refusal(EROFS, f"{target.mount.guest} is mounted read-only", path, verdict.capability)
        return verdict

    # -- the calls ------------------------------------------------------------------------------
    def check(self, fn: str, args: Any) -> int:
        """Decide one call: 0 lets it through, an errno refuses it, ``HANDLED | errno`` reports a
        call the guard performed itself; kill mode arms a trap."""
        if self.pending is not None:  # the last call trapped before its outcome came back
            self.pending.close()
            self.pending = None
        self._fn = fn
        return self._handlers[fn](args)

    def _refuse(self, action: str, raw: str, refusal: _Refusal, detail: dict[str, Any]) -> int:
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

    def _record(self, action: str, target: _Target, verdict: _Verdict, errno: int, detail: dict[str, Any]) -> None:
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
    def _fine(*targets: _Target) -> bool:
        return any(t.mount.fine and t.walk is not None for t in targets)

    def _perform(self, action: str, target: _Target, verdict: _Verdict, detail: dict[str, Any],
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

    def _links(self, detail: dict[str, Any], *targets: _Target) -> dict[str, Any]:
        links = [link for t in targets if t.walk is not None for link in t.walk.links]
        if links:
            detail["links"] = links
        return detail

    def _path_open(self, args: Any) -> int:
        dirfd, lookup, ptr, length = args[0].i32, args[1].i32, args[2].i32, args[3].i32
        oflags, rights, fdflags, fd_ptr = args[4].i32, args[5].i64, args[7].i32, args[8].i32
        write = bool(rights & _WRITE_RIGHTS or oflags & (_O_CREAT | _O_TRUNC) or fdflags & _FDFLAG_APPEND)
        directory = bool(oflags & _O_DIRECTORY)
        detail: dict[str, Any] = {"oflags": oflags, "rights": "write" if write else "read", "follow": bool(lookup & _FOLLOW)}
        try:
            target = self._target(dirfd, ptr, length, follow=bool(lookup & _FOLLOW))
        except _Refusal as refusal:
            return self._refuse("open", self._raw_of(ptr, length), refusal, detail)
        code = 0
        pending = _Pending("path_open", target.raw, target.resolved, write, None, "", "allow", detail, target,
                           fd_ptr=fd_ptr, directory=directory)
        try:
            walked = target.walk
            if walked is not None and walked.stat is not None:
                directory = directory or st.S_ISDIR(walked.stat.st_mode)
            verdict = self._judge(target, write, directory, "open")
            if walked is not None and target.mount.fine:
                code = self._prepare_open(walked, oflags, write)
                if code & HANDLED:
                    target.close()
                    self._record("open", target, verdict, code & 0xFFFF, self._links(detail, target))
                    return code
                pending.expected_inode = self._expected(walked)
                pending.truncate = bool(code & STRIP_TRUNC)
        except _Refusal as refusal:
            target.close()
            return self._refuse("open", target.raw, refusal, self._links(detail, target))
        pending.capability, pending.reason = verdict.capability, verdict.reason
        pending.decision = "audit" if self.mode == "audit" else "allow"
        pending.directory = directory
        self._links(detail, target)
        self.pending = pending
        return code

    def _prepare_open(self, walked: Walk, oflags: int, write: bool) -> int:
        """In a fine mount: do what ``path_open`` would do to the name (create, refuse), on exactly
        the object checked, and ask the guard to verify what the real call then opens."""
        if oflags & _O_CREAT and oflags & _O_DIRECTORY:
            return HANDLED | EINVAL
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

    def _name_call(self, args: Any, action: str, directory: bool, op: Callable[[Walk], None]) -> int:
        """mkdir, rmdir, unlink: one path, no follow; performed by the guard in fine mounts."""
        dirfd, ptr, length = args[0].i32, args[1].i32, args[2].i32
        detail: dict[str, Any] = {"rights": "write"}
        try:
            target = self._target(dirfd, ptr, length, follow=False, name_op=True)
        except _Refusal as refusal:
            return self._refuse(action, self._raw_of(ptr, length), refusal, detail)
        try:
            verdict = self._judge(target, True, directory, action)
        except _Refusal as refusal:
            target.close()
            return self._refuse(action, target.raw, refusal, self._links(detail, target))
        walked = target.walk
        if walked is not None and target.mount.fine:
            if not walked.name:
                target.close()
                self._record(action, target, verdict, EEXIST if action == "mkdir" else WASI["EBUSY"], detail)
                return HANDLED | (EEXIST if action == "mkdir" else WASI["EBUSY"])
            return self._perform(action, target, verdict, self._links(detail, target), lambda: op(walked))
        self.pending = _Pending(self._fn, target.raw, target.resolved, True, verdict.capability, verdict.reason,
                                "audit" if self.mode == "audit" else "allow", self._links(detail, target), target)
        return 0

    def _mkdir(self, args: Any) -> int:
        return self._name_call(args, "mkdir", True, lambda w: os.mkdir(w.name, 0o777, dir_fd=w.parent_fd))

    def _rmdir(self, args: Any) -> int:
        return self._name_call(args, "rmdir", True, lambda w: os.rmdir(w.name, dir_fd=w.parent_fd))

    def _unlink(self, args: Any) -> int:
        def unlink(w: Walk) -> None:
            if w.stat is not None and st.S_ISDIR(w.stat.st_mode):
                raise IsADirectoryError(21, "is a folder")
            os.unlink(w.name, dir_fd=w.parent_fd)

        return self._name_call(args, "unlink", False, unlink)

    def _two(self, action: str, first: tuple[int, int, int, bool], second: tuple[int, int, int],
             detail: dict[str, Any]) -> tuple[_Target, _Target, _Verdict] | int:
        """Both names of a rename or link: resolved (both walked when either lies in a fine mount,
        so the guard can act on both objects), and each writable."""
        entries = (self.fds.get(first[0]), self.fds.get(second[0]))
        fine = any(e is not None and e.mount.fine for e in entries)
        try:
            old = self._target(first[0], first[1], first[2], follow=first[3], name_op=True, walk_always=fine)
        except _Refusal as refusal:
            return self._refuse(action, self._raw_of(first[1], first[2]), refusal, detail)
        try:
            new = self._target(second[0], second[1], second[2], follow=False, name_op=True, walk_always=fine)
        except _Refusal as refusal:
            old.close()
            return self._refuse(action, self._raw_of(second[1], second[2]), refusal, detail)
        detail["to"] = new.resolved
        try:
            verdict = self._judge(old, True, False, action)
            self._judge(new, True, False, action)
        except _Refusal as refusal:
            old.close()
            new.close()
            return self._refuse(action, old.raw, refusal, self._links(detail, old, new))
        return old, new, verdict

    def _rename(self, args: Any) -> int:
        detail: dict[str, Any] = {"rights": "write"}
        both = self._two("rename", (args[0].i32, args[1].i32, args[2].i32, False), (args[3].i32, args[4].i32, args[5].i32), detail)
        if isinstance(both, int):
            return both
        old, new, verdict = both
        if self._fine(old, new) or old.mount.fine or new.mount.fine:
            try:
                self._check_move(old, new)
            except _Refusal as refusal:
                old.close()
                new.close()
                return self._refuse("rename", old.raw, refusal, self._links(detail, old, new))
            if old.walk is not None and new.walk is not None and old.walk.name and new.walk.name:
                ow, nw = old.walk, new.walk
                code = self._perform("rename", old, verdict, self._links(detail, old, new), lambda: os.rename(
                    ow.name, nw.name, src_dir_fd=ow.parent_fd, dst_dir_fd=nw.parent_fd))
                new.close()
                if code == HANDLED:
                    self.fds.renamed(old.resolved, new.resolved)
                return code
            old.close()
            new.close()
            return self._refuse("rename", old.raw, _Refusal(WASI["EBUSY"], "a folder cannot be renamed through '.' or '..'",
                                                            old.resolved, violation=False), detail)
        self.pending = _Pending("path_rename", old.raw, old.resolved, True, verdict.capability, verdict.reason,
                                "audit" if self.mode == "audit" else "allow", detail, old, new)
        return 0

    def _check_move(self, old: _Target, new: _Target) -> None:
        """A folder may move only if no rule tells its contents apart at the old and the new place.

        Rules are about paths, so renaming an ancestor of a carve-out (``/work/sub`` above
        ``!filesystem:read:/work/sub/private``) would lift it.  Every rule that could match
        below either place is found; if there is one, every entry now inside the folder is
        compared, old place against new (at most 4096 entries; more is refused)."""
        walked = old.walk
        if walked is None or walked.stat is None or not st.S_ISDIR(walked.stat.st_mode) or self.mode == "audit":
            return
        if not self._rules_below(old.resolved) and not self._rules_below(new.resolved):
            return
        assert walked.parent_fd is not None
        budget = [4096]

        def compare(fd: int, rel: str) -> None:
            for name in os.listdir(fd):
                budget[0] -= 1
                if budget[0] < 0:
                    raise _Refusal(EACCES, f"{old.resolved} holds too many entries to prove that moving it keeps "
                                           "every rule in force", old.resolved)
                sub = f"{rel}/{name}"
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                is_dir = st.S_ISDIR(info.st_mode)
                for write in (False, True):
                    before = self._decide(old.resolved + sub, write, is_dir)
                    after = self._decide(new.resolved + sub, write, is_dir)
                    if after.allowed and not before.allowed:
                        raise _Refusal(EACCES, f"moving {old.resolved} to {new.resolved} would lift "
                                               f"{before.capability or 'a rule'} from {old.resolved + sub}",
                                       old.resolved, before.capability)
                if is_dir:
                    child = _list_folder(name, fd, info)
                    try:
                        compare(child, sub)
                    finally:
                        os.close(child)

        for write in (False, True):
            before = self._decide(old.resolved, write, True)
            after = self._decide(new.resolved, write, True)
            if after.allowed and not before.allowed:
                raise _Refusal(EACCES, f"moving {old.resolved} to {new.resolved} would lift a rule from it",
                               old.resolved, before.capability)
        for deny in self.policy.denies:
            if deny.domain == "filesystem" and deny.scope and not _glob(deny.scope) and _inside(deny.scope, old.resolved):
                raise _Refusal(EACCES, f"{old.resolved} holds the carve-out {deny}; moving it would lift it",
                               old.resolved, str(deny))
        try:
            folder = _list_folder(walked.name, walked.parent_fd, walked.stat)
        except OSError as exc:
            raise _Refusal(EACCES, f"{old.resolved} changed while the guard checked its contents ({exc})",
                           old.resolved) from None
        try:
            compare(folder, "")
        except OSError as exc:
            raise _Refusal(EACCES, f"{old.resolved} changed while the guard checked its contents ({exc})",
                           old.resolved) from None
        finally:
            os.close(folder)

    def _rules_below(self, path: str) -> bool:
        """Could any rule other than a plain folder grant tell paths at or below ``path`` apart?"""
        from ..policy import paths as guest_paths

        for cap in self.policy.capabilities:
            if cap.domain != "filesystem" or not cap.scope:
                continue
            scope = cap.scope
            if _glob(scope):
                static = guest_paths.static_part(scope)
                if _inside(static, path) or _inside(path, static):
                    return True
            elif (cap.deny or scope in self.file_grants) and (_inside(scope, path) or _inside(path, scope)):
                return True
        return False

    def _link(self, args: Any) -> int:
        detail: dict[str, Any] = {"rights": "write"}
        follow = bool(args[1].i32 & _FOLLOW)
        both = self._two("link", (args[0].i32, args[2].i32, args[3].i32, follow), (args[4].i32, args[5].i32, args[6].i32), detail)
        if isinstance(both, int):
            return both
        old, new, verdict = both
        if old.walk is not None and new.walk is not None and (old.mount.fine or new.mount.fine):
            ow, nw = old.walk, new.walk
            if not ow.name or ow.stat is None or st.S_ISDIR(ow.stat.st_mode):
                old.close()
                new.close()
                errno = ENOENT if ow.stat is None else EPERM
                self._record("link", old, verdict, errno, detail)
                return HANDLED | errno
            code = self._perform("link", old, verdict, self._links(detail, old, new), lambda: os.link(
                ow.name, nw.name, src_dir_fd=ow.parent_fd, dst_dir_fd=nw.parent_fd, follow_symlinks=False))
            new.close()
            return code
        self.pending = _Pending("path_link", old.raw, old.resolved, True, verdict.capability, verdict.reason,
                                "audit" if self.mode == "audit" else "allow", detail, old, new)
        return 0

    def _symlink(self, args: Any) -> int:
        text_ptr, text_len, dirfd, ptr, length = (a.i32 for a in (args[0], args[1], args[2], args[3], args[4]))
        text = self._raw_of(text_ptr, text_len)
        detail: dict[str, Any] = {"rights": "write", "link_text": text}
        try:
            target = self._target(dirfd, ptr, length, follow=False, name_op=True)
        except _Refusal as refusal:
            return self._refuse("symlink", self._raw_of(ptr, length), refusal, detail)
        try:
            verdict = self._judge(target, True, False, "symlink")
            self._check_link_text(target, text)
        except _Refusal as refusal:
            target.close()
            return self._refuse("symlink", target.raw, refusal, self._links(detail, target))
        walked = target.walk
        if walked is not None and target.mount.fine and walked.name:
            return self._perform("symlink", target, verdict, detail,
                                 lambda: os.symlink(text, walked.name, dir_fd=walked.parent_fd))
        self.pending = _Pending("path_symlink", target.raw, target.resolved, True, verdict.capability, verdict.reason,
                                "audit" if self.mode == "audit" else "allow", detail, target)
        return 0

    def _check_link_text(self, target: _Target, text: str) -> None:
        """A guest may plant only symlinks that lead where it may read, inside the mount."""
        if text == "<unreadable>" or not text:
            raise _Refusal(EINVAL, "the symlink's text is not valid UTF-8 or is empty", target.resolved)
        if self.mode == "audit":
            return  # learn mode allows and records; mount planning never follows a link out of the root
        if text.startswith("/"):
            raise _Refusal(EACCES, f"a symlink to the absolute path {text} would lead outside the sandbox's "
                                   "folders (only relative links are followed)", target.resolved)
        lands = _lands(posixpath.dirname(target.resolved), text, target.mount.guest)
        if lands is None:
            raise _Refusal(EACCES, f"a symlink to {text} would climb out of the mount {target.mount.guest}",
                           target.resolved)
        verdict = self._decide(lands, False, False)
        if not verdict.allowed and not self._decide(lands, False, True).allowed:
            raise _Refusal(EACCES, f"a symlink to {text} would lead to {lands}, which this run may not read: "
                                   f"{verdict.reason}", target.resolved, verdict.capability)

    def _readlink(self, args: Any) -> int:
        dirfd, ptr, length, buf, buf_len, size_ptr = (a.i32 for a in (args[0], args[1], args[2], args[3], args[4], args[5]))
        detail: dict[str, Any] = {"rights": "read"}
        try:
            target = self._target(dirfd, ptr, length, follow=False, name_op=True)
            verdict = self._judge(target, False, False, "readlink")
        except _Refusal as refusal:
            return self._refuse("readlink", self._raw_of(ptr, length), refusal, detail)
        walked = target.walk
        if walked is not None and target.mount.fine:
            def read() -> None:
                if not walked.name or walked.stat is None:
                    raise OSError(22 if walked.stat is not None else 2, "not a symlink")
                data = os.readlink(walked.name, dir_fd=walked.parent_fd).encode("utf-8", "surrogateescape")
                data = data[: max(buf_len, 0)]
                if not (self._write(buf, data) and self._write(size_ptr, len(data).to_bytes(4, "little"))):
                    raise OSError(14, "bad address")
            return self._perform("readlink", target, verdict, detail, read)
        self.pending = _Pending("path_readlink", target.raw, target.resolved, False, verdict.capability, verdict.reason,
                                "audit" if self.mode == "audit" else "allow", detail, target)
        return 0

    def _filestat_get(self, args: Any) -> int:
        dirfd, flags, ptr, length = args[0].i32, args[1].i32, args[2].i32, args[3].i32
        detail: dict[str, Any] = {"rights": "read"}
        try:
            target = self._target(dirfd, ptr, length, follow=bool(flags & _FOLLOW))
            walked = target.walk
            directory = walked is not None and walked.stat is not None and st.S_ISDIR(walked.stat.st_mode)
            verdict = self._judge(target, False, directory, "stat")
        except _Refusal as refusal:
            return self._refuse("stat", self._raw_of(ptr, length), refusal, detail)
        pending = _Pending("path_filestat_get", target.raw, target.resolved, False, verdict.capability, verdict.reason,
                           "audit" if self.mode == "audit" else "allow", self._links(detail, target), target)
        if walked is not None and target.mount.fine:
            if walked.stat is None:
                target.close()
                self._record("stat", target, verdict, ENOENT, detail)
                return HANDLED | ENOENT
            pending.expected_inode = self._expected(walked)
            self.pending = pending
            return VERIFY
        self.pending = pending
        return 0

    def _set_times(self, args: Any) -> int:
        dirfd, flags, ptr, length = args[0].i32, args[1].i32, args[2].i32, args[3].i32
        atim, mtim, fst = args[4].i64, args[5].i64, args[6].i32
        detail: dict[str, Any] = {"rights": "write"}
        try:
            target = self._target(dirfd, ptr, length, follow=bool(flags & _FOLLOW))
            walked = target.walk
            directory = walked is not None and walked.stat is not None and st.S_ISDIR(walked.stat.st_mode)
            verdict = self._judge(target, True, directory, "utimes")
        except _Refusal as refusal:
            return self._refuse("utimes", self._raw_of(ptr, length), refusal, detail)
        if walked is not None and target.mount.fine:
            def touch() -> None:
                if walked.stat is None:
                    raise FileNotFoundError(2, "missing")
                times = _new_times(walked.stat, atim, mtim, fst)
                if walked.name:
                    os.utime(walked.name, ns=times, dir_fd=walked.parent_fd, follow_symlinks=False)
                else:
                    os.utime(f"/proc/self/fd/{walked.folder_fd}", ns=times)
            return self._perform("utimes", target, verdict, self._links(detail, target), touch)
        self.pending = _Pending("path_filestat_set_times", target.raw, target.resolved, True, verdict.capability,
                                verdict.reason, "audit" if self.mode == "audit" else "allow", detail, target)
        return 0

    def _renumber(self, args: Any) -> int:
        self.pending = _Pending("fd_renumber", "", None, False, None, "", "allow", {"from": args[0].i32, "to": args[1].i32})
        return 0

    def _poll(self, args: Any) -> int:
        self._clamp_sleep(args[0].i32, args[2].i32)
        self.pending = _Pending("poll_oneoff", "", None, False, None, "", "allow", {})
        return 0

    # -- calls on descriptors (runs with fine rules only; fd 0-2 never get here) ------------------
    def _fd_judged(self, fd: int, write: bool, directory: bool) -> tuple[FdEntry, _Verdict] | None:
        entry = self.fds.get(fd)
        if entry is None or not entry.mount.fine or self.mode == "audit":
            return None
        return entry, self._decide(entry.path, write, directory and entry.directory, entry.mount)

    def _fd_refuse(self, entry: FdEntry, verdict: _Verdict, fd: int) -> int:
        action = ACTIONS[self._fn]
        reason = f"descriptor {fd} was opened for {entry.path}: {verdict.reason}"
        return self._refuse(action, entry.path, _Refusal(EACCES, reason, entry.path, verdict.capability), {"fd": fd})

    def _fd_change(self, args: Any) -> int:
        fd = args[0].i32
        judged = self._fd_judged(fd, True, False)
        if judged is None:
            return 0
        entry, verdict = judged
        if not verdict.allowed:
            return self._fd_refuse(entry, verdict, fd)
        self.emit("filesystem", ACTIONS[self._fn], "allow", target=entry.path, resolved=entry.path,
                  capability=verdict.capability, reason=verdict.reason, detail={"fd": fd})
        return 0

    def _fd_write(self, args: Any) -> int:
        fd = args[0].i32
        entry = self.fds.get(fd)
        if entry is None or not entry.mount.fine or entry.may_write or self.mode == "audit":
            return 0
        judged = self._fd_judged(fd, True, False)
        assert judged is not None
        if judged[1].allowed:
            return 0
        return self._fd_refuse(entry, judged[1], fd)

    def _fd_readdir(self, args: Any) -> int:
        fd = args[0].i32
        judged = self._fd_judged(fd, False, True)
        if judged is None or judged[1].allowed:
            return 0
        return self._fd_refuse(judged[0], judged[1], fd)

    def _fd_close(self, args: Any) -> int:
        self.fds.closed(args[0].i32)
        return 0

    def _clamp_sleep(self, subscriptions: int, count: int) -> None:
        """Cut every clock timeout of a ``poll_oneoff`` at the run's deadline.

        A guest blocked in a host call cannot be interrupted by an epoch check, so a
        ``sleep(60)`` under ``time:limit:1s`` would outlast its limit; with its timeout
        cut it wakes at the deadline and the next epoch check stops it.
        """
        deadline = self.deadline()
        if deadline is None or self.memory is None or count <= 0:
            return
        remaining = max(int((deadline - time.monotonic()) * 1e9), 0)
        base, size = self._base()
        if subscriptions < 0 or count > size // 48 or subscriptions + 48 * count > size:
            return  # the real call reports EFAULT
        for index in range(count):
            sub = base + subscriptions + 48 * index  # subscription: userdata u64, tag u8 @8, clock @16
            if ctypes.c_uint8.from_address(sub + 8).value != 0:
                continue  # an fd subscription: stdin is never blocking here, sockets are never granted
            clock_id = ctypes.c_uint32.from_address(sub + 16).value
            timeout = ctypes.c_uint64.from_address(sub + 24)
            if ctypes.c_uint16.from_address(sub + 40).value & 1:  # absolute time on that clock
                now = time.time_ns() if clock_id == 0 else time.monotonic_ns() - self.clock_base_ns
                timeout.value = min(timeout.value, now + remaining)
            else:
                timeout.value = min(timeout.value, remaining)

    # -- after the real call ----------------------------------------------------------------------
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

    def _done(self, pending: _Pending, fn: str, errno: int, inode: int) -> int:
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
            self._opened(pending)
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

    def _opened(self, pending: _Pending) -> None:
        target = pending.target
        assert target is not None and pending.fd_ptr is not None
        new_fd = self._u32(pending.fd_ptr)
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


def _lands(folder: str, text: str, mount: str) -> str | None:
    """Where the relative link text ``text`` in ``folder`` leads, read as text (the walk decides for real
    when the link is followed); None when its ``..`` climb above the mount."""
    parts = [p for p in folder.split("/") if p]
    floor = len([p for p in mount.split("/") if p])
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if len(parts) <= floor:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def _list_folder(name: str, dir_fd: int, expected: os.stat_result) -> int:
    """A readable descriptor of the folder ``name`` (never through a symlink), proven to be ``expected``."""
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (expected.st_dev, expected.st_ino):
        os.close(fd)
        raise OSError(0, "changed while it was being checked")
    return fd


def _glob(scope: str) -> bool:
    from ..policy import paths as guest_paths

    return guest_paths.is_glob(scope)


def _new_times(current: os.stat_result, atim: int, mtim: int, flags: int) -> tuple[int, int]:
    """(atime, mtime) in ns for ``path_filestat_set_times``'s ``fst_flags``."""
    if (flags & _ATIM and flags & _ATIM_NOW) or (flags & _MTIM and flags & _MTIM_NOW):
        raise OSError(22, "invalid flags")
    now = time.time_ns()
    access = atim if flags & _ATIM else now if flags & _ATIM_NOW else current.st_atime_ns
    modify = mtim if flags & _MTIM else now if flags & _MTIM_NOW else current.st_mtime_ns
    return access, modify


# -- the raw callbacks: one C function each, the run found through the env pointer ----------
_guards: dict[int, Guard] = {}
_ids = itertools.count(1)
_NO_FINALIZER = ctypes.cast(None, ctypes.CFUNCTYPE(None, ctypes.c_void_p))  # type: ignore[arg-type]


def _trap(message: str) -> int:
    data = message.encode()
    return ctypes.cast(ffi.wasmtime_trap_new(data, len(data)), ctypes.c_void_p).value or 0


@ffi.wasmtime_func_unchecked_callback_t
def _on_check(env, caller, args, nargs):  # type: ignore[no-untyped-def]
    key = env or 0
    guard = _guards.get(key >> 8)
    if guard is None:
        return _trap(f"{KILL_PREFIX}gone")
    if guard.must_stop():  # a guest looping on host calls stops at its next call, not only at a tick
        return _trap(f"{KILL_PREFIX}stop")
    try:
        code = guard.check(_NAMES[key & 0xFF], args)
    except Exception as exc:  # a guard bug must fail closed, never let the call through
        guard.emit("filesystem", "check", "kill" if guard.mode == "kill" else "deny",
                   reason=f"guard error: {exc!r}", errno=EACCES)
        guard._arm_kill("check", _NAMES[key & 0xFF], None, f"guard error: {exc!r}")
        code = EACCES
    if guard.kill_reason is not None:
        return _trap(f"{KILL_PREFIX}guard")
    args[0].i32 = code
    return 0


@ffi.wasmtime_func_unchecked_callback_t
def _on_done(env, caller, args, nargs):  # type: ignore[no-untyped-def]
    guard = _guards.get(env or 0)
    errno = args[1].i32
    if guard is None:
        return _trap(f"{KILL_PREFIX}gone")
    try:
        result = guard.done(_NAMES[args[0].i32], errno, args[2].i64 & 0xFFFF_FFFF_FFFF_FFFF)
    except Exception as exc:  # fail closed: a descriptor the guard could not account for is withdrawn
        guard.emit("filesystem", "check", "kill" if guard.mode == "kill" else "deny",
                   reason=f"guard error after the call: {exc!r}", errno=EACCES)
        guard._arm_kill("check", _NAMES[args[0].i32], None, f"guard error: {exc!r}")
        result = EACCES | CLOSE if errno == 0 else errno
    if guard.kill_reason is not None:
        return _trap(f"{KILL_PREFIX}guard")
    if guard.stop_now:
        return _trap(f"{KILL_PREFIX}time")
    args[0].i32 = result
    return 0


#: by (name, engine address): wasmtime 50 ties a FuncType to the engine it was first used with,
#: and using it on another engine aborts the process (``ty.comes_from_same_engine(engine)``)
_func_types: dict[tuple[str, int], wasmtime.FuncType] = {}


def _func_type(name: str, engine: wasmtime.Engine) -> wasmtime.FuncType:
    key = (name, ctypes.addressof(engine.ptr().contents))
    ty = _func_types.get(key)
    if ty is None:
        make = {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64}
        if name == "done":
            ty = wasmtime.FuncType([make["i32"](), make["i32"](), make["i64"]()], [make["i32"]()])
        else:
            params, results = SIGNATURES[name]
            ty = wasmtime.FuncType([make[p]() for p in params], [make[r]() for r in results])
        _func_types[key] = ty
    return ty


def _raw_func(store: wasmtime.Store, name: str, callback: Any, env: int) -> ffi.wasmtime_func_t:
    func = ffi.wasmtime_func_t()
    ffi.wasmtime_func_new_unchecked(
        store._context(), _func_type(name, store.engine).ptr(), callback, ctypes.c_void_p(env), _NO_FINALIZER,
        ctypes.byref(func),
    )
    return func


def instantiate_guarded(
    store: wasmtime.Store, linker: wasmtime.Linker, module: wasmtime.Module, plan: GuardPlan, guard: Guard
) -> tuple[Any, Callable[[], None]]:
    """Instantiate ``module`` behind the guard; returns its exports and a function that detaches the guard.

    Three instances: the forwarder (whose functions the guest imports in place of the
    guarded WASI calls, each an indirect call through its table), the guest, and the
    guard (which needs the guest's memory, so it comes last and fills the table).
    """
    number = next(_ids)
    _guards[number] = guard

    def detach() -> None:
        _guards.pop(number, None)
        guard.close()

    try:
        forwarder = rawlink.instantiate(store, plan.forwarder, ())
        externs = (ffi.wasmtime_extern_t * len(plan.import_keys))()
        for slot, (module_key, name_key, forwarded) in enumerate(plan.import_keys):
            if forwarded:
                rawlink.export_get(store, forwarder, name_key, externs[slot])
            else:
                rawlink.linker_get(linker, store, module_key, name_key, externs[slot])
        exports = wasmtime.Instance._from_raw(rawlink.instantiate(store, module, externs)).exports(store)
        try:
            memory = exports["memory"]
        except KeyError:
            memory = None
        if not isinstance(memory, wasmtime.Memory):
            raise wasmtime.WasmtimeError("missing required memory export")
        guard.memory = memory
        guard.context = store._context()
        layout = plan.layout
        n_imports = 1 + len(plan.wasi_keys) + len(layout.checked) + bool(layout.has_done)
        guard_imports = (ffi.wasmtime_extern_t * n_imports)()
        guard_imports[0] = memory._as_extern()
        for slot, name_key in enumerate(plan.wasi_keys, start=1):
            rawlink.linker_get(linker, store, WASI_KEY, name_key, guard_imports[slot])
        slot = 1 + len(plan.wasi_keys)
        for checked in layout.checked:
            guard_imports[slot] = rawlink.func_extern(_raw_func(store, checked, _on_check, (number << 8) | FN_IDS[checked]))
            slot += 1
        if layout.has_done:
            guard_imports[slot] = rawlink.func_extern(_raw_func(store, "done", _on_done, number))
        guard_instance = rawlink.instantiate(store, plan.guard, guard_imports)
        table = ffi.wasmtime_extern_t()
        rawlink.export_get(store, forwarder, b"slots", table)
        funcs = []
        for name in layout.names:
            item = ffi.wasmtime_extern_t()
            rawlink.export_get(store, guard_instance, name.encode(), item)
            funcs.append(item.of.func)
        rawlink.fill_func_table(store, table.of.table, funcs)
    except BaseException:
        detach()
        raise
    return exports, detach

