"""Shared wasmtime engines, one per configuration, each with its epoch ticker; store caps.

Why one engine per configuration rather than one per run: an engine owns the
compiled code and its settings decide what a serialized module may be loaded
into (design.md §5).  Fuel metering costs 15-60% on CPU-bound code, so runs that
do not ask for a fuel budget use an engine without it.

The ticker thread calls ``engine.increment_epoch()`` every ``TICK_SECONDS`` while at
least one run on that engine is active, and sleeps otherwise, so an idle kernel
pays nothing.  One thread serves every run of its engine, however many run at
once.  A running guest is called back (deadline.py) only at the ticks it asked
for: about ten a second for a plain run, every tick under a CPU share.

Why 2 ms (measured with ``benchmarks/bench_monitor.py`` on this 2-core VM): the
tick is the resolution of deadlines, cancellation and CPU-share pacing.  1 ms
gave an overshoot of ~0.9 ms, 2 ms ~1-2 ms, 5 ms ~1.7 ms median but up to 5 ms;
since the callback is no longer made at every tick, a shorter tick costs a guest
nothing measurable; the ticker thread itself costs 0.7% of a core at 2 ms (1.5% at
1 ms, 0.35% at 5 ms), and only while a run is active.  So 2 ms keeps the overshoot well inside its targets (≤ 5 ms median,
≤ 12 ms max) with room for a loaded machine.

The wasm stack lives on the native stack of the thread that runs the guest, so a
``stack:limit`` larger than that thread's stack would crash the process instead
of trapping: :func:`check_native_stack` refuses such runs with a clear error.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import resource
import sys
import threading
from dataclasses import dataclass

import wasmtime

from .._wasmtime_ffi import ffi, installed_version
from ..errors import PolicyError
from . import data_image, linear_memory, table_watch

__all__ = [
    "EngineSettings",
    "EngineHandle",
    "engine_for",
    "TICK_SECONDS",
    "tick_seconds",
    "set_tick_seconds",
    "kick_engines",
    "WASMTIME_VERSION",
    "MIN_WASM_STACK",
    "NATIVE_STACK_HEADROOM",
    "StoreCaps",
    "STORE_CAPS",
    "apply_store_caps",
    "store_cap_refusal",
    "native_stack_bytes",
    "check_native_stack",
]

#: epoch tick period; the deadline overshoot is about one tick (see the module docstring)
TICK_SECONDS = 0.002

#: the smallest ``stack:limit`` accepted: below it even a call-free ``_start`` cannot run
MIN_WASM_STACK = 4096

#: native stack kept free above the wasm stack for host calls (WASI, output callbacks, the
#: deadline callback) that run on top of a guest at its deepest
NATIVE_STACK_HEADROOM = 1 << 20

try:
    WASMTIME_VERSION = installed_version()  # not importlib.metadata: ~40 ms of imports at start-up
except Exception:  # pragma: no cover - metadata missing in odd installs
    WASMTIME_VERSION = "unknown"


@dataclass(frozen=True)
class EngineSettings:
    """The engine options that change compiled code (so they key the compile cache).

    - ``fuel``: instruction metering (only for runs with a fuel budget: it costs 15-60%)
    - ``max_wasm_stack``: the wasm call-stack cap in bytes (``stack:limit``)
    - ``debug_info``: DWARF, for ``file.c:line`` in trap backtraces
    - ``exceptions``: the wasm exception-handling proposal turned on explicitly (the scientific
      Python runtime's interpreter is built with it); off, the engine keeps wasmtime's default
      configuration, so the default guests' artifacts and cache keys are unchanged
    """

    fuel: bool = False
    max_wasm_stack: int = 512 * 1024
    debug_info: bool = False
    exceptions: bool = False

    def __post_init__(self) -> None:
        if self.max_wasm_stack < MIN_WASM_STACK:
            raise PolicyError(
                f"a wasm stack of {self.max_wasm_stack} bytes is too small to run anything",
                hint=f"use stack:limit:{MIN_WASM_STACK // 1024}KiB or more (the default is 512KiB)",
            )

    def fingerprint(self) -> str:
        """A stable string naming the engine: every field, for caches of live modules (a
        :class:`wasmtime.Module` belongs to the engine that made it)."""
        return f"{self.artifact_fingerprint()};stack={self.max_wasm_stack}"

    def artifact_fingerprint(self) -> str:
        """A stable string for the compiled artifact on disk: only what changes the native code.

        The wasm stack cap is not in it: wasmtime checks the stack at run time against the
        engine's own setting, and an artifact compiled under one cap loads into an engine with
        another (tested), so each ``stack:limit`` value does not cost a recompile.
        """
        return (
            f"wasmtime={WASMTIME_VERSION};epoch=1;fuel={int(self.fuel)};"
            f"debug={int(self.debug_info)};cow=0;hostmem=1;{data_image.FORMAT};"
            f"{table_watch.FORMAT}={STORE_CAPS.table_elements}"
            + (";exceptions=1" if self.exceptions else "")
        )

    def build_config(self) -> wasmtime.Config:
        # wasmtime reads WASMTIME_BACKTRACE_DETAILS when a Config is created: "1" makes traps name
        # file.c:line from the module's DWARF.  Set it either way, so the artifact (which records the
        # setting and loads only into a matching engine) follows ``debug_info``, not the environment.
        with _CONFIG_ENV_LOCK:
            previous = os.environ.get("WASMTIME_BACKTRACE_DETAILS")
            os.environ["WASMTIME_BACKTRACE_DETAILS"] = "1" if self.debug_info else "0"
            try:
                config = wasmtime.Config()
            finally:
                if previous is None:
                    del os.environ["WASMTIME_BACKTRACE_DETAILS"]
                else:
                    os.environ["WASMTIME_BACKTRACE_DETAILS"] = previous
        config.epoch_interruption = True
        config.consume_fuel = self.fuel
        config.max_wasm_stack = self.max_wasm_stack
        # wasmtime's C API refuses (with an abort, not an error) a wasm stack that is not smaller
        # than the async stack (2 MiB by default); nothing here runs async, so only the rule matters
        ffi.wasmtime_config_async_stack_size_set(config.ptr(), self.max_wasm_stack + NATIVE_STACK_HEADROOM)
        config.debug_info = self.debug_info
        if self.exceptions:
            config.wasm_exceptions = True
        config.cranelift_opt_level = "speed"
        # every linear memory is mapped by the sandbox, so each growth request meets the cap
        # there and a refusal is seen (linear_memory.py); this turns wasmtime's own CoW off
        linear_memory.install(config.ptr())
        return config


_CONFIG_ENV_LOCK = threading.Lock()


_tick_seconds = TICK_SECONDS


def tick_seconds() -> float:
    """The ticker period in force (what the deadline callback converts waits into ticks with)."""
    return _tick_seconds


def set_tick_seconds(seconds: float) -> None:
    """Change the period of every ticker, now and for engines made later (benchmarks compare periods)."""
    global _tick_seconds
    if not 0 < seconds <= 1:
        raise ValueError(f"a tick of {seconds!r}s makes no sense; use a period between 0 and 1 s")
    _tick_seconds = seconds
    for handle in list(_engines.values()):
        handle.ticker.interval = seconds


def kick_engines(ticks: int) -> None:
    """Advance the epoch of every engine with a run in progress by ``ticks`` at once.

    Why: a guest's next deadline callback may be many ticks away (the callback asks
    only for the ticks it needs), so a stop asked from another thread (cancel, an
    interrupt, an output cap in kill mode) moves every epoch past every deadline;
    runs that were not stopped simply see one early callback.
    """
    for handle in list(_engines.values()):
        if handle.ticker.active > 0:
            for _ in range(ticks):
                handle.engine.increment_epoch()


class _Ticker:
    """Increments an engine's epoch while runs are active (a rich ``_RefreshThread``-style loop)."""

    def __init__(self, engine: wasmtime.Engine, interval: float) -> None:
        self._engine = engine
        self.interval = interval
        self._active = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="workbench-epoch-ticker", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        tick = threading.Event()  # never set: Event.wait keeps to the interval within ~0.1 ms
        while True:
            self._wake.wait()
            while self._active > 0:
                tick.wait(self.interval)
                self._engine.increment_epoch()

    @property
    def active(self) -> int:
        """How many runs on this engine are in progress."""
        return self._active

    def acquire(self) -> None:
        with self._lock:
            self._active += 1
            self._wake.set()

    def release(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self._wake.clear()


class EngineHandle:
    """An engine, its settings, its ticker and its linker template."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.engine = wasmtime.Engine(settings.build_config())
        self.ticker = _Ticker(self.engine, _tick_seconds)
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()


_engines: dict[EngineSettings, EngineHandle] = {}
_engines_lock = threading.Lock()


def engine_for(settings: EngineSettings) -> EngineHandle:
    """The shared engine for ``settings`` (created on first use)."""
    handle = _engines.get(settings)
    if handle is None:
        with _engines_lock:
            handle = _engines.get(settings)
            if handle is None:
                handle = _engines[settings] = EngineHandle(settings)
    return handle


# -- store caps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreCaps:
    """Caps every store gets (sandbox-level, not capabilities); the memory cap is not here.

    Why: tables live in host memory outside the linear-memory cap, and an uncapped
    ``table.grow`` loop gets the whole Python process killed by the OOM killer
    (tried).  The numbers leave room for real programs: the CPython WASI build has
    one table of 5,903 elements; the guest is one instance, the WASI guard's
    trampoline another.

    - ``table_elements``: elements per table (8 bytes each: 8 MB at most per table)
    - ``tables``: tables per store
    - ``instances``: instances per store
    - ``memories``: linear memories per store (the memory cap is per memory, so 1)

    The memory cap itself is enforced by the sandbox's memory creator
    (:mod:`.linear_memory`), not by the store limiter, which would refuse a
    ``memory.grow`` before the creator could see it.
    """

    table_elements: int = 1_000_000
    tables: int = 8
    instances: int = 8
    memories: int = 1


#: the caps every run gets (documented in docs/decisions.md)
STORE_CAPS = StoreCaps()


def apply_store_caps(store: wasmtime.Store, caps: StoreCaps = STORE_CAPS) -> None:
    """Set the table/instance/memory-count caps on a fresh store (the memory size cap is the creator's)."""
    store.set_limits(
        memory_size=-1,
        table_elements=caps.table_elements,
        instances=caps.instances,
        tables=caps.tables,
        memories=caps.memories,
    )


def store_cap_refusal(message: str, caps: StoreCaps = STORE_CAPS) -> str | None:
    """Why wasmtime refused an instantiation for a table or instance cap, in words, or None.

    Memory-cap refusals are not covered here (the sandbox reports them against ``memory:limit``).
    """
    if "exceeds table limits" in message:
        return (
            f"{message}; the sandbox allows {caps.table_elements:,} elements per table "
            "(workbench.runtime.engine.STORE_CAPS)"
        )
    if "resource limit exceeded" in message:
        what = next((word for word in ("table", "instance", "memory") if f"{word} count" in message), "item")
        allowed = {"table": caps.tables, "instance": caps.instances, "memory": caps.memories}.get(what)
        return f"{message}; the sandbox allows {allowed} {what}s per run (workbench.runtime.engine.STORE_CAPS)"
    return None


# -- native stack -------------------------------------------------------------------------------


class _PthreadAttr(ctypes.Structure):
    _fields_ = [("opaque", ctypes.c_byte * 128)]  # pthread_attr_t is 56 bytes on x86-64 glibc


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        if sys.platform == "darwin":
            libc.pthread_self.restype = ctypes.c_void_p
            libc.pthread_get_stacksize_np.restype = ctypes.c_size_t
            libc.pthread_get_stacksize_np.argtypes = [ctypes.c_void_p]
        else:
            libc.pthread_self.restype = ctypes.c_ulong
            libc.pthread_getattr_np.argtypes = [ctypes.c_ulong, ctypes.POINTER(_PthreadAttr)]
            libc.pthread_attr_getstacksize.argtypes = [ctypes.POINTER(_PthreadAttr), ctypes.POINTER(ctypes.c_size_t)]
            libc.pthread_attr_destroy.argtypes = [ctypes.POINTER(_PthreadAttr)]
        return libc
    except (OSError, AttributeError):
        return None


def _pthread_stack_size() -> int | None:
    """The current thread's stack size from the C library, or None where that cannot be asked."""
    libc = _libc()
    if libc is None:
        return None
    if sys.platform == "darwin":
        return int(libc.pthread_get_stacksize_np(libc.pthread_self()))
    attr = _PthreadAttr()
    if libc.pthread_getattr_np(libc.pthread_self(), ctypes.byref(attr)) != 0:
        return None
    try:
        size = ctypes.c_size_t()
        if libc.pthread_attr_getstacksize(ctypes.byref(attr), ctypes.byref(size)) != 0:
            return None
        return int(size.value)
    finally:
        libc.pthread_attr_destroy(ctypes.byref(attr))


_thread_stacks = threading.local()


def native_stack_bytes() -> int:
    """The native stack size of the calling thread (where a guest run on it would execute)."""
    size: int | None = getattr(_thread_stacks, "size", None)
    if size is None:
        size = _pthread_stack_size()
        if not size:
            if threading.current_thread() is threading.main_thread():
                soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
                size = soft if soft > 0 else 8 << 20
            else:
                size = threading.stack_size() or 2 << 20  # conservative where the platform does not say
        _thread_stacks.size = size
    return size


def check_native_stack(max_wasm_stack: int) -> None:
    """Refuse a wasm stack cap the calling thread cannot hold.

    wasmtime runs wasm on the caller's native stack; a guest that recursed past the
    native stack before reaching its wasm cap would crash the whole process with
    SIGSEGV (tried: ``stack:limit:16MiB`` on an 8 MiB main thread).
    """
    native = native_stack_bytes()
    allowed = native - NATIVE_STACK_HEADROOM
    if max_wasm_stack > allowed:
        raise PolicyError(
            f"a wasm stack of {max_wasm_stack / 2**20:.4g} MiB does not fit this thread's native stack "
            f"of {native / 2**20:.4g} MiB (1 MiB stays free for host calls)",
            hint=f"use stack:limit:{max(allowed, 0) // 2**10}KiB or less, or run the sandbox in a thread "
            "started after threading.stack_size(N) with N at least the limit plus 1 MiB",
        )
