"""Linking a guest behind the guard, and the raw C-API callbacks that reach the guard.

Three instances, wired through wasmtime's C API (:mod:`rawlink`): the forwarder (whose
functions the guest imports in place of the guarded WASI calls), the guest, and the guard
module (instantiated last: it needs the guest's memory); the forwarder's table is then filled
with the guard's functions.  The host side is one raw callback per checked function
(``check_*``) and one ``done``, found through a small registry keyed by the env pointer, so no
wasmtime-py ``Func`` sits on the call path.  A guard that raises fails closed.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import wasmtime

from ..caches import BoundedCache
from .._wasmtime_ffi import ffi, store_context
from . import rawlink
from .deadline import KILL_PREFIX
from .guard import Guard
from .guard_core import EACCES
from .guard_wasm import CLOSE, FN_IDS, SIGNATURES, WASI as WASI_MODULE, GuardLayout, forwarder_wat, guard_wat
from .helper_modules import helper_module

__all__ = ["GuardPlan", "guard_plan", "instantiate_guarded", "empty_root"]

_NAMES = {number: name for name, number in FN_IDS.items()}
WASI_KEY = WASI_MODULE.encode()
HOST_KEY = b"workbench"  # host_imports.HOST_MODULE: the run's HostCalls links these


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


#: guard plans by (module sha256, engine settings, clock grain, fine); each holds two small compiled
#: modules, so a batch of many distinct guests keeps only the latest (bound: workbench.caches)
_plans: BoundedCache[tuple[str, str, int, bool], GuardPlan | None] = BoundedCache("guard plans")
_NO_PLAN_YET = object()


def guard_plan(module: wasmtime.Module, sha: str, handle: Any, coarse_ns: int, fine: bool = False) -> GuardPlan | None:
    """The guard plan for a guest, or None when it imports nothing the guard wraps.

    ``fine``: the sandbox has mounts whose rules are finer than a folder (calls on descriptors
    are then checked too)."""
    key = (sha, handle.settings.fingerprint(), coarse_ns, fine)
    known = _plans.get(key, _NO_PLAN_YET)  # type: ignore[arg-type]
    if known is not _NO_PLAN_YET:
        return known
    imports = tuple((imp.module, imp.name or "") for imp in module.imports)
    imported = {name for mod, name in imports if mod == WASI_MODULE}
    layout = GuardLayout.for_imports(imported, coarse_ns, fine)
    plan = None
    if layout.names:
        wrapped = set(layout.names)
        plan = GuardPlan(
            layout,
            helper_module(handle, forwarder_wat(layout)),  # compiled once per machine
            helper_module(handle, guard_wat(layout)),
            tuple((m.encode(), n.encode(), m == WASI_MODULE and n in wrapped) for m, n in imports),
            tuple(n.encode() for n in layout.reals),
        )
    _plans.put(key, plan)
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


# -- the raw callbacks: one C function each, the run found through the env pointer ----------
_guards: dict[int, Guard] = {}
_ids = itertools.count(1)
_NO_FINALIZER = ctypes.cast(None, ctypes.CFUNCTYPE(None, ctypes.c_void_p))  # type: ignore[arg-type]


def _trap(message: str) -> int:
    data = message.encode()
    return ctypes.cast(ffi.wasmtime_trap_new(data, len(data)), ctypes.c_void_p).value or 0


@ffi.wasmtime_func_unchecked_callback_t
def _on_check(env, caller, args, nargs):  # type: ignore[no-untyped-def]
    try:  # nothing may escape a C callback (ctypes would go on with garbage): the guest is stopped
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
    except BaseException as exc:
        return _trap(f"workbench guard failed: {exc!r}")


@ffi.wasmtime_func_unchecked_callback_t
def _on_done(env, caller, args, nargs):  # type: ignore[no-untyped-def]
    try:  # nothing may escape a C callback: the guest is stopped instead
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
    except BaseException as exc:
        return _trap(f"workbench guard failed: {exc!r}")


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
        store_context(store), _func_type(name, store.engine).ptr(), callback, ctypes.c_void_p(env), _NO_FINALIZER,
        ctypes.byref(func),
    )
    return func


def instantiate_guarded(
    store: wasmtime.Store, linker: wasmtime.Linker, module: wasmtime.Module, plan: GuardPlan, guard: Guard,
    tracer: Any = None, host: Any = None,
) -> tuple[Any, Callable[[], None]]:
    """Instantiate ``module`` behind the guard; returns its exports and a function that detaches the guard.

    Three instances: the forwarder (whose functions the guest imports in place of the
    guarded WASI calls, each an indirect call through its table), the guest, and the
    guard (which needs the guest's memory, so it comes last and fills the table).
    ``tracer``: a :class:`~.trace.Tracer` whose layer goes between the guest and its imports;
    ``host``: the run's :class:`~.host_imports.HostCalls`, for ``workbench::*`` imports.
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
            elif module_key == HOST_KEY and host is not None:
                externs[slot] = host.extern(store, name_key.decode())
            else:
                rawlink.linker_get(linker, store, module_key, name_key, externs[slot])
        if tracer is not None:
            tracer.wrap(store, externs)
        exports = rawlink.Exports(store, rawlink.instantiate(store, module, externs), module)  # by name
        try:
            memory = exports["memory"]
        except KeyError:
            memory = None
        if not isinstance(memory, wasmtime.Memory):
            raise wasmtime.WasmtimeError("missing required memory export")
        guard.memory = memory
        if tracer is not None:
            tracer.attach(store, linker, memory)
        guard.context = store_context(store)
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
        if "fd_close" in layout.names and "fd_close" not in layout.checked:  # closes counted in wasm
            read_closed, write_first = rawlink.global_i32(store, guard_instance, b"closed")[0], \
                rawlink.global_i32(store, guard_instance, b"first")[1]
            write_first(3 + guard.fds.preopened)
            guard.read_closed = read_closed
    except BaseException:
        detach()
        raise
    return exports, detach
