"""What a program's :class:`~workbench.languages.Needs` mean for the engine, the compile and the run.

An interpreter installed apart (the scientific Python runtime) needs an engine of its own
(exception handling, an 8 MiB wasm stack), a compile cache inside its installation, larger
compile bounds (it is pinned, so its size is known), one import besides WASI (``host::call``,
answered by a refusing stub: :mod:`.host_call`) and a thread whose native stack holds its wasm
stack.  Everything is worked out here, once, so a run (:class:`~.sandbox.Sandbox`) and an install
(``workbench runtimes install``, which compiles ahead) get exactly the same engine and artifact.
Programs without needs get exactly what they got before: the same settings, cache and bounds.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Callable, TypeVar

from ..languages import Program
from ..policy import Limits
from .cache import CompileCache
from .compiler import COMPILE_BOUNDS, CompileBounds
from .engine import NATIVE_STACK_HEADROOM, EngineSettings, native_stack_bytes

__all__ = ["engine_settings", "cache_for", "bounds_for", "entry_export", "on_thread_with_stack", "needs_own_thread"]

_DEFAULT_STACK = 512 * 1024
T = TypeVar("T")


def engine_settings(program: Program, limits: Limits, *, stack_from_policy: bool) -> EngineSettings:
    """The engine for ``program`` under ``limits``.  ``stack_from_policy``: the policy itself sets
    ``stack:limit`` (it then wins over the program's own stack, even when smaller)."""
    needs = program.needs
    stack = limits.stack_bytes or _DEFAULT_STACK
    if needs is not None and needs.wasm_stack is not None and not stack_from_policy:
        stack = needs.wasm_stack
    return EngineSettings(
        fuel=limits.fuel is not None,
        max_wasm_stack=stack,
        debug_info=program.debug_info,
        exceptions=bool(needs is not None and needs.exceptions),
    )


_caches: dict[str, CompileCache] = {}
_caches_lock = threading.Lock()


def cache_for(program: Program, default: CompileCache) -> CompileCache:
    """The compile cache for ``program``: its installation's own folder, else ``default``."""
    folder = program.needs.cache_dir if program.needs is not None else None
    if folder is None:
        return default
    with _caches_lock:
        cache = _caches.get(folder)
        if cache is None:
            cache = _caches[folder] = CompileCache(Path(folder), memory_items=2)
        return cache


def bounds_for(program: Program) -> CompileBounds | None:
    """Compile bounds for ``program`` when they differ from a guest module's (None: the defaults)."""
    needs = program.needs
    if needs is None or needs.max_code_bytes is None:
        return None
    return dataclasses.replace(COMPILE_BOUNDS, max_code_bytes=max(needs.max_code_bytes, COMPILE_BOUNDS.max_code_bytes))


def entry_export(program: Program, entry: str) -> str:
    """The export a run calls: the program's own (a reactor's ``run``) for the default entry."""
    if entry == "_start" and program.needs is not None:
        return program.needs.entry
    return entry


def needs_own_thread(program: Program, max_wasm_stack: int) -> bool:
    """Must this run go to a thread of its own?  Only for a program that needs a deep stack the
    calling thread cannot hold (a policy's own ``stack:limit`` is refused as before instead)."""
    if program.needs is None or program.needs.wasm_stack is None:
        return False
    return max_wasm_stack + NATIVE_STACK_HEADROOM > native_stack_bytes()


_stack_lock = threading.Lock()


def on_thread_with_stack(work: Callable[[], T], wasm_stack: int, stop: Callable[[], object]) -> T:
    """Run ``work`` on a new thread whose native stack holds ``wasm_stack`` plus headroom, and wait.

    Why: wasmtime runs wasm on the calling thread's native stack; the main thread has 8 MiB,
    so an 8 MiB wasm stack would overflow it before wasmtime's own check (a crash, not a trap).
    Ctrl-C while waiting calls ``stop`` (the run ends at its next epoch tick), waits for the run to
    finish (its store is freed on its own thread) and then raises ``KeyboardInterrupt``.
    """
    size = wasm_stack + 2 * NATIVE_STACK_HEADROOM
    size += -size % (64 * 1024)
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the waiting thread, raised there
            failure.append(exc)

    with _stack_lock:  # threading.stack_size is process-wide: set, start, restore
        previous = threading.stack_size(size)
        try:
            thread = threading.Thread(target=body, name="workbench-guest", daemon=True)
            thread.start()
        finally:
            threading.stack_size(previous)
    interrupted = False
    while thread.is_alive():
        try:
            thread.join()
        except KeyboardInterrupt:
            interrupted = True
            stop()
    if failure:
        raise failure[0]
    if interrupted:
        raise KeyboardInterrupt
    return outcome[0]
