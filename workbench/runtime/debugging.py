"""What a run collects for debugging, only when asked: the call trace, a memory snapshot, a profile.

Why one object: :mod:`run` stays the run's skeleton and calls three hooks (link, started,
finish); each tool lives in its own module (:mod:`trace`, :mod:`memory_snapshot`,
:mod:`profiler`).  A run without debug options makes none of this (``RunDebug`` is not built),
so the cost of not debugging is nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import wasmtime

from ..events import Event
from .engine import STORE_CAPS, StoreCaps

__all__ = ["DebugOptions", "RunDebug", "Collected"]


@dataclass(frozen=True)
class DebugOptions:
    """``trace``: record every WASI call; ``keep_memory``: keep a read-only copy of the guest's
    linear memory at the end; ``profile``: sample the guest's stack with wasmtime's guest profiler."""

    trace: bool = False
    keep_memory: bool = False
    profile: bool = False

    def __bool__(self) -> bool:
        return self.trace or self.keep_memory or self.profile


@dataclass(frozen=True)
class Collected:
    """What a run hands to its :class:`RunResult` (each None unless asked for)."""

    trace: Any = None
    memory: Any = None
    profile: Any = None


class RunDebug:
    """One run's debugging tools."""

    def __init__(self, options: DebugOptions, module: wasmtime.Module, sha: str, handle: Any,
                 events: list[Event], module_name: str, guard_plan: Any = None) -> None:
        self.options = options
        self.module = module
        self.module_name = module_name
        self.tracer: Any = None
        self.profiler: Any = None
        self.wasm: Callable[[], bytes] = lambda: b""  # the module's bytes (data segments), set by the run
        if options.trace:
            from .trace import Tracer, trace_plan

            checked = guard_plan.layout.checked if guard_plan is not None else ()
            plan = trace_plan(module, sha, handle, checked)
            if plan is not None:
                self.tracer = Tracer(plan, events)
        if options.profile:
            from .profiler import Profiler

            self.profiler = Profiler(module, module_name, handle.engine)

    def store_caps(self) -> StoreCaps:
        """The store's caps: a trace's log is one memory (64 KiB, charged to the run) more."""
        if self.tracer is None:
            return STORE_CAPS
        return replace(STORE_CAPS, memories=STORE_CAPS.memories + 1)

    def instantiate_plain(self, store: wasmtime.Store, linker: wasmtime.Linker) -> Any:
        """An unguarded guest, linked through the trace layer (only called when there is a tracer)."""
        return self.tracer.instantiate_plain(store, linker, self.module)

    def start(self, store: wasmtime.Store, watch: Any) -> None:
        """The guest is about to run: the profiler samples at each tick of ``watch``."""
        if self.profiler is not None:
            self.profiler.start(store, watch)

    def finish(self, store: wasmtime.Store, exports: Any, preopens: Sequence[str]) -> Collected:
        """The run is over (the store still open): collect what was asked for."""
        trace = memory = profile = None
        if self.tracer is not None:
            trace = self.tracer.log(preopens)
        elif self.options.trace:  # a guest that imports no WASI function makes no call
            from .trace import CallLog

            trace = CallLog((), {}, (), tuple(preopens), 0)
        if self.options.keep_memory and exports is not None:
            from .memory_snapshot import MemorySnapshot

            memory = MemorySnapshot.of_instance(store, exports, self.module, self.wasm())
        if self.profiler is not None:
            from .wasm_facts import facts_of

            facts = facts_of(self.wasm())  # the profiler numbers defined functions only (no imports)
            imported = facts.imported_functions
            profile = self.profiler.finish({i - imported: n for i, n in facts.function_names.items() if i >= imported})
        return Collected(trace, memory, profile)

    def stop(self) -> None:
        """The guest has stopped (or never started): let go of the hooks, stop sampling.  Never raises."""
        if self.tracer is not None:
            self.tracer.detach()
        if self.profiler is not None:
            self.profiler.stop()
