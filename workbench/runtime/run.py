"""One run, start to finish: the per-run half of :class:`~workbench.runtime.Sandbox`.

A :class:`_Run` is made for each ``Sandbox.run`` and used once.  It gets the sandbox's
:class:`~.plan.RunPlan` (what every run obeys) and its event bus, never the sandbox: it
opens the planned mounts, builds the fresh Store (limits, WASI), installs the deadline
watch, the monitor and, for modules that touch the filesystem or clocks, the guard;
calls the guest; turns what happened into events (:mod:`verdicts`, through the typed
:class:`~.context.RunContext`) and returns the :class:`RunResult`.
This path is hot (a trivial module runs in ~0.2 ms), so it does no work a run
does not need.
"""

from __future__ import annotations

import shutil
from contextlib import nullcontext
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import wasmtime

from .._wasmtime_ffi import instance_handle
from ..events import Event, EventBus, Sample, SubscriberFailure
from ..languages import Entry, Program
from ..languages.protocol import filtered_output
from .context import ActiveRuns, RunContext
from .deadline import RunWatch, install_watch
from .backtraces import explain_fault
from .debugging import Collected, DebugOptions, RunDebug
from .device import DEVICE_PATH, Device
from . import host_call, rawlink
from .engine import apply_store_caps
from .data_image import image_of
from .event_budget import EventBudget
from .failures import FailureBook
from .figures import take_figures
from .fdtable import MountRoot
from .guard import Guard
from .guard_link import GuardPlan, empty_root, instantiate_guarded
from .host_imports import HostCalls, instantiate_plain
from .linear_memory import MemoryAccount, Refusal, charging
from .monitor import Monitor
from .mount_record import record_mounts
from .mounts import Mount, OpenMounts, open_mounts
from .output import OutputCapture, weakly
from .plan import RunPlan
from .result import Fault, RunResult, Usage
from .run_services import RunServices
from .shutdown import running
from .wasi_setup import wasi_config
from .wasi_streams import OutputStreams
from .table_watch import connect as connect_table_hooks
from .verdicts import classify_trap, report_memory_refusal, report_output_cap, report_overrun, report_table_refusal

__all__ = ["_Run"]


