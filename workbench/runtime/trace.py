"""The call trace: every WASI call a guest makes, allowed or not, recorded where the guest makes it.

Why a wasm layer of its own, outside the guard: the trace must show what the guest asked and
what it got back, including calls the guard refused and calls the guard never sees (``fd_write``
to stdout, ``args_get`` ...).  So, only in a traced run, each of the guest's WASI imports is
replaced by a wrapper in a small generated module (the same two-instance trick as the guard,
:mod:`guard_wasm`: a **forwarder** the guest links against, whose table is filled after the guest
exists with the functions of a **body** that imports the guest's memory, so that wasmtime's WASI
still finds ``memory`` on its caller).  Each wrapper calls two raw C-API hooks, ``enter`` (the
time, the raw arguments, the bytes of a path) and ``exit`` (the result, the time, the value the
call wrote back), around whatever the guest would have called: the guard's forwarder or the real
WASI function.  Nothing is decoded on the call path (:mod:`trace_table` does that once, at the end).

An untraced run links exactly as before: the cost of not tracing is nothing.
A trace keeps at most :data:`MAX_RECORDS` calls (the rest are counted), so a guest looping on
calls cannot grow the host without bound.  Tracing never changes a call's arguments or result.
"""

from __future__ import annotations

import ctypes
import itertools
import time
from dataclasses import dataclass
from typing import Any, Sequence

import wasmtime

from .._wasmtime_ffi import ffi, memory_handle, store_context
from ..caches import BoundedCache
from ..events import Event
from . import rawlink
from .deadline import KILL_PREFIX
from .trace_table import OUT_PARAMS, PARAMS, PATH_PARAMS, trace_frame

__all__ = ["Tracer", "TracePlan", "trace_plan", "MAX_RECORDS"]

WASI = "wasi_snapshot_preview1"
#: calls a trace keeps; the rest are counted (``trace.attrs["dropped"]``)
MAX_RECORDS = 200_000
#: bytes of a path argument kept
PATH_MAX = 4096
_ENTER_ARGS = 9  # the most parameters a WASI preview 1 function has (path_open)


@dataclass(frozen=True)
class TracePlan:
    """Per module (and engine): which imports are traced, and the two generated modules."""

    names: tuple[str, ...]  # traced WASI functions, by trace slot
    slots: tuple[int, ...]  # for each trace slot, the guest's import index it replaces
    forwarder: wasmtime.Module
    body: wasmtime.Module


_plans: BoundedCache[tuple[str, str], TracePlan | None] = BoundedCache("trace plans", maxsize=64)
_NONE = object()


def _kinds(types: Sequence[wasmtime.ValType]) -> list[str]:
    return [str(t) for t in types]


def trace_plan(module: wasmtime.Module, sha: str, handle: Any) -> TracePlan | None:
    """The trace plan for a guest, or None when it imports no WASI function."""
    key = (sha, handle.settings.fingerprint())
    known = _plans.get(key, _NONE)  # type: ignore[arg-type]
    if known is not _NONE:
        return known
    names: list[str] = []
    slots: list[int] = []
    sigs: list[tuple[list[str], list[str]]] = []
    for index, imp in enumerate(module.imports):
        kind = imp.type
        if imp.module != WASI or not isinstance(kind, wasmtime.FuncType) or imp.name is None:
            continue
        params, results = _kinds(kind.params), _kinds(kind.results)
        if len(params) > _ENTER_ARGS or results not in ([], ["i32"]) or any(p not in ("i32", "i64") for p in params):
            continue  # not a WASI preview 1 shape: linking will say what is wrong
        names.append(imp.name)
        slots.append(index)
        sigs.append((params, results))
    plan = None
    if names:
        plan = TracePlan(tuple(names), tuple(slots), wasmtime.Module(handle.engine, _forwarder_wat(sigs)),
                         wasmtime.Module(handle.engine, _body_wat(sigs)))
    _plans.put(key, plan)
    return plan


def _sig(params: list[str], results: list[str]) -> str:
    return f"(param {' '.join(params)}) (result {' '.join(results)})"


def _forwarder_wat(sigs: list[tuple[list[str], list[str]]]) -> str:
    types = "\n".join(f"  (type $t{i} (func {_sig(*s)}))" for i, s in enumerate(sigs))
    funcs = "\n".join(
        f'  (func (export "{i}") (type $t{i}) '
        + " ".join(f"(local.get {k})" for k in range(len(s[0])))
        + f" (call_indirect (type $t{i}) (i32.const {i})))"
        for i, s in enumerate(sigs)
    )
    return f'(module\n{types}\n  (table (export "slots") {len(sigs)} funcref)\n{funcs})\n'


