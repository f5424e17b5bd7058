"""The WASI guard: every path-resolving call a guest makes is checked and recorded.

Preopens already confine a guest to its granted folders (wasmtime's cap-std
refuses ``..``, absolute paths and symlinks that leave a preopen).  The guard
adds what preopens cannot express and sees what they hide:

- glob grants (``/data/**/*.json``), single-file grants and deny carve-outs
  (``!filesystem:read:/docs/private``) are enforced per call;
- every attempt is recorded as an :class:`~workbench.events.Event` with the
  requested path, the resolved guest path, the rights asked, the decision, the
  errno and the rule that decided;
- attempts at paths outside every grant are seen too: an empty read-only folder
  is preopened as ``/``, so a guest's libc hands ``/etc/passwd`` to ``path_open``
  instead of failing silently (design.md §5);
- ``on_violation``: ``deny`` fails the call with ``EACCES`` and goes on, ``kill``
  traps the guest at once with a message naming the rule, ``audit`` (learn mode)
  allows and records everything, for :meth:`RunResult.suggested_policy`.

The host side of each check is a raw C-API callback (:mod:`guard_wasm` explains
the wasm side), so no wasmtime-py ``Func`` machinery sits on the call path.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import posixpath
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import wasmtime
from wasmtime import _bindings as ffi

from . import rawlink
from .deadline import KILL_PREFIX
from .guard_wasm import FN_IDS, GUARDED, SIGNATURES, WASI, GuardLayout, forwarder_wat, guard_wat

__all__ = ["Guard", "GuardPlan", "guard_plan", "instantiate_guarded", "empty_root", "EACCES", "ACTIONS"]

# WASI errnos
EACCES, EBADF, EFAULT, EILSEQ, EPERM, ENOTCAPABLE = 2, 8, 21, 25, 63, 76
# rights and flags (WASI preview1)
_WRITE_RIGHTS = (1 << 6) | (1 << 8) | (1 << 22)  # fd_write, fd_allocate, fd_filestat_set_size
_O_CREAT, _O_DIRECTORY, _O_TRUNC = 1, 2, 8
_FDFLAG_APPEND = 1

_NAMES = {number: name for name, number in FN_IDS.items()}
WASI_KEY = WASI.encode()
#: audit action per WASI function
ACTIONS = {
    "path_open": "open", "path_create_directory": "mkdir", "path_remove_directory": "rmdir",
    "path_unlink_file": "unlink", "path_rename": "rename", "path_link": "link", "path_symlink": "symlink",
    "path_readlink": "readlink", "path_filestat_get": "stat", "path_filestat_set_times": "utimes",
}


@dataclass(frozen=True)
class FdEntry:
    """What the guard knows of a descriptor: its guest path and the preopen it lies in."""

    path: str
    mount_root: str
    host_root: str


@dataclass(frozen=True)
class GuardPlan:
    """Per module (and engine): which imports are guarded, and the two helper modules.

    ``import_keys``: the guest's imports in order, encoded for the C API, as (module, name,
    taken from the forwarder); ``wasi_keys``: the guarded WASI functions in table-slot order.
    """

    layout: GuardLayout
    forwarder: wasmtime.Module
    guard: wasmtime.Module
    import_keys: tuple[tuple[bytes, bytes, bool], ...]
    wasi_keys: tuple[bytes, ...]


_plans: dict[tuple[str, str, int], GuardPlan | None] = {}
_plan_lock = threading.Lock()


def guard_plan(module: wasmtime.Module, sha: str, handle: Any, coarse_ns: int) -> GuardPlan | None:
    """The guard plan for a guest, or None when it imports nothing the guard wraps."""
    key = (sha, handle.settings.fingerprint(), coarse_ns)
    if key in _plans:
        return _plans[key]
    imports = tuple((imp.module, imp.name or "") for imp in module.imports)
    names = tuple(n for n in SIGNATURES if (WASI, n) in imports)
    plan = None
    if names:
        layout = GuardLayout(names, coarse_ns)
        plan = GuardPlan(
            layout,
            wasmtime.Module(handle.engine, forwarder_wat(layout)),
            wasmtime.Module(handle.engine, guard_wat(layout)),
            tuple((m.encode(), n.encode(), m == WASI and n in GUARDED) for m, n in imports),
            tuple(n.encode() for n in names),
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


@dataclass
class _Pending:
    fn: str
    requested: str
    resolved: str | None
    write: bool
    capability: str | None
    reason: str
    decision: str
    detail: dict[str, Any]
    entry: FdEntry | None = None
    fd_ptr: int | None = None


class Guard:
    """The host side of the guard for one run.

    ``preopens`` lists ``(guest_path, host_path)`` in preopen order (fd 3, 4, ...).
    ``fine_roots`` are the mounts whose rules are finer than the folder (globs,
    single files, carve-outs): there the guard also checks where symlinks lead.
    """

    def __init__(
        self,
        policy: Any,
        preopens: list[tuple[str, str]],
        mode: str,
        emit: Callable[..., Any],
        *,
        fine_roots: frozenset[str] = frozenset(),
        deadline: Callable[[], float | None] = lambda: None,
        stop: Callable[[str, str], None] = lambda kind, reason: None,
    ) -> None:
        self.policy = policy
        self.deadline = deadline  # time.monotonic() value the run must end by, or None
        self.clock_base_ns = time.monotonic_ns()  # ~ when the guest's monotonic clock started
        self.stop = stop
        self.stop_now = False  # set when a call returns past the deadline: trap before the guest goes on
        self.mode = mode
        self.emit = emit
        self.fine_roots = fine_roots
        self.fds: dict[int, FdEntry] = {
            3 + i: FdEntry(guest, guest, host) for i, (guest, host) in enumerate(preopens)
        }
        self.mount_roots = sorted({guest for guest, _ in preopens}, key=len, reverse=True)
        self.pending: _Pending | None = None
        self.kill_reason: str | None = None
        self.context: Any = None
        self.memory: wasmtime.Memory | None = None
        self.accesses: list[tuple[str, bool, bool]] = []  # (resolved, write, directory) allowed or audited
        self._decisions: dict[tuple[str, bool, bool], _Verdict] = {}
        self._uniform: dict[tuple[str, bool, bool], tuple[bool, str | None, str, str]] = {}

    # -- reading the guest ---------------------------------------------------------------
    def _string(self, ptr: int, length: int) -> str | None:
        assert self.memory is not None
        size = ffi.wasmtime_memory_data_size(self.context, ctypes.byref(self.memory._memory))
        if ptr < 0 or length < 0 or ptr + length > size:
            return None
        base = ctypes.addressof(ffi.wasmtime_memory_data(self.context, ctypes.byref(self.memory._memory)).contents)
        try:
            return ctypes.string_at(base + ptr, length).decode("utf-8")
        except UnicodeDecodeError:
            return None

    def _u32(self, ptr: int) -> int:
        assert self.memory is not None
        base = ctypes.addressof(ffi.wasmtime_memory_data(self.context, ctypes.byref(self.memory._memory)).contents)
        return ctypes.c_uint32.from_address(base + ptr).value

    # -- decisions ----------------------------------------------------------------------
    def _decide(self, path: str, write: bool, directory: bool, mount_root: str | None = None) -> _Verdict:
        """The policy's decision for one access, as (allowed, capability string, reason).

        In a mount whose rules are the whole folder (not ``fine``: no glob, single-file
        grant or carve-out inside), every path below it gets the same answer for the same
        rights, so the policy is asked once per (mount, rights) and its reason restated for
        each path: the per-call cost stays a dict lookup (guest paths are mostly distinct).
        """
        key = (path, write, directory)
        verdict = self._decisions.get(key)
        if verdict is not None:
            return verdict
        # the mount whose answer is shared by every path below it, when there is one
        root = mount_root if mount_root is not None and mount_root not in self.fine_roots and path != mount_root else None
        if root is not None:
            shared = self._uniform.get((root, write, directory))
            if shared is not None:
                allowed, capability, reason, first = shared
                return _Verdict(allowed, capability, reason.replace(f"'{first}'", f"'{path}'"))
        decision = self.policy.check_path(path, write, directory=directory)
        capability = None if decision.capability is None else str(decision.capability)
        verdict = _Verdict(decision.allowed, capability, decision.reason)
        if root is not None:
            self._uniform[(root, write, directory)] = (decision.allowed, capability, decision.reason, path)
        elif len(self._decisions) < 4096:
            self._decisions[key] = verdict
        return verdict

    def _resolve(self, dirfd: int, raw: str) -> tuple[FdEntry | None, str | None, str | None]:
        """(fd entry, resolved guest path, refusal reason)."""
        entry = self.fds.get(dirfd)
        if entry is None:
            return None, None, f"descriptor {dirfd} is not a folder the guest was given"
        if raw.startswith("/"):
            return entry, posixpath.normpath(raw), "absolute paths are not resolved inside a preopen"
        joined = posixpath.normpath(posixpath.join(entry.path, raw)) if raw else entry.path
        if joined.startswith("//"):
            joined = joined[1:]
        if not _inside(joined, entry.mount_root):
            return entry, joined, f"'..' leaves the preopened folder {entry.mount_root}"
        for root in self.mount_roots:  # longest first
            if len(root) <= len(entry.mount_root):
                break
            if _inside(joined, root):  # libc would use that folder's own descriptor; this way is a side door
                return entry, joined, f"{joined} lies in the mount {root}; it is reached through {root}, not {entry.mount_root}"
        return entry, joined, None

    def _symlink_target(self, entry: FdEntry, path: str) -> str | None:
        """Where ``path`` really leads, as a guest path, when a symlink inside the mount is involved."""
        host = os.path.join(entry.host_root, os.path.relpath(path, entry.mount_root))
        real = os.path.realpath(host)
        if real == os.path.normpath(host):
            return None
        if not _inside(real, entry.host_root):
            return ""  # leaves the mount: cap-std refuses it anyway
        relative = os.path.relpath(real, entry.host_root)
        return entry.mount_root if relative == "." else posixpath.join(entry.mount_root, relative.replace(os.sep, "/"))

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
        size = ffi.wasmtime_memory_data_size(self.context, ctypes.byref(self.memory._memory))
        if subscriptions < 0 or subscriptions + 48 * count > size:
            return  # the real call reports EFAULT
        base = ctypes.addressof(ffi.wasmtime_memory_data(self.context, ctypes.byref(self.memory._memory)).contents)
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

    def check(self, fn: str, args: Any) -> int:
        """Decide one call: 0 lets it through, an errno refuses it; kill mode arms a trap."""
        self.pending = None
        if fn == "poll_oneoff":
            self._clamp_sleep(args[0].i32, args[2].i32)
            self.pending = _Pending(fn, "", None, False, None, "", "allow", {})
            return 0
        if fn == "fd_renumber":
            self.pending = _Pending(fn, "", None, False, None, "", "allow", {"from": args[0].i32, "to": args[1].i32})
            return 0
        write, directory, detail = False, False, {}
        second: tuple[int, int, int] | None = None
        fd_ptr = None
        if fn == "path_open":
            dirfd, ptr, length = args[0].i32, args[2].i32, args[3].i32
            oflags, rights, fdflags = args[4].i32, args[5].i64, args[7].i32
            write = bool(rights & _WRITE_RIGHTS or oflags & (_O_CREAT | _O_TRUNC) or fdflags & _FDFLAG_APPEND)
            directory = bool(oflags & _O_DIRECTORY)
            fd_ptr = args[8].i32
            detail = {"oflags": oflags, "rights": "write" if write else "read", "follow": bool(args[1].i32 & 1)}
        elif fn in ("path_filestat_get", "path_filestat_set_times"):
            dirfd, ptr, length = args[0].i32, args[2].i32, args[3].i32
            write = fn == "path_filestat_set_times"
        elif fn == "path_symlink":  # (old_path, old_len, fd, new_path, new_len): the link is created at new
            dirfd, ptr, length = args[2].i32, args[3].i32, args[4].i32
            write = True
            detail = {"link_text": self._string(args[0].i32, args[1].i32)}
        elif fn == "path_link":  # both names: linking gives the new name the old one's rights
            dirfd, ptr, length = args[0].i32, args[2].i32, args[3].i32
            second = (args[4].i32, args[5].i32, args[6].i32)
            write = True
        elif fn == "path_rename":
            dirfd, ptr, length = args[0].i32, args[1].i32, args[2].i32
            second = (args[3].i32, args[4].i32, args[5].i32)
            write = True
        else:  # path_create_directory, path_remove_directory, path_unlink_file, path_readlink
            dirfd, ptr, length = args[0].i32, args[1].i32, args[2].i32
            write = fn != "path_readlink"
            directory = fn in ("path_create_directory", "path_remove_directory")
        detail["rights"] = "write" if write else "read"

        refusal = self._check_one(fn, dirfd, ptr, length, write, directory, detail)
        if isinstance(refusal, int):
            return refusal
        pending = refusal
        if second is not None:
            other = self._check_one(fn, second[0], second[1], second[2], True, False, detail)
            if isinstance(other, int):
                return other
            pending.detail = {**pending.detail, "to": other.resolved}
        pending.fd_ptr = fd_ptr
        self.pending = pending
        return 0

    def _check_one(
        self, fn: str, dirfd: int, ptr: int, length: int, write: bool, directory: bool, detail: dict[str, Any]
    ) -> _Pending | int:
        raw = self._string(ptr, length)
        action = ACTIONS[fn]
        if raw is None:
            return self._refuse(action, "<unreadable>", None, None, "path is not valid UTF-8 inside guest memory", EFAULT, detail)
        entry, resolved, problem = self._resolve(dirfd, raw)
        if problem is not None:
            errno = EBADF if entry is None else ENOTCAPABLE
            return self._refuse(action, raw, resolved, None, problem, errno, detail)
        assert entry is not None and resolved is not None
        if self.mode == "audit":
            self.accesses.append((resolved, write, directory))
            return _Pending(fn, raw, resolved, write, None, "learn mode: allowed and recorded", "audit", dict(detail), entry)
        decision = self._decide(resolved, write, directory, entry.mount_root)
        if decision.allowed and entry.mount_root in self.fine_roots:
            real = self._symlink_target(entry, resolved)
            if real:
                through = self._decide(real, write, directory)
                if not through.allowed:
                    reason = f"{resolved} is a symlink to {real}: {through.reason}"
                    return self._refuse(action, raw, resolved, through.capability, reason, EACCES, detail)
        capability = decision.capability
        if not decision.allowed:
            return self._refuse(action, raw, resolved, capability, decision.reason, EACCES, detail)
        self.accesses.append((resolved, write, directory))
        return _Pending(fn, raw, resolved, write, capability, decision.reason, "allow", dict(detail), entry)

    def _refuse(
        self, action: str, raw: str, resolved: str | None, capability: Any, reason: str, errno: int, detail: dict[str, Any]
    ) -> int:
        capability = None if capability is None else str(capability)
        kill = self.mode == "kill"
        self.emit(
            "filesystem", action, "kill" if kill else "deny",
            target=raw, resolved=resolved, capability=capability, reason=reason, errno=errno, detail=dict(detail),
        )
        if kill and self.kill_reason is None:
            self.kill_reason = f"{action} {resolved or raw} denied{f' by {capability}' if capability else ''}: {reason}"
        return errno

    def done(self, fn: str, errno: int) -> None:
        """After the real call: record the outcome and follow new descriptors."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        if fn == "poll_oneoff":
            deadline = self.deadline()
            if deadline is not None and time.monotonic() >= deadline:
                self.stop("time", "wall-clock deadline reached during a sleep")
                self.stop_now = True
            return
        if fn == "fd_renumber":
            if errno == 0:
                source, target = pending.detail["from"], pending.detail["to"]
                moved = self.fds.pop(source, None)
                if moved is not None:
                    self.fds[target] = moved
                else:
                    self.fds.pop(target, None)
            return
        if pending.decision == "allow" and errno in (EPERM, ENOTCAPABLE):
            # the policy allowed the name, wasmtime's WASI (cap-std) refused where it leads
            pending.decision = "deny"
            pending.reason = (
                f"{pending.resolved} leads outside its granted folder (a symlink or a '..' through one); "
                "wasmtime's WASI refused it"
            )
        if fn == "path_open" and errno == 0 and pending.fd_ptr is not None and pending.entry is not None:
            new_fd = self._u32(pending.fd_ptr)
            self.fds[new_fd] = FdEntry(pending.resolved or "/", pending.entry.mount_root, pending.entry.host_root)
        self.emit(
            "filesystem", ACTIONS[fn], pending.decision,
            target=pending.requested, resolved=pending.resolved, capability=pending.capability,
            reason=pending.reason, errno=errno, detail=pending.detail,
        )


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
    try:
        errno = guard.check(_NAMES[key & 0xFF], args)
    except Exception as exc:  # a guard bug must fail closed, never let the call through
        guard.emit("filesystem", "check", "deny", reason=f"guard error: {exc!r}", errno=EACCES)
        errno = EACCES
    if guard.kill_reason is not None:
        return _trap(f"{KILL_PREFIX}guard")
    args[0].i32 = errno
    return 0


