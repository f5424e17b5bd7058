"""Live instances: ``sandbox.instantiate(source)`` keeps a guest instantiated, to call its exports
one by one (``handle.call("fib", 20)``), under the sandbox's policy and limits.

Why its own module: a run (:mod:`run`) is used once and frees its store before returning; a live
instance keeps its store, mounts and guard open between calls.  It reuses a run's parts (its
events, output capture, memory account, watch and monitor: one ``_Run`` that is never executed)
and the same linking (the guard, the trace layer), so nothing a run enforces is missing:

- the limits are cumulative over the instance's life: one wall-clock budget (the sum of the
  calls' times), one fuel budget (the store's fuel), one memory cap (its account), one CPU budget;
- a call that breaks a limit is recorded as a violation, like a run's, and the handle then refuses
  every further call (``InstanceError``); a trap that is the guest's own bug is raised as
  ``InstanceError`` with its :class:`Fault`, and the instance stays usable;
- every call is recorded (``instance``/``call`` events, to the sandbox's subscribers and audit log);
- one call at a time: a second thread that calls (or reads memory, or closes) while a call runs is
  refused at once with :class:`~workbench.errors.InstanceError`, never queued.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import wasmtime

from ..errors import InstanceError
from .context import ActiveRuns
from .data_image import image_of
from .deadline import install_watch
from .engine import apply_store_caps, check_native_stack
from .fdtable import MountRoot
from .guard import Guard
from .guard_link import empty_root, instantiate_guarded
from .host_imports import HostCalls, instantiate_plain
from .linear_memory import charging
from .memory_snapshot import MemorySnapshot
from .mount_record import record_mounts
from .mounts import open_mounts
from .result import Fault
from .run import _Run
from .shutdown import running
from .verdicts import classify_trap
from . import rawlink
from .._wasmtime_ffi import instance_handle

__all__ = ["LiveInstance", "CallRecord", "check_arguments"]

_RANGES = {"i32": (-(2**31), 2**32 - 1), "i64": (-(2**63), 2**64 - 1)}


@dataclass(frozen=True)
class CallRecord:
    """One call of a live instance: what was called, with what, what came back, how long it took."""

    export: str
    args: tuple[Any, ...]
    result: Any
    wall_seconds: float
    fault: Fault | None = None
    violation: str | None = None


def check_arguments(name: str, params: Sequence[str], args: Sequence[Any]) -> list[Any]:
    """``args`` checked against a signature (``["i32", "f64"]``): count, type and range; our error if not."""
    if len(args) != len(params):
        raise InstanceError(f"{name} takes {len(params)} argument{'s' if len(params) != 1 else ''} "
                            f"({', '.join(params) or 'none'}), got {len(args)}",
                            hint=f"call it as handle.call({name!r}{''.join(', ' + p for p in params)})")
    out: list[Any] = []
    for position, (kind, value) in enumerate(zip(params, args), start=1):
        if kind in _RANGES:
            low, high = _RANGES[kind]
            if isinstance(value, bool) or not isinstance(value, int):
                raise InstanceError(f"argument {position} of {name} is {kind}: an int, not {type(value).__name__}")
            if not low <= value <= high:
                raise InstanceError(f"argument {position} of {name} ({value}) does not fit in {kind}",
                                    hint=f"{kind} holds {low} .. {high}")
            bits = 32 if kind == "i32" else 64
            out.append(value - 2**bits if value >= 2 ** (bits - 1) else value)  # unsigned spelling, same bits
        elif kind in ("f32", "f64"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InstanceError(f"argument {position} of {name} is {kind}: a number, not {type(value).__name__}")
            out.append(float(value))
        else:
            raise InstanceError(f"{name} takes a {kind} argument, which a live instance cannot pass",
                                hint="call exports that take numbers (i32, i64, f32, f64)")
    return out


class LiveInstance:
    """A guest kept instantiated under a sandbox's policy and limits.  Use as a context manager, or
    :meth:`close` it."""

    def __init__(self, run: _Run, active: ActiveRuns) -> None:
        self._run = run
        self._active = active
        self._lock = threading.Lock()
        self._closed = False
        self.exhausted: str | None = None  # why the instance refuses further calls
        self.calls: list[CallRecord] = []
        self.wall_used = 0.0
        self.cpu_used = 0.0
        self._detach_guard: Any = None
        self._host: HostCalls | None = None
        self._remove_watch: Any = None
        plan, limits = run.plan, run.limits
        self._scratch = run._scratch_folder()
        mounts = list(plan.mounts)
        self._opened = open_mounts(mounts, plan.root, self._scratch)
        try:
            self._open(mounts, limits)
        except BaseException:
            self._release()
            raise

    def _open(self, mounts: list[Any], limits: Any) -> None:
        run, program = self._run, self._run.program
        preopens, roots = list(self._opened.preopens), list(self._opened.roots)
        for system in program.system_mounts:
            preopens.append((system.guest_path, system.host_path, False))
            roots.append(MountRoot(system.guest_path, system.host_path))
        if run.guard_plan is not None and not any(m.guest_path == "/" for m in mounts):
            preopens.append(("/", empty_root(), False))
            roots.append(MountRoot("/", empty_root()))
        run.emit("lifecycle", "start", detail={**run.plan.record(), "args": 0, "live": True,
                                                "source": {"name": program.source_name, "sha256": program.source_sha256,
                                                           "lang": program.lang}})
        store = wasmtime.Store(run.handle.engine)
        self._store: Any = store
        apply_store_caps(store)
        if limits.fuel is not None:
            store.set_fuel(limits.fuel)
        store.set_wasi(run._wasi_config(preopens, [], None, None))
        record_mounts(run.emit, mounts, self._opened, program)
        self._remove_watch = install_watch(store.ptr(), run.watch)
        store.set_epoch_deadline(1)
        run.monitor.start()
        self._exports: Any = None
        with charging(run.memory_account, image_of(run.module)):
            self._host = HostCalls(run) if run.host_imports else None  # workbench::* (host_imports.py)
            if run.guard_plan is None and self._host is not None:
                self._exports = instantiate_plain(store, run.handle.linker, run.module, self._host)
            elif run.guard_plan is None:
                instance = run.handle.linker.instantiate(store, run.module)
                self._exports = rawlink.Exports(store, instance_handle(instance), run.module)
            else:
                guard = Guard(run.context, roots, housekeeping=program.housekeeping)
                self._exports, self._detach_guard = instantiate_guarded(store, run.handle.linker, run.module,
                                                                        run.guard_plan, guard, host=self._host)
        run.monitor.attach(store, self._exports)
        initialize = self._exports.get("_initialize")
        if initialize is not None:  # a reactor's set-up, once
            self._call_guarded("_initialize", initialize, [])
        self.exports: dict[str, str] = {}
        for export in run.module.exports:
            if export.name is not None and isinstance(export.type, wasmtime.FuncType) and export.name != "_initialize":
                ty = export.type
                self.exports[export.name] = (f"({', '.join(str(p) for p in ty.params)}) -> "
                                             f"({', '.join(str(r) for r in ty.results)})")

    # -- calls ------------------------------------------------------------------------------------
    def _enter(self, what: str) -> None:
        if not self._lock.acquire(blocking=False):
            raise InstanceError(f"cannot {what}: the instance is running a call in another thread",
                                hint="a live instance serves one call at a time; wait for the call to return")
        if self._closed:
            self._lock.release()
            raise InstanceError(f"cannot {what}: the instance is closed", hint="make a new one with sandbox.instantiate()")

    def call(self, name: str, *args: Any) -> Any:
        """Call export ``name`` with ``args`` (numbers); returns its result (None, a value, or a tuple)."""
        self._enter(f"call {name!r}")
        try:
            if self.exhausted is not None:
                raise InstanceError(f"the instance refuses further calls: {self.exhausted}",
                                    hint="its limits are cumulative over its life; make a new instance")
            func = self._exports.get(name) if isinstance(name, str) else None
            if not isinstance(func, wasmtime.Func) or name not in self.exports:
                shown = ", ".join(sorted(self.exports)[:10]) or "none"
                raise InstanceError(f"the module has no exported function {name!r}", hint=f"exported functions: {shown}")
            ty = func.type(self._store)
            values = check_arguments(name, [str(p) for p in ty.params], args)
            return self._call_guarded(name, func, values)
        finally:
            self._lock.release()

    def _call_guarded(self, name: str, func: wasmtime.Func, values: list[Any]) -> Any:
        run, limits = self._run, self._run.limits
        check_native_stack(run.handle.settings.max_wasm_stack)
        watch = run.watch
        if limits.wall_seconds is not None:
            remaining = limits.wall_seconds - self.wall_used
            if remaining <= 0:
                return self._exhaust(name, values, "the time budget is used up")
            watch.deadline = time.monotonic() + remaining
        self._store.set_epoch_deadline(1)
        run.monitor.resume(self.cpu_used, self.wall_used)
        events_before = len(run.events)
        result: Any = None
        fault: Fault | None = None
        started, cpu0 = time.monotonic(), time.thread_time()
        with running(watch):
            run.handle.ticker.acquire()
            self._active.add(watch)
            try:
                result = func(self._store, *values)
            except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
                fault = classify_trap(run.context, exc, False, cpu_used=run.monitor.cpu_used(),
                                      memory_refusal=run.memory_account.last)
            finally:
                self._active.discard(watch)
                run.handle.ticker.release()
                self.wall_used += time.monotonic() - started
                self.cpu_used += time.thread_time() - cpu0
        kills = [e for e in run.events[events_before:] if e.decision == "kill"]
        violation = None
        if kills:  # a limit (time, fuel, CPU, memory at its cap, a kill-mode refusal) recorded its violation
            violation = kills[0].reason or f"{kills[0].category} limit"
        elif fault is None and watch.stop_kind is not None and result is None:
            violation = watch.stop_reason or f"stopped ({watch.stop_kind})"
        record = CallRecord(name, tuple(values), result, time.monotonic() - started, fault, violation)
        self.calls.append(record)
        run.emit("instance", "call", "kill" if violation else "allow", target=name,
                 reason=violation, detail={"args": list(values), "result": result if isinstance(result, (int, float)) else None,
                                          "wall_seconds": round(record.wall_seconds, 6),
                                          "fault": None if fault is None else fault.kind})
        if violation is not None:
            self.exhausted = violation
            raise InstanceError(f"{name} stopped by a limit: {violation}; the instance refuses further calls")
        if fault is not None:
            error = InstanceError(f"{name} trapped: {fault}", hint="the instance is still usable; see error.fault")
            error.fault = fault  # type: ignore[attr-defined]
            raise error
        return result

    def _exhaust(self, name: str, values: list[Any], why: str) -> Any:
        run = self._run
        self.exhausted = why
        rule = run.plan.rule_for("wall_seconds")
        run.emit("time", "limit", "kill", target=name, capability=rule, reason=why, detail={"live": True})
        raise InstanceError(f"{name} not called: {why}; the instance refuses further calls",
                            hint="its limits are cumulative over its life; make a new instance")

    # -- memory, state, end -------------------------------------------------------------------------
    @property
    def memory(self) -> MemorySnapshot:
        """A read-only copy of the guest's memory now (:class:`MemorySnapshot`)."""
        self._enter("read the memory")
        try:
            return MemorySnapshot.of_instance(self._store, self._exports, self._run.module, self._run.program.wasm())
        finally:
            self._lock.release()

    @property
    def events(self) -> tuple[Any, ...]:
        return tuple(self._run.events)

    @property
    def stdout(self) -> str:
        return self._run.output.text("stdout")

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """End the instance: its store, guard, mounts and private folders are released.  Idempotent."""
        self._enter("close")
        try:
            self._run.emit("lifecycle", "exit", detail={"live": True, "calls": len(self.calls),
                                                        "wall_seconds": round(self.wall_used, 6)})
            self._release()
        finally:
            self._lock.release()

    def _release(self) -> None:
        self._closed = True
        if self._detach_guard is not None:
            self._detach_guard()
            self._detach_guard = None
        if self._host is not None:
            self._host.close()
            self._host = None
        self._run.close_services()
        if self._remove_watch is not None:
            self._remove_watch()
            self._remove_watch = None
        self._run.monitor.detach()
        store = getattr(self, "_store", None)
        if store is not None:
            self._exports = None
            store.close()
            self._store = None
        self._run.streams.release()
        self._opened.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> "LiveInstance":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._closed:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "refusing calls" if self.exhausted else "open"
        return f"LiveInstance({self._run.module_name}, {state}, {len(self.calls)} calls, exports: {', '.join(self.exports)})"