def _body_wat(sigs: list[tuple[list[str], list[str]]]) -> str:
    lines = ["(module", f"  (type $enter (func (param i32 {' '.join(['i64'] * _ENTER_ARGS)})))"]
    lines += [f"  (type $t{i} (func {_sig(*s)}))" for i, s in enumerate(sigs)]
    lines.append('  (import "env" "memory" (memory 0))')
    lines.append('  (import "workbench" "enter" (func $enter (type $enter)))')
    lines.append('  (import "workbench" "exit" (func $exit (param i32 i32)))')
    lines += [f'  (import "t" "{i}" (func $f{i} (type $t{i})))' for i in range(len(sigs))]
    lines.append('  (export "memory" (memory 0))')
    for i, (params, results) in enumerate(sigs):
        wide = [f"(local.get {k})" if p == "i64" else f"(i64.extend_i32_u (local.get {k}))" for k, p in enumerate(params)]
        wide += ["(i64.const 0)"] * (_ENTER_ARGS - len(params))
        args = " ".join(f"(local.get {k})" for k in range(len(params)))
        body = [f"(call $enter (i32.const {i}) {' '.join(wide)})"]
        if results:
            body += [f"(local.set $r (call $f{i} {args}))", f"(call $exit (i32.const {i}) (local.get $r))", "(local.get $r)"]
        else:
            body += [f"(call $f{i} {args})", f"(call $exit (i32.const {i}) (i32.const 0))"]
        lines.append(f'  (func (export "{i}") (type $t{i}) (local $r i32)\n    ' + "\n    ".join(body) + ")")
    lines.append(")")
    return "\n".join(lines) + "\n"


def _reader(count: int) -> Any:
    """``raw -> (raw[1].i64, ..., raw[count].i64)``, generated once per arity (it is on the call path)."""
    fields = "".join(f"raw[{k}].i64, " for k in range(1, count + 1))
    return eval(f"lambda raw: ({fields})")  # noqa: S307 - text built above


_READERS = [_reader(n) for n in range(_ENTER_ARGS + 1)]
_tracers: dict[int, "Tracer"] = {}
_ids = itertools.count(1)
_NO_FINALIZER = ctypes.cast(None, ctypes.CFUNCTYPE(None, ctypes.c_void_p))  # type: ignore[arg-type]