@ffi.wasmtime_func_unchecked_callback_t
def _on_done(env, caller, args, nargs):  # type: ignore[no-untyped-def]
    guard = _guards.get(env or 0)
    if guard is not None:
        try:
            guard.done(_NAMES[args[0].i32], args[1].i32)
        except Exception:
            pass  # recording must not break the guest; the call already happened
        if guard.stop_now:
            return _trap(f"{KILL_PREFIX}time")
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
            ty = wasmtime.FuncType([make["i32"](), make["i32"]()], [])
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

    try:
        forwarder = rawlink.instantiate(store, plan.forwarder, ())
        externs = (ffi.wasmtime_extern_t * len(plan.import_keys))()
        for slot, (module_key, name_key, forwarded) in enumerate(plan.import_keys):
            if forwarded:
                rawlink.export_get(store, forwarder, name_key, externs[slot])
            else:
                rawlink.linker_get(linker, store, module_key, name_key, externs[slot])
        exports = rawlink.Exports(store, rawlink.instantiate(store, module, externs), module)
        try:
            memory = exports["memory"]
        except KeyError:
            memory = None
        if not isinstance(memory, wasmtime.Memory):
            raise wasmtime.WasmtimeError("missing required memory export")
        guard.memory = memory
        guard.context = store._context()
        layout = plan.layout
        guard_imports = (ffi.wasmtime_extern_t * (1 + len(layout.names) + len(layout.checked) + bool(layout.checked)))()
        guard_imports[0] = memory._as_extern()
        for slot, name_key in enumerate(plan.wasi_keys, start=1):
            rawlink.linker_get(linker, store, WASI_KEY, name_key, guard_imports[slot])
        slot = 1 + len(layout.names)
        for checked in layout.checked:
            guard_imports[slot] = rawlink.func_extern(_raw_func(store, checked, _on_check, (number << 8) | FN_IDS[checked]))
            slot += 1
        if layout.checked:
            guard_imports[slot] = rawlink.func_extern(_raw_func(store, "done", _on_done, number))
        guard_instance = rawlink.instantiate(store, plan.guard, guard_imports)
        table = ffi.wasmtime_extern_t()
        rawlink.export_get(store, forwarder, b"slots", table)
        funcs = []
        for name_key in plan.wasi_keys:
            item = ffi.wasmtime_extern_t()
            rawlink.export_get(store, guard_instance, name_key, item)
            funcs.append(item.of.func)
        rawlink.fill_func_table(store, table.of.table, funcs)
    except BaseException:
        detach()
        raise
    return exports, detach
