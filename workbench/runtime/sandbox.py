"""``Sandbox(policy, root=...).run(source)``: one guarded wasmtime run, in this process.

The pipeline (design.md §1): source → compile (language adapter + cache) →
a fresh Store with WASI and limits → the guest's entry point → a stream of
Events → :class:`RunResult`.  One shared Engine per configuration, one fresh
Store per run, never reused, so nothing a guest does survives its run.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence, Union

import wasmtime
from wasmtime import _bindings as ffi

from ..errors import CompileError, ModuleError, SandboxError
from ..events import Event, EventBus, Subscriber
from ..languages import Entry, Program, load_module_source, prepare_program
from ..languages.detect import SourceLike
from ..languages.messages import clean_wasmtime_message, root_cause
from ..policy import Limits, Policy, format_size
from .cache import CompileCache
from .deadline import KILL_PREFIX, RunWatch, install_watch
from .engine import EngineSettings, apply_store_caps, check_native_stack, engine_for, store_cap_refusal
from .monitor import Monitor
from .guard import Guard, GuardPlan, empty_root, guard_plan, instantiate_guarded
from .mounts import Mount, host_root, learn_mounts, plan_mounts
from .output import OutputCapture
from .result import Fault, RunResult, Usage, human_size
from .traps import backtrace_of
from .wasi import check_imports

__all__ = ["Sandbox", "DEFAULT_LIMITS", "OnViolation"]

OnViolation = Literal["deny", "kill", "audit"]

#: Limits every run has unless its policy or ``Sandbox(defaults=...)`` says otherwise.
#: A run with no limits at all must still end, stay small and not flood its caller.
DEFAULT_LIMITS = Limits(
    wall_seconds=30.0,
    memory_bytes=256 * 2**20,
    output_bytes=10 * 10**6,
    stack_bytes=512 * 2**10,
)

PAGE = 65536

#: clock granularity without ``clock:precise``: 1 ms, so timing side channels get coarse data
CLOCK_GRAIN_NS = 1_000_000

PolicyLike = Union[Policy, str, Iterable[str], None]


def _as_policy(policy: PolicyLike) -> Policy:
    if policy is None:
        return Policy.parse([])
    if isinstance(policy, Policy):
        return policy
    return Policy.parse(policy)


class Sandbox:
    """Runs modules under one policy.  Deny by default: a module gets only what ``policy`` grants.

    Parameters:

    - ``policy``: a :class:`Policy` or capability strings (``["filesystem:read:/docs"]``).
    - ``root``: the host folder the guest's ``/`` maps to (default: the current directory).
    - ``audit``: an ``AuditLog`` (or any subscriber) that receives every event.
    - ``defaults``: limits used where the policy sets none (default :data:`DEFAULT_LIMITS`).
    - ``on_violation``: ``"deny"`` refuses and goes on, ``"kill"`` ends the run at the first violation.
    - ``cache``: the :class:`CompileCache` (default: the shared on-disk cache).

    Bad input (an unknown capability, a granted folder that does not exist) raises here,
    before anything runs.
    """

    def __init__(
        self,
        policy: PolicyLike = None,
        *,
        root: str | os.PathLike[str] = ".",
        audit: Subscriber | None = None,
        defaults: Limits | None = None,
        on_violation: OnViolation = "deny",
        cache: CompileCache | None = None,
    ) -> None:
        if on_violation not in ("deny", "kill", "audit"):
            raise SandboxError(
                f"unknown on_violation {on_violation!r}", hint="use 'deny' (default), 'kill' or 'audit'"
            )
        self.policy = _as_policy(policy)
        self.root = host_root(root)
        self.defaults = DEFAULT_LIMITS if defaults is None else defaults
        self.limits = self.policy.limits.with_defaults(self.defaults)
        self.on_violation: OnViolation = on_violation
        self.cache = cache if cache is not None else _shared_cache()
        self.bus = EventBus()
        if audit is not None:
            self.bus.subscribe(audit)
        self.mounts = tuple(plan_mounts(self.policy, self.root, None))  # checks folders now
        self._active: set[RunWatch] = set()

    def cancel(self, reason: str = "run cancelled") -> int:
        """Stop every run of this sandbox that is in progress, at its next epoch tick
        (within milliseconds, even in a guest spinning without calls).  Safe to call from
        any thread or a signal watcher.  Returns how many runs were asked to stop."""
        active = list(self._active)
        for watch in active:
            watch.stop("cancel", reason)
        return len(active)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Receive every Event and Sample of later runs; returns an unsubscribe function."""
        return self.bus.subscribe(subscriber)

    def run(
        self,
        source: SourceLike,
        lang: str | None = None,
        *,
        args: Sequence[str] = (),
        stdin: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        entry: str = "_start",
        name: str | None = None,
        on_output: Callable[[str, bytes], None] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Compile (or load from cache) and run ``source``; never raises for what the guest does.

        ``args`` become ``argv[1:]``; ``env`` adds variables chosen by the caller to those
        the policy grants; ``on_output(stream, data)`` streams output as it is written;
        ``inputs`` (Python guests) become the guest's ``inputs`` dict, and a guest's ``result``
        comes back as ``RunResult.value``.
        Raises only for unusable input: :class:`CompileError`, :class:`LinkError`, ...
        """
        guest = load_module_source(source, lang, name=name)
        program = prepare_program(guest.lang, guest.content, guest.name, path=guest.path, inputs=inputs)
        settings = EngineSettings(
            fuel=self.limits.fuel is not None,
            max_wasm_stack=self.limits.stack_bytes or 512 * 1024,
            debug_info=program.debug_info,  # C built with -g: file.c:line in backtraces
        )
        check_native_stack(settings.max_wasm_stack)  # a stack the thread cannot hold would crash, not trap
        handle = engine_for(settings)
        module = self._compile(program, handle)
        if (program.sha256, entry) not in _checked_modules:  # imports and exports depend only on the bytes
            check_imports(module)
            self._check_entry(module, entry)
            _checked_modules.add((program.sha256, entry))
        coarse_ns = 0 if self.policy.clock_precise else CLOCK_GRAIN_NS
        plan = guard_plan(module, program.sha256, handle, coarse_ns)
        return _Run(self, program, module, handle, on_output, plan).execute(entry, args, stdin, env)

    def _compile(self, program: Program, handle: Any) -> wasmtime.Module:
        try:
            if program.compiling is not None:  # a large module shows progress if it must be compiled
                with program.compiling():
                    return self.cache.get(program.wasm, program.sha256, handle)
            return self.cache.get(program.wasm, program.sha256, handle)
        except wasmtime.WasmtimeError as exc:
            cause = root_cause(str(exc))
            raise CompileError(
                f"not a valid WebAssembly module: {cause}",
                hint="check that the file is a complete wasm32 module (wasm-tools validate FILE)",
            ) from exc

    @staticmethod
    def _check_entry(module: wasmtime.Module, entry: str) -> None:
        functions = [e.name for e in module.exports if isinstance(e.type, wasmtime.FuncType)]
        if entry not in functions:
            raise ModuleError(
                f"module has no exported function {entry!r}",
                hint=f"exported functions: {', '.join(functions) or 'none'}; pass entry= one of them",
            )


#: (module sha256, entry) pairs whose imports and entry point were already checked
_checked_modules: set[tuple[str, str]] = set()

_cache_singleton: CompileCache | None = None
_cache_lock = threading.Lock()


def _shared_cache() -> CompileCache:
    global _cache_singleton
    with _cache_lock:
        if _cache_singleton is None:
            _cache_singleton = CompileCache()
        return _cache_singleton


def _limit_rule(policy: Policy, domain: str, text: str) -> str:
    """The capability that set a limit: the policy's own, or the default written the same way."""
    for cap in policy.capabilities:
        if cap.domain == domain and cap.action == "limit" and not cap.deny:
            return str(cap)
    return f"{domain}:limit:{text}"


def _seconds(value: float) -> str:
    return f"{value:g}s"


class _Run:
    """One run's state: its store, watch, output and events.  Used once."""

    def __init__(
        self,
        sandbox: Sandbox,
        program: Program,
        module: wasmtime.Module,
        handle: Any,
        on_output: Callable[[str, bytes], None] | None,
        plan: GuardPlan | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.policy = sandbox.policy
        self.limits = sandbox.limits
        self.program = program
        self.plan = plan
        self.module_name = program.name
        self.sha = program.sha256
        self.module = module
        self.handle = handle
        self.run_id = uuid.uuid4().hex
        self.events: list[Event] = []
        self.output = OutputCapture(self.limits.output_bytes, self._on_output_cap, on_output)
        self.watch = RunWatch(None)
        self.monitor = Monitor(
            self.run_id,
            self.sandbox.bus.publish,
            self.watch.stop,
            cpu_share=self.limits.cpu_share,
            cpu_seconds=self.limits.cpu_seconds,
            fuel_limit=self.limits.fuel,
            pause=self.watch.pause,
        )
        self.watch.on_tick = self.monitor.tick
        self.started = 0.0
        self.guest_env: tuple[tuple[str, str], ...] = ()  # set by _wasi_config; handed to Program.enter

    # -- events -------------------------------------------------------------------------------
    def emit(self, category: str, action: str, decision: str = "allow", **fields: Any) -> Event:
        event = Event(
            run_id=self.run_id,
            category=category,
            action=action,
            decision=decision,  # type: ignore[arg-type]
            module=self.module_name,
            module_sha256=self.sha,
            **fields,
        )
        self.events.append(event)
        self.sandbox.bus.publish(event)
        return event

    def _on_output_cap(self, stream: str, attempted: int) -> None:
        cap = self.limits.output_bytes or 0
        kill = self.sandbox.on_violation == "kill"
        self.emit(
            "output",
            "write",
            "kill" if kill else "deny",
            target=stream,
            capability=_limit_rule(self.policy, "output", format_size(cap)),
            reason=f"output cap of {human_size(cap)} reached on {stream}; the rest is cut",
            detail={"cap_bytes": cap, "write_bytes": attempted},
        )
        if kill:
            self.watch.stop("output", "output cap reached")

    # -- the run ------------------------------------------------------------------------------
    def execute(
        self, entry: str, args: Sequence[str], stdin: str | bytes | None, env: Mapping[str, str] | None
    ) -> RunResult:
        limits = self.limits
        learn = self.sandbox.on_violation == "audit"
        scratch = self._scratch_folder(learn)
        if learn:
            mounts = learn_mounts(self.sandbox.root, scratch)
        else:
            mounts = plan_mounts(self.policy, self.sandbox.root, scratch)
        preopens = [(m.guest_path, m.host_path, m.writable) for m in mounts]
        preopens += [(m.guest_path, m.host_path, False) for m in self.program.system_mounts]
        if self.plan is not None and not any(m.guest_path == "/" for m in mounts):
            preopens.append(("/", empty_root(), False))  # so attempts outside every grant reach the guard
        store = wasmtime.Store(self.handle.engine)
        apply_store_caps(store, limits.memory_bytes)  # memory cap + table/instance caps (engine.STORE_CAPS)
        if limits.fuel is not None:
            store.set_fuel(limits.fuel)
        store.set_wasi(self._wasi_config(preopens, args, stdin, env))

        self.emit(
            "lifecycle",
            "start",
            detail={
                "limits": {k: v for k, v in vars(limits).items() if v is not None},
                "mounts": [str(m) for m in mounts],
                "args": len(args),
            },
        )
        for mount in mounts:
            self.emit(
                "filesystem",
                "mount",
                target=mount.guest_path,
                resolved=mount.guest_path,
                capability=mount.capability,
                detail={"writable": mount.writable, "scratch": mount.scratch},
            )
        for system in self.program.system_mounts:
            self.emit(
                "filesystem",
                "mount",
                target=system.guest_path,
                resolved=system.guest_path,
                reason=f"read-only {system.purpose}, provided by the {self.program.lang} runtime",
                detail={"writable": False, "system": True},
            )

        exit_code: int | None = None
        fault: Fault | None = None
        exports: Any = None
        detach_guard: Callable[[], None] | None = None
        cpu0 = time.thread_time()
        self.started = time.monotonic()
        self.monitor.start()
        if limits.wall_seconds is not None:
            self.watch.deadline = self.started + limits.wall_seconds
        remove_watch = install_watch(store.ptr(), self.watch)
        store.set_epoch_deadline(1)
        ticking = False
        try:
            self.handle.ticker.acquire()
            ticking = True
            self.sandbox._active.add(self.watch)
            if self.plan is None:
                exports = self.handle.linker.instantiate(store, self.module).exports(store)
            else:
                guard = Guard(
                    self.policy,
                    [(guest, host) for guest, host, _ in preopens],
                    self.sandbox.on_violation,
                    self.emit,
                    fine_roots=frozenset(m.guest_path for m in mounts if m.fine),
                    deadline=lambda: self.watch.deadline,
                    stop=self.watch.stop,
                )
                exports, detach_guard = instantiate_guarded(store, self.handle.linker, self.module, self.plan, guard)
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
            fault = self._classify(exc, exports is None)
        finally:
            if detach_guard is not None:
                detach_guard()
            self.sandbox._active.discard(self.watch)
            if ticking:
                self.handle.ticker.release()
            remove_watch()
            wall = time.monotonic() - self.started
            cpu = time.thread_time() - cpu0

        if (
            limits.wall_seconds is not None
            and wall > limits.wall_seconds * 1.2
            and not any(e.category == "time" for e in self.events)
        ):  # a host call outlasted the deadline (the guard cuts sleeps; this is the backstop)
            self.emit(
                "time",
                "deadline",
                "deny",
                capability=_limit_rule(self.policy, "time", _seconds(limits.wall_seconds)),
                reason=f"the run went past its wall-clock limit of {_seconds(limits.wall_seconds)} inside a host call",
                detail={"limit_seconds": limits.wall_seconds, "wall_seconds": round(wall, 6)},
            )
        final = self.monitor.sample()  # one last reading: exact peak memory and fuel
        memory_peak = max(self.monitor.memory_peak, self._memory_size(store, exports))
        self._check_memory_cap(memory_peak)
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
        self.emit(
            "lifecycle",
            "exit",
            detail={"exit_code": exit_code, "fault": None if fault is None else fault.kind, "wall_seconds": round(wall, 6)},
        )
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        del store, exports
        stdout_bytes, value = self.output.data("stdout"), None
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
            policy=str(self.policy),
            fault=fault,
            samples=tuple(self.monitor.samples),
        )

    def _scratch_folder(self, learn: bool) -> Path | None:
        """A fresh private folder for ``/tmp``, made only when the policy grants ``/tmp`` as scratch."""
        if not learn and not any(m.scratch for m in self.sandbox.mounts):
            return None
        return Path(tempfile.mkdtemp(prefix="workbench-tmp-"))

    def _wasi_config(
        self,
        preopens: list[tuple[str, str, bool]],
        args: Sequence[str],
        stdin: str | bytes | None,
        env: Mapping[str, str] | None,
    ) -> wasmtime.WasiConfig:
        wasi = wasmtime.WasiConfig()
        wasi.argv = [*self.program.argv, *map(str, args)]
        variables = dict(self.program.env)
        variables.update(self.policy.environment(os.environ))
        if env:
            variables.update({str(k): str(v) for k, v in env.items()})
        wasi.env = list(variables.items())
        self.guest_env = tuple(variables.items())
        for name in sorted(variables):
            self.emit("env", "expose", target=name, detail={})  # names only, never values
        if stdin is None:
            stdin = self.program.stdin
        if stdin is not None:
            data = stdin.encode("utf-8") if isinstance(stdin, str) else bytes(stdin)
            vec = ffi.wasm_byte_vec_t()
            buffer = ctypes.cast(ctypes.create_string_buffer(data, len(data)), ctypes.POINTER(ctypes.c_uint8))
            ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), buffer)  # copied; the config owns it
            ffi.wasi_config_set_stdin_bytes(wasi.ptr(), ctypes.byref(vec))
        wasi.stdout_custom = self.output.writer("stdout")
        wasi.stderr_custom = self.output.writer("stderr")
        for guest, host, writable in preopens:
            wasi.preopen_dir(host, guest, writable)
        return wasi

    def _classify(self, exc: BaseException, during_instantiate: bool) -> Fault | None:
        """Turn a trap into a violation event (a limit) or a :class:`Fault` (the guest's bug)."""
        text = clean_wasmtime_message(str(exc))
        limits = self.limits
        if KILL_PREFIX in text:
            if f"{KILL_PREFIX}guard" in text:
                return None  # the guard recorded the kill (with its rule) before trapping
            kind = self.watch.stop_kind or "cancel"
            if kind == "time":
                wall = time.monotonic() - self.started
                self.emit(
                    "time",
                    "deadline",
                    "kill",
                    capability=_limit_rule(self.policy, "time", _seconds(limits.wall_seconds or 0)),
                    reason=f"wall-clock limit of {_seconds(limits.wall_seconds or 0)} reached",
                    detail={"limit_seconds": limits.wall_seconds, "wall_seconds": round(wall, 6)},
                )
            elif kind == "cpu":
                budget = limits.cpu_seconds or 0
                self.emit(
                    "cpu",
                    "budget",
                    "kill",
                    capability=_limit_rule(self.policy, "cpu", _seconds(budget)),
                    reason=f"CPU-time budget of {_seconds(budget)} used up",
                    detail={"limit_seconds": budget, "cpu_seconds": round(self.monitor.cpu_used(), 6)},
                )
            elif kind == "cancel":
                self.emit("lifecycle", "cancel", "kill", reason=self.watch.stop_reason or "run cancelled")
            # output (and later guard) stops already emitted their event when they asked to stop
            return None
        code = getattr(exc, "trap_code", None)
        code_name = code.name if code is not None else None
        if code_name == "OUT_OF_FUEL":
            self.emit(
                "fuel",
                "exhausted",
                "kill",
                capability=_limit_rule(self.policy, "fuel", f"{limits.fuel}"),
                reason=f"instruction budget of {limits.fuel:,} fuel used up",
                detail={"limit": limits.fuel},
            )
            return None
        if code_name == "STACK_OVERFLOW":
            self.emit(
                "stack",
                "overflow",
                "kill",
                capability=_limit_rule(self.policy, "stack", format_size(limits.stack_bytes or 0)),
                reason=(
                    f"call stack exceeded {format_size(limits.stack_bytes or 0)} (runaway recursion?); "
                    "if the depth is legitimate, grant a larger stack:limit"
                ),
                detail={"backtrace": list(backtrace_of(text)[:5])},
            )
            return None
        cause = root_cause(text)
        if during_instantiate and "exceeds memory limits" in cause:
            cap = limits.memory_bytes or 0
            self.emit(
                "memory",
                "instantiate",
                "kill",
                capability=_limit_rule(self.policy, "memory", format_size(cap)),
                reason=f"the module's initial memory does not fit the cap of {human_size(cap)}: {cause}",
                detail={"limit_bytes": cap},
            )
            return None
        refusal = store_cap_refusal(cause) if during_instantiate else None
        if refusal is not None:  # a table or instance count over the sandbox's caps
            self.emit("memory", "instantiate", "kill", reason=refusal, detail={"cause": cause})
            return None
        kind = code_name.lower() if code_name else "trap"
        trace = backtrace_of(text)
        located = next((frame for frame in trace if frame.endswith(")") and " (" in frame), None)
        if located is not None:  # a module with debug info (C built with -g): say where, e.g. f (prog.c:12:5)
            cause = f"{cause} in {located}"
        fault = Fault(kind=kind, message=cause, backtrace=trace)
        self.emit("trap", kind, "audit", reason=cause, detail={"backtrace": list(fault.backtrace[:10])})
        return fault

    @staticmethod
    def _memory_size(store: wasmtime.Store, exports: Any) -> int:
        if exports is None:
            return 0
        total = 0
        for item in exports.by_index:
            if isinstance(item, wasmtime.Memory):
                total = max(total, item.data_len(store))
        return total

    def _check_memory_cap(self, peak: int) -> None:
        """Report a memory violation when the guest reached its cap.

        wasmtime's limiter refuses ``memory.grow`` silently (it returns -1) and offers
        no callback, so a refused grow cannot be seen directly.  Linear memory never
        shrinks, so a guest within one page of its cap is one whose further growth is
        refused: that is reported (documented in docs/decisions.md).
        """
        cap = self.limits.memory_bytes
        if cap is None or peak == 0 or peak + PAGE <= cap:
            return
        if any(e.category == "memory" for e in self.events):
            return
        self.emit(
            "memory",
            "grow",
            "deny",
            capability=_limit_rule(self.policy, "memory", format_size(cap)),
            reason=(
                f"linear memory reached its cap: {human_size(peak)} of {human_size(cap)} "
                f"({100 * peak / cap:.1f}%); further growth is refused"
            ),
            detail={"limit_bytes": cap, "peak_bytes": peak},
        )