class Tracer:
    """One run's trace: the records, the hooks' state, and the linking of the trace layer."""

    def __init__(self, plan: TracePlan, events: list[Event]) -> None:
        self.plan = plan
        self.events = events  # the run's events: a call that adds a refusal is marked with its decision
        self.records: list[list[Any]] = []
        self.dropped = 0
        self.started_ns = time.perf_counter_ns()
        self.readers = [_READERS[len(PARAMS.get(n, ())) or _ENTER_ARGS] for n in plan.names]
        self.paths = [PATH_PARAMS.get(n) for n in plan.names]
        self.outs = [OUT_PARAMS.get(n) for n in plan.names]
        self._current: list[Any] | None = None
        self._events_at = 0
        self._memory: wasmtime.Memory | None = None
        self._context: Any = None
        self._number = next(_ids)
        self._forwarder: Any = None
        self._targets: list[Any] = []

    # -- linking ------------------------------------------------------------------------------
    def wrap(self, store: wasmtime.Store, externs: Any) -> Any:
        """The guest's import array with each traced WASI import replaced by its wrapper."""
        self._forwarder = rawlink.instantiate(store, self.plan.forwarder, ())
        for trace_slot, import_slot in enumerate(self.plan.slots):
            target = ffi.wasmtime_extern_t()
            ctypes.memmove(ctypes.byref(target), ctypes.byref(externs[import_slot]), ctypes.sizeof(target))
            self._targets.append(target)
            rawlink.export_get(store, self._forwarder, str(trace_slot).encode(), externs[import_slot])
        return externs

    def attach(self, store: wasmtime.Store, memory: Any) -> None:
        """Once the guest exists: the body (over its memory) fills the forwarder's table."""
        if not isinstance(memory, wasmtime.Memory):
            raise wasmtime.WasmtimeError("missing required memory export")
        self._memory, self._context = memory, store_context(store)
        _tracers[self._number] = self
        imports = (ffi.wasmtime_extern_t * (3 + len(self._targets)))()
        imports[0] = memory._as_extern()
        imports[1] = rawlink.func_extern(_hook(store, "enter", _on_enter, self._number))
        imports[2] = rawlink.func_extern(_hook(store, "exit", _on_exit, self._number))
        for slot, target in enumerate(self._targets, start=3):
            imports[slot] = target
        body = rawlink.instantiate(store, self.plan.body, imports)
        table = ffi.wasmtime_extern_t()
        rawlink.export_get(store, self._forwarder, b"slots", table)
        funcs = []
        for slot in range(len(self.plan.names)):
            item = ffi.wasmtime_extern_t()
            rawlink.export_get(store, body, str(slot).encode(), item)
            funcs.append(item.of.func)
        rawlink.fill_func_table(store, table.of.table, funcs)

    def instantiate_plain(self, store: wasmtime.Store, linker: wasmtime.Linker, module: wasmtime.Module) -> Any:
        """Instantiate an unguarded guest with its WASI imports traced; returns its exports."""
        imports = module.imports
        externs = (ffi.wasmtime_extern_t * len(imports))()
        for slot, imp in enumerate(imports):
            rawlink.linker_get(linker, store, imp.module.encode(), (imp.name or "").encode(), externs[slot])
        self.wrap(store, externs)
        exports = rawlink.Exports(store, rawlink.instantiate(store, module, externs), module)
        self.attach(store, exports.get("memory"))
        return exports

    def detach(self) -> None:
        _tracers.pop(self._number, None)
        self._memory = self._context = None

    # -- the hooks (on the call path) ---------------------------------------------------------
    def _read(self, ptr: int, length: int) -> bytes | None:
        assert self._memory is not None
        raw = ctypes.byref(memory_handle(self._memory))
        size = ffi.wasmtime_memory_data_size(self._context, raw)
        if ptr < 0 or length < 0 or ptr + length > size:
            return None
        base = ctypes.addressof(ffi.wasmtime_memory_data(self._context, raw).contents)
        return ctypes.string_at(base + ptr, length)

    def enter(self, index: int, args: Any) -> None:
        t0 = time.perf_counter_ns()
        if len(self.records) >= MAX_RECORDS:
            self.dropped += 1
            self._current = None
            return
        raw = self.readers[index](args)
        spec = self.paths[index]
        paths = None
        if spec is not None:
            paths = tuple(self._read(raw[p] & 0xFFFFFFFF, min(raw[n] & 0xFFFFFFFF, PATH_MAX)) for p, n in spec)
        record = [index, t0, raw, paths, None, None, None, None]
        self.records.append(record)
        self._current = record
        self._events_at = len(self.events)

    def exit(self, index: int, result: int) -> None:
        t1 = time.perf_counter_ns()
        record, self._current = self._current, None
        if record is None or record[0] != index:
            return
        record[4], record[5] = result, t1
        out = self.outs[index]
        if out is not None and result == 0:
            data = self._read(record[2][out] & 0xFFFFFFFF, 4)
            if data is not None:
                record[6] = int.from_bytes(data, "little")
        if self.plan.names[index] == "fd_prestat_dir_name" and result == 0:  # the preopen's guest name
            raw = record[2]
            record[3] = (self._read(raw[1] & 0xFFFFFFFF, min(raw[2] & 0xFFFFFFFF, PATH_MAX)),)
        if len(self.events) > self._events_at:
            for event in self.events[self._events_at:]:
                if event.decision in ("deny", "kill"):
                    record[7] = event.decision
                    break

    def frame(self, preopens: Sequence[str]) -> Any:
        """The trace as a typed DataFrame (:func:`trace_table.trace_frame`)."""
        return trace_frame(self.records, self.plan.names, preopens, self.started_ns, self.dropped)


_HOOK_TYPES: dict[tuple[str, int], wasmtime.FuncType] = {}


def _hook(store: wasmtime.Store, name: str, callback: Any, env: int) -> Any:
    key = (name, ctypes.addressof(store.engine.ptr().contents))
    ty = _HOOK_TYPES.get(key)
    if ty is None:
        i32, i64 = wasmtime.ValType.i32, wasmtime.ValType.i64
        params = [i32()] + [i64() for _ in range(_ENTER_ARGS)] if name == "enter" else [i32(), i32()]
        ty = _HOOK_TYPES[key] = wasmtime.FuncType(params, [])
    func = ffi.wasmtime_func_t()
    ffi.wasmtime_func_new_unchecked(store_context(store), ty.ptr(), callback, ctypes.c_void_p(env), _NO_FINALIZER,
                                    ctypes.byref(func))
    return func


def _trap(message: str) -> int:
    data = message.encode()
    return ctypes.cast(ffi.wasmtime_trap_new(data, len(data)), ctypes.c_void_p).value or 0


@ffi.wasmtime_func_unchecked_callback_t
def _on_enter(env, caller, args, nargs):  # type: ignore[no-untyped-def]
    try:  # nothing may escape a C callback; a tracer fault loses a record, never changes the call
        tracer = _tracers.get(env or 0)
        if tracer is None:
            return _trap(f"{KILL_PREFIX}gone")
        tracer.enter(args[0].i32, args)
    except BaseException:
        pass
    return 0


@ffi.wasmtime_func_unchecked_callback_t
def _on_exit(env, caller, args, nargs):  # type: ignore[no-untyped-def]
    try:
        tracer = _tracers.get(env or 0)
        if tracer is not None:
            tracer.exit(args[0].i32, args[1].i32)
    except BaseException:
        pass
    return 0