class _Run(RunServices):
    """One run's state: its store, watch, output and events.  Used once.  (Its fuel accessors and
    device services, for the module calls it makes: :class:`~.run_services.RunServices`.)"""

    def __init__(
        self,
        plan: RunPlan,
        bus: EventBus,
        active: ActiveRuns,
        program: Program,
        module: wasmtime.Module,
        handle: Any,
        on_output: Callable[[str, bytes], None] | None,
        guard_plan: GuardPlan | None = None,
        debug: DebugOptions | None = None,
        host_imports: tuple[str, ...] = (),
    ) -> None:
        self.plan = plan
        self.bus = bus
        self.active = active
        self.policy = plan.policy
        self.limits = plan.limits
        self.program = program
        self.guard_plan = guard_plan
        self.module_name = program.name
        self.sha = program.sha256
        self.module = module
        self.handle = handle
        self.run_id = uuid.uuid4().hex
        self.events: list[Event] = []
        self.budget = EventBudget()
        # a language's protocol lines (Python's result hand-back) never reach a view
        on_output, self._end_stream = filtered_output(on_output, program.stdout_filter)
        # the output callbacks reach the run only weakly, so whatever holds them (a stream
        # wasmtime drops late, a view) never holds a finished run
        self.output = OutputCapture(self.limits.output_bytes, weakly(self._on_output_cap), on_output)
        self.watch = RunWatch(None)
        self.failures = FailureBook()
        self.monitor = Monitor(
            self.run_id,
            self._publish,
            self.watch.stop,
            cpu_share=self.limits.cpu_share,
            cpu_seconds=self.limits.cpu_seconds,
            fuel_limit=self.limits.fuel,
            pause=self.watch.pause,
        )
        self.watch.on_tick = self.monitor.tick
        self.context = RunContext(plan, self.emit, self.watch, self.events)
        self.started = 0.0
        self.guest_env: tuple[tuple[str, str], ...] = ()  # set by _wasi_config; handed to Program.enter
        self.streams = OutputStreams()
        self._store: wasmtime.Store | None = None
        # the memory cap, enforced where wasmtime grows the guest's memory (linear_memory.py)
        self.memory_account = MemoryAccount(self.limits.memory_bytes, self._on_memory_refused)
        # trace, memory snapshot, profile: only when asked (debugging.py); None costs nothing
        self.debug = RunDebug(debug, module, self.sha, handle, self.events, self.module_name,
                              guard_plan) if debug else None
        if self.debug is not None:
            self.debug.wasm = program.wasm
        self.device: Device | None = None
        self.host_imports = host_imports  # workbench::* functions the module imports (host_imports.py)
        self._services: dict[str, Any] = {}
        self.chain = plan.caller_chain
        self.calls: list[Any] = []  # CallRecords of the modules this run called (workbench.modules.calls)

    # -- events -------------------------------------------------------------------------------
    def emit(self, category: str, action: str, decision: str = "allow", **fields: Any) -> Event:
        event = Event(
            run_id=self.run_id,
            category=category,
            action=action,
            decision=decision,  # type: ignore[arg-type]
            module=self.module_name,
            module_sha256=self.sha,
            **({"caller_chain": self.chain, **fields} if self.chain else fields),
        )
        if self.budget.admit(event):  # repeats are counted, and a run keeps at most ~11,000 events
            self.events.append(event)
            self._publish(event)
        else:  # a live view still counts it as it happens (the aggregate comes at the end)
            self.bus.publish_counted(event)
        return event

    def _on_memory_refused(self, refusal: Refusal) -> None:
        report_memory_refusal(self.context, refusal)

    def _on_table_refused(self, table: int, requested: int, current: int, maximum: int | None) -> None:
        report_table_refusal(self.context, table, requested, current, maximum)

    def _publish(self, item: Event | Sample) -> None:
        failures = self.bus.publish(item)
        if failures:
            self._subscribers_failed(failures)

    def _subscribers_failed(self, failures: tuple[SubscriberFailure, ...]) -> None:
        """Keep each failure (never silent); a critical one (the audit log) stops the run.

        Fail closed: the guest is stopped at its next epoch tick, like a kill, and a
        ``lifecycle``/``audit-failed`` kill event says why (the audit log may still take
        it, if the failure was passing; the RunResult always has it).
        """
        stop = self.failures.add(failures)
        if stop is not None:
            reason = f"the audit log could not record an event ({stop.error}): the run is stopped"
            self.watch.stop("audit", reason)
            self.emit("lifecycle", "audit-failed", "kill", target=stop.subscriber, reason=reason,
                      detail={"error": stop.error})

    def subscriber_failures(self) -> tuple[SubscriberFailure, ...]:
        """This run's subscriber failures, one per subscriber, with how often each failed."""
        return self.failures.failures()

    def _on_output_cap(self, stream: str, attempted: int) -> None:
        report_output_cap(self.context, stream, attempted)

    # -- the run ------------------------------------------------------------------------------
    def execute(
        self, entry: str, args: Sequence[str], stdin: str | bytes | None, env: Mapping[str, str] | None
    ) -> RunResult:
        """Run once; the store is freed here, on this thread, before returning (see shutdown.py)."""
        needs = self.program.needs  # an interpreter's host::call: refused and recorded (host_call.py)
        serving = host_call.serving(host_call.refuser(self.context)) if needs and needs.host_call else nullcontext()
        with running(self.watch), serving:
            try:
                return self._mounted(entry, args, stdin, env)
            finally:
                if self._store is not None:
                    self._store.close()  # frees its instances, memories and WASI streams now
                    self._store = None
                self.streams.release()

    def _mounted(
        self, entry: str, args: Sequence[str], stdin: str | bytes | None, env: Mapping[str, str] | None
    ) -> RunResult:
        """Open the planned mounts, run, and release them (descriptors, private folders)."""
        mounts = list(self.plan.mounts)
        scratch = self._scratch_folder()
        try:
            opened = open_mounts(mounts, self.plan.root, scratch)
        except BaseException:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            raise
        try:
            return self._execute(entry, args, stdin, env, mounts, opened, scratch)
        finally:
            if self.device is not None:
                self.device.close()
            self.close_services()
            opened.close()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    def _execute(
        self,
        entry: str,
        args: Sequence[str],
        stdin: str | bytes | None,
        env: Mapping[str, str] | None,
        mounts: list[Mount],
        opened: OpenMounts,
        scratch: Path | None,
    ) -> RunResult:
        limits = self.limits
        plan = self.guard_plan
        preopens = list(opened.preopens)
        roots = list(opened.roots)
        for system in self.program.system_mounts:
            preopens.append((system.guest_path, system.host_path, False))
            roots.append(MountRoot(system.guest_path, system.host_path, system=True))
        if plan is not None and self.plan.device:  # /dev/workbench, only with a grant (device.py)
            self.device = Device(self.plan.device, self, self.emit, service=self.service_for)
            preopens.append((DEVICE_PATH, self.device.host, True))
            roots.append(MountRoot(DEVICE_PATH, self.device.host, self.device.fd, writable=True, device=self.device))
        if plan is not None and not any(m.guest_path == "/" for m in mounts):
            preopens.append(("/", empty_root(), False))  # so attempts outside every grant reach the guard
            roots.append(MountRoot("/", empty_root()))
        self.emit("lifecycle", "start", detail={  # the run's first event
            **self.plan.record(), "args": len(args),
            # the guest's own code (an interpreter's module hash is the same for every script)
            "source": {"name": self.program.source_name, "sha256": self.program.source_sha256,
                       "lang": self.program.lang},
        })
        store = self._store = wasmtime.Store(self.handle.engine)
        # table/instance caps (engine.STORE_CAPS; a trace's log is one memory more); the memory cap is memory_account's
        apply_store_caps(store, *(() if self.debug is None else (self.debug.store_caps(),)))
        if limits.fuel is not None:
            store.set_fuel(limits.fuel)
        store.set_wasi(self._wasi_config(preopens, args, stdin, env))

        record_mounts(self.emit, mounts, opened, self.program)

        exit_code: int | None = None
        fault: Fault | None = None
        exports: Any = None
        collected = Collected()
        debug, tracer = self.debug, self.debug.tracer if self.debug is not None else None
        detach_guard: Callable[[], None] | None = None
        host: HostCalls | None = None
        cpu0 = time.thread_time()
        self.started = self.context.started = time.monotonic()
        self.monitor.start()
        if limits.wall_seconds is not None:
            self.watch.deadline = self.started + limits.wall_seconds
        remove_watch = install_watch(store.ptr(), self.watch)
        if debug is not None:
            debug.start(store, self.watch)  # the profiler samples at each tick
        store.set_epoch_deadline(1)
        ticking = False
        memory_scope = charging(self.memory_account, image_of(self.module))  # memories made below are this run's
        memory_scope.__enter__()  # (not a with: the try below is the run's own)
        try:
            self.handle.ticker.acquire()
            ticking = True
            self.active.add(self.watch)
            host = HostCalls(self) if self.host_imports else None
            if host is not None and plan is None:  # one host call per request: host_imports.py
                exports = instantiate_plain(store, self.handle.linker, self.module, host, tracer)
            elif plan is None and tracer is not None and debug is not None:
                exports = debug.instantiate_plain(store, self.handle.linker)
            elif plan is None:
                instance = self.handle.linker.instantiate(store, self.module)
                exports = rawlink.Exports(store, instance_handle(instance), self.module)  # by name, never enumerated
            else:
                guard = Guard(self.context, roots, housekeeping=self.program.housekeeping)
                exports, detach_guard = instantiate_guarded(store, self.handle.linker, self.module, plan, guard, tracer,
                                                            host)
            connect_table_hooks(store, exports, self._on_table_refused)  # instrumented modules only
            self.monitor.attach(store, exports)
            start = exports["_initialize"] if entry == "_start" and "_initialize" in exports and "_start" not in exports else None
            if start is not None:
                start(store)
            if self.program.enter is not None and entry == "_start":  # e.g. a pre-initialised interpreter
                layout = tuple(guest for guest, _, _ in preopens)
                exit_code = self.program.enter(
                    Entry(store, exports, self.module, self.handle.engine, layout, self.guest_env)
                )
            else:
                exports[entry](store)
                exit_code = 0
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            fault = classify_trap(self.context, exc, exports is None, cpu_used=self.monitor.cpu_used(),
                                  memory_refusal=self.memory_account.last, stack_bytes=self.handle.settings.max_wasm_stack)
        finally:
            if debug is not None:
                debug.stop()  # no more hooks or samples
            memory_scope.__exit__(None, None, None)
            if detach_guard is not None:
                detach_guard()
            if host is not None:
                host.close()
            self.active.discard(self.watch)
            if ticking:
                self.handle.ticker.release()
            remove_watch()
            wall = time.monotonic() - self.started
            cpu = time.thread_time() - cpu0

        report_overrun(self.context, wall)
        if debug is not None:
            collected = debug.finish(store, exports, [guest for guest, _, _ in preopens])
        final = self.monitor.sample()  # one last reading: exact peak memory and fuel
        memory_peak = max(self.monitor.memory_peak, self._memory_size(store, exports))
        fuel_used = final.fuel_used
        usage = Usage(
            wall_seconds=wall,
            cpu_seconds=cpu,
            memory_peak_bytes=memory_peak,
            memory_limit_bytes=limits.memory_bytes,
            fuel_used=fuel_used,
            output_bytes=self.output.kept,
            output_dropped_bytes=self.output.dropped,
            throttled_seconds=self.monitor.throttled_seconds,
            cpu_share_limit=limits.cpu_share,
        )
        stdout_bytes, figures = take_figures(self.program, self.output.data("stdout"), self.context)  # before exit
        for summary in self.budget.close():  # what was counted rather than kept, before the exit
            self.events.append(summary)
            self.bus.publish(summary)
        self.emit(
            "lifecycle",
            "exit",
            detail={"exit_code": exit_code, "fault": None if fault is None else fault.kind, "wall_seconds": round(wall, 6)},
        )
        self.monitor.detach()  # the store must not stay reachable from the run (see Monitor.detach)
        del store, exports
        self._end_stream()  # the guest has stopped writing: pass on what the filter held back
        value = None
        fault = explain_fault(fault, self.program, exit_code, self.output.text("stderr"))  # names, source lines
        if self.program.read_value is not None:
            stdout_bytes, value = self.program.read_value(stdout_bytes)
        return RunResult(
            run_id=self.run_id,
            module=self.module_name,
            module_sha256=self.sha,
            exit_code=exit_code,
            stdout=stdout_bytes.decode("utf-8", errors="replace"),
            stderr=self.output.text("stderr"),
            value=value,
            stdout_bytes=stdout_bytes,
            stderr_bytes=self.output.data("stderr"),
            events=tuple(self.events),
            usage=usage,
            mounts=tuple(mounts),
            policy=self.policy,
            fault=fault,
            samples=tuple(self.monitor.samples),
            subscriber_failures=self.failures.report(self.module_name),
            plan=self.plan,
            call_log=collected.trace,
            memory=collected.memory,
            profile=collected.profile,
            calls=tuple(self.calls),
            figures=figures,
        )

    def _scratch_folder(self) -> Path | None:
        """A fresh private folder for ``/tmp``, made only when the plan has a scratch mount."""
        if not self.plan.scratch:
            return None
        return Path(tempfile.mkdtemp(prefix="workbench-tmp-"))

    def _wasi_config(
        self, preopens: list[tuple[str, str, bool]], args: Sequence[str], stdin: str | bytes | None,
        env: Mapping[str, str] | None,
    ) -> wasmtime.WasiConfig:
        wasi, self.guest_env = wasi_config(
            self.program, self.plan.environment, lambda name: self.emit("env", "expose", target=name, detail={}),
            self.streams, self.output, preopens, args, stdin, env)
        return wasi

    @staticmethod
    def _memory_size(store: wasmtime.Store, exports: Any) -> int:
        if exports is None:
            return 0
        return max((memory.data_len(store) for memory in exports.memories()), default=0)
