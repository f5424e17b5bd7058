"""``Sandbox(policy, root=...).run(source)``: one guarded wasmtime run, in this process.

The pipeline (design.md §1): source → compile (language adapter + cache) →
a fresh Store with WASI and limits → the guest's entry point → a stream of
Events → :class:`RunResult`.  One shared Engine per configuration, one fresh
Store per run, never reused, so nothing a guest does survives its run.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, NamedTuple, Sequence, TypeGuard, Union

import wasmtime

from ..caches import BoundedCache
from ..errors import CompileError, ModuleError
from ..events import EventBus, Subscriber
from ..languages import Program, load_module_source, prepare_program
from ..languages.detect import SourceLike
from ..languages.messages import root_cause
from ..policy import Limits, Policy
from .cache import CompileCache
from .context import ActiveRuns
from .debugging import DebugOptions
from .device import Service
from . import host_call
from .engine import check_native_stack, engine_for
from .guard_link import GuardPlan, guard_plan
from .host_imports import host_imports_of, refuse_ungranted
from .mounts import Mount, host_root
from .needs import bounds_for, cache_for, engine_settings, entry_export, needs_own_thread, on_thread_with_stack
from .plan import CLOCK_GRAIN_NS, OnViolation, OnViolationLike, RunPlan
from .rawlink import export_names
from .result import RunResult
from .run import _Run
from .wasi import ExtraImports, check_declared_imports, check_imports

if TYPE_CHECKING:
    from ..audit.log import AuditLog
    from .live import LiveInstance

__all__ = ["Sandbox", "DEFAULT_LIMITS", "OnViolation", "CLOCK_GRAIN_NS", "PolicyLike", "as_policy", "shared_cache"]

#: Limits every run has unless its policy or ``Sandbox(defaults=...)`` says otherwise.
#: A run with no limits at all must still end, stay small and not flood its caller.
DEFAULT_LIMITS = Limits(
    wall_seconds=30.0,
    memory_bytes=256 * 2**20,
    output_bytes=10 * 10**6,
    stack_bytes=512 * 2**10,
)

PolicyLike = Union[Policy, str, Iterable[str], None]

#: languages whose runnable module is a function of the source text alone (Python's depends on its
#: inputs and interpreter settings, C's on the compiler): a sandbox keeps the last few of these
#: ready (workbench.caches), so running the same text again skips detection, lookup and checks
_PURE_LANGS = frozenset({"wat", "wasm"})


class _Prepared(NamedTuple):
    program: Program
    module: wasmtime.Module
    handle: Any
    plan: GuardPlan | None
    host_imports: tuple[str, ...] = ()  # workbench::* functions it imports (host_imports.py)


def _is_audit_log(subscriber: Any) -> "TypeGuard[AuditLog]":
    """Is ``subscriber`` an ``AuditLog``?  Without importing the audit package (~15 ms) for runs
    that have none: an ``AuditLog`` exists only once its module is loaded."""
    module = sys.modules.get("workbench.audit.log")
    return module is not None and isinstance(subscriber, module.AuditLog)


def as_policy(policy: PolicyLike) -> Policy:
    """What ``Sandbox(policy)`` takes, as a :class:`Policy`: None is deny-everything, strings are
    parsed (:class:`~workbench.errors.CapabilityError` for one that does not).  Public so that
    what builds sandboxes elsewhere (``workbench.batch``) reads a policy exactly as a sandbox does."""
    if policy is None:
        return Policy.parse([])
    if isinstance(policy, Policy):
        return policy
    return Policy.parse(policy)


_as_policy = as_policy  # the name this module's own code uses


class Sandbox:
    """Runs modules under one policy.  Deny by default: a module gets only what ``policy`` grants.

    Parameters:

    - ``policy``: a :class:`Policy` or capability strings (``["filesystem:read:/docs"]``).
    - ``root``: the host folder the guest's ``/`` maps to (default: the current directory).
    - ``audit``: an ``AuditLog`` (or any subscriber) that receives every event.  It is
      critical: an ``AuditLog`` that cannot be written raises :class:`AuditError` here,
      and a failure to record during a run stops the run (``RunResult.audit_failure``).
    - ``secrets``: values for grants that carry ``;secret=NAME`` (names not here are looked up in
      the host environment); kept as :attr:`secrets`, whose repr shows names only.  The guest never
      sees a value: it writes ``{{secret:NAME}}`` and the host puts the value into requests to that
      grant's hosts (:mod:`workbench.network.secrets`).
    - ``defaults``: limits used where the policy sets none (default :data:`DEFAULT_LIMITS`).
    - ``on_violation``: ``"deny"`` refuses and goes on, ``"kill"`` ends the run at the first violation.
    - ``cache``: the :class:`CompileCache` (default: the shared on-disk cache).
    - ``services``: host services the guest reaches as ``/dev/workbench/NAME`` (objects with
      ``handle(request: bytes) -> bytes``; see docs/decisions.md, "The device folder").

    Bad input (an unknown capability, a granted folder that does not exist) raises here,
    before anything runs.
    """

    def __init__(
        self,
        policy: PolicyLike = None,
        *,
        root: str | os.PathLike[str] = ".",
        audit: Subscriber | None = None,
        secrets: Mapping[str, str] | None = None,
        defaults: Limits | None = None,
        on_violation: OnViolationLike = "deny",
        cache: CompileCache | None = None,
        services: Mapping[str, Service] | None = None,
    ) -> None:
        from ..network.secrets import Secrets  # noqa: PLC0415 - the network package loads only when used

        self.secrets = Secrets(secrets)
        self.plan = RunPlan.compile(
            _as_policy(policy),
            root=host_root(root),
            defaults=DEFAULT_LIMITS if defaults is None else defaults,
            on_violation=on_violation,
            services=services,
            secrets=self.secrets,
        )  # checks everything now: bad input raises before anything runs
        self.defaults = DEFAULT_LIMITS if defaults is None else defaults
        self.cache = cache if cache is not None else _shared_cache()
        self.bus = EventBus()
        if audit is not None:
            self.bus.subscribe(audit, critical=True)
        if _is_audit_log(audit):
            audit.open()  # fail closed: a log that cannot be written refuses the sandbox now
        self._active = ActiveRuns()
        self._prepared: BoundedCache[tuple[Any, ...], _Prepared] = BoundedCache("prepared per sandbox")

    def cancel(self, reason: str = "run cancelled") -> int:
        """Stop every run of this sandbox that is in progress, at its next epoch tick
        (within milliseconds, even in a guest spinning without calls).  Safe to call from
        any thread or a signal watcher.  Returns how many runs were asked to stop."""
        return self._active.stop_all("cancel", reason)

    # the plan's facts, by their old names
    @property
    def policy(self) -> Policy:
        return self.plan.policy

    @property
    def root(self) -> Path:
        return self.plan.root

    @property
    def limits(self) -> Limits:
        return self.plan.limits

    @property
    def on_violation(self) -> OnViolation:
        return self.plan.on_violation

    @property
    def mounts(self) -> tuple[Mount, ...]:
        return self.plan.mounts

    def subscribe(self, subscriber: Subscriber, *, critical: bool | None = None) -> Callable[[], None]:
        """Receive every Event and Sample of later runs; returns an unsubscribe function.

        ``critical``: a subscriber that keeps the record (its failure stops the run); by
        default a view (its failure is a ``SubscriberWarning``), unless it says otherwise
        with a ``critical`` attribute, as ``AuditLog`` does."""
        return self.bus.subscribe(subscriber, critical=critical)

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
        trace: bool = False,
        keep_memory: bool = False,
        profile: bool = False,
        runtime: str | None = None,
    ) -> RunResult:
        """Compile (or load from cache) and run ``source``; never raises for what the guest does.

        ``args`` become ``argv[1:]``; ``env`` adds variables chosen by the caller to those
        the policy grants; ``on_output(stream, data)`` streams output as it is written;
        ``inputs`` (Python guests) become the guest's ``inputs`` dict, and a guest's ``result``
        comes back as ``RunResult.value``.
        Debugging, each only when asked: ``trace`` records every WASI call (``RunResult.trace``),
        ``keep_memory`` keeps a read-only copy of the guest's memory (``RunResult.memory``),
        ``profile`` samples where the guest spends its time (``RunResult.profile``).
        ``runtime`` (Python): ``"scientific"`` runs the code with the installed scientific runtime
        (numpy, pandas, matplotlib; ``workbench runtimes install scientific``), None the default one.
        Raises only for unusable input: :class:`CompileError`, :class:`LinkError`,
        :class:`RuntimeMissingError` (with the command that installs the runtime), ...
        """
        runtime = None if runtime == "default" else runtime
        lang = "python" if runtime is not None and lang is None else lang  # runtimes are Python's
        key = (source, lang, name, entry) if isinstance(source, (str, bytes)) and inputs is None else None
        prepared = self._prepared.get(key) if key is not None and runtime is None else None
        if prepared is None:
            prepared = self._prepare(source, lang, name, entry, inputs, runtime=runtime)
            if key is not None and runtime is None and prepared.program.lang in _PURE_LANGS:
                self._prepared.put(key, prepared)
        program, module, handle, plan, host = prepared
        if host:  # linked only under their grants, refused (and recorded) at every run otherwise
            refuse_ungranted(self.plan.device, host, self.bus, program.name, program.sha256, self.plan.caller_chain)
        debug = DebugOptions(trace, keep_memory, profile)
        run = _Run(self.plan, self.bus, self._active, program, module, handle, on_output, plan, debug or None, host)
        stack = handle.settings.max_wasm_stack
        if needs_own_thread(program, stack):  # an interpreter that needs a deeper stack than this thread's
            return on_thread_with_stack(lambda: run.execute(entry, args, stdin, env), stack,
                                        lambda: run.watch.stop("cancel", "interrupted (Ctrl-C)"))
        # per run, not per module: the calling thread's native stack must hold the wasm stack, or a
        # deep recursion would crash the process instead of trapping
        check_native_stack(stack)
        return run.execute(entry, args, stdin, env)

    def instantiate(self, source: SourceLike, lang: str | None = None, *, name: str | None = None,
                    on_output: Callable[[str, bytes], None] | None = None) -> "LiveInstance":
        """Instantiate ``source`` and keep it, to call its exports one by one (``handle.call("fib", 20)``)
        under this sandbox's policy and limits, which are cumulative over the instance's life.
        ``with sandbox.instantiate(src) as handle: ...`` closes it; see :mod:`.live`."""
        from .live import LiveInstance

        program, module, handle, plan, host = self._prepare(source, lang, name, "_start", None, entry_required=False)
        if host:
            refuse_ungranted(self.plan.device, host, self.bus, program.name, program.sha256, self.plan.caller_chain)
        check_native_stack(handle.settings.max_wasm_stack)
        run = _Run(self.plan, self.bus, self._active, program, module, handle, on_output, plan, None, host)
        return LiveInstance(run, self._active)

    def run_module(self, name: str, payload: Any = None, *, catalog: Any = None) -> RunResult:
        """Run catalog module ``name`` (``extensions/``, ``WORKBENCH_EXTENSIONS``) with ``payload``
        (JSON data: a Python module's ``inputs``, other languages' stdin).  The module gets what its
        manifest asks for ∩ this sandbox's rights; asking for more raises :class:`EscalationError`
        (recorded).  Its ``result`` (Python) or JSON stdout is ``RunResult.value``/``stdout``."""
        from .device_plan import CALLS  # workbench.modules fills it (the layer above the runtime)

        result: RunResult = CALLS["run"](self, name, payload, catalog=catalog)
        return result

    def _prepare(
        self, source: SourceLike, lang: str | None, name: str | None, entry: str, inputs: Mapping[str, Any] | None,
        entry_required: bool = True, runtime: str | None = None,
    ) -> _Prepared:
        """Source to a runnable module: detect, compile (or load from the cache), check, plan the guard."""
        guest = load_module_source(source, lang, name=name)
        program = prepare_program(guest.lang, guest.content, guest.name, path=guest.path, inputs=inputs,
                                  runtime=runtime)
        # C built with -g: file.c:line in backtraces; an installed interpreter: its own engine (needs.py)
        settings = engine_settings(program, self.limits, stack_from_policy=self._stack_from_policy())
        handle = engine_for(settings)
        extra = extra_imports(program, handle)
        module = self._compile(program, handle, extra)
        host = _checked_modules.get((program.sha256, entry)) if entry_required else None
        if host is None:  # the checks depend only on the bytes
            check_imports(module, extra)
            host = host_imports_of(module)
            if entry_required:
                self._check_entry(module, entry_export(program, entry))
                _checked_modules.put((program.sha256, entry), host)
        plan = guard_plan(module, program.sha256, handle, self.plan.clock_grain_ns, fine=self.plan.fine)
        return _Prepared(program, module, handle, plan, host)

    def _stack_from_policy(self) -> bool:
        """Does the policy itself set ``stack:limit`` (rather than the defaults)?"""
        return any(rule.field == "stack_bytes" and not rule.default for rule in self.plan.rules)

    def _compile(self, program: Program, handle: Any, extra: ExtraImports | None = None) -> wasmtime.Module:
        return compile_program(program, handle, cache_for(program, self.cache), extra)

    @staticmethod
    def _check_entry(module: wasmtime.Module, entry: str) -> None:
        functions = export_names(module).functions  # one pass, shared with the run's memory lookup
        if entry not in functions:
            shown = sorted(functions)[:10]
            more = f" and {len(functions) - len(shown):,} more" if len(functions) > len(shown) else ""
            raise ModuleError(
                f"module has no exported function {entry!r}",
                hint=f"exported functions: {', '.join(shown) or 'none'}{more}; pass entry= one of them",
            )


def extra_imports(program: Program, handle: Any) -> ExtraImports | None:
    """The imports besides WASI that ``program`` is given (defined on ``handle``'s linker), or None."""
    if program.needs is None or not program.needs.host_call:
        return None
    host_call.define(handle.linker, handle.engine)
    return {(host_call.MODULE, host_call.NAME): host_call.SIGNATURE}


def compile_program(program: Program, handle: Any, cache: CompileCache, extra: ExtraImports | None = None) -> wasmtime.Module:
    """``program``'s module compiled for ``handle`` (or loaded from ``cache``): imports checked before
    a compile, progress shown for a long one, wasmtime's refusal as our :class:`CompileError`."""

    def check(raw: bytes) -> None:
        check_declared_imports(raw, extra)

    try:
        if program.compiling is not None:  # a large module shows progress if it must be compiled
            with program.compiling():
                return cache.get(program.wasm, program.sha256, handle, check=check, bounds=bounds_for(program))
        return cache.get(program.wasm, program.sha256, handle, check=check, bounds=bounds_for(program))
    except wasmtime.WasmtimeError as exc:
        cause = root_cause(str(exc))
        raise CompileError(
            f"not a valid WebAssembly module: {cause}",
            hint="check that the file is a complete wasm32 module (wasm-tools validate FILE)",
        ) from exc


#: (module sha256, entry) pairs whose imports and entry point were already checked: their host imports
_checked_modules: BoundedCache[tuple[str, str], tuple[str, ...]] = BoundedCache("checked modules")

_cache_singleton: CompileCache | None = None
_cache_lock = threading.Lock()


def shared_cache() -> CompileCache:
    """The process-wide :class:`CompileCache` every sandbox without ``cache=`` uses (made on first use).
    Public so that a batch worker can report its counters (compiles, disk and memory hits)."""
    global _cache_singleton
    with _cache_lock:
        if _cache_singleton is None:
            _cache_singleton = CompileCache()
        return _cache_singleton


_shared_cache = shared_cache  # the name this module's own code uses
