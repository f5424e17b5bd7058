"""The Python fast path: every run starts from a pre-initialised interpreter, in a fresh instance.

Starting CPython (the VMware WASI build) costs 25-60 ms, nearly all of it
``Py_Initialize`` importing the standard library.  The fast path pays that once:

1. **Snapshot** (once per machine, per preopen layout; once per process when the run
   has an environment, see :mod:`.pycache`): an
   interpreter runs the driver's ``warm_up`` and then ``pause``, which makes one
   ``clock_time_get`` call.  A host function shadowing that WASI call copies the
   whole linear memory and the stack-pointer global at that moment, then stops the
   instance.  What is kept is that memory (10.7 MB for CPython 3.12, 3 MB of it changed by
   start-up) and the stack pointer.
2. **Every run** is a fresh instance of the same compiled module, set up by the
   sandbox as any other (WASI, preopens, limits, guard, events).  Before the guest
   runs, the snapshot's memory is mapped copy-on-write over its own, the stack pointer set (below the
   paused frames, which stay intact), and wasi-libc's ``_start`` re-entry flag
   cleared.  Then ``_start`` is called: ``Py_BytesMain`` finds the interpreter
   already initialised, only reconfigures it from the *new* argv (the user's code,
   args and inputs) and runs the driver, which ends the run with ``os._exit``.

Why the layout and environment key the snapshot: wasi-vfs (which embeds the stdlib)
numbers its file descriptors after the host's preopens when the interpreter starts,
and ``os.environ`` is read once at start-up; both are baked into the memory image.
Host folders behind the preopens, argv and stdin are not, so they stay per run.

What a run shares with others from the same snapshot: nothing it can change (each
run writes only to its own instance's memory), but the state of start-up itself:
the str-hash secret (``PYTHONHASHSEED`` equivalent) is the snapshot's, so set and
dict order of strings repeats between runs (and, for a snapshot kept on disk, between
processes, until the cache is cleared).  ``random`` is not imported before the
snapshot, so it is seeded per run from WASI ``random_get``.
"""

from __future__ import annotations

import ctypes
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Sequence

import wasmtime

from .._wasmtime_ffi import ffi, store_context
from .guest_driver import SNAPSHOT_MARKER
from .program import Entry
from .pycache import load_snapshot, snapshot_key, store_snapshot
from .pyruntime import STACK_POINTER_EXPORT

__all__ = ["Snapshot", "SnapshotBuilder", "make_enter"]

WASM_PAGE = 65536
_image_lock = threading.Lock()
#: epoch ticks (2 ms each while runs are active) a snapshot build may take
BUILD_DEADLINE_TICKS = 10_000
_FUEL_FOR_BUILD = 10**12



def _clock_type() -> wasmtime.FuncType:
    """``clock_time_get``'s type, made per use: a FuncType is bound to the first engine it meets,
    and using it with another engine aborts the process ("cross-Engine usage is not supported")."""
    return wasmtime.FuncType(
        [wasmtime.ValType.i32(), wasmtime.ValType.i64(), wasmtime.ValType.i32()], [wasmtime.ValType.i32()]
    )

_CLOCKS: dict[int, Callable[[], int]] = {
    0: time.time_ns,
    1: time.monotonic_ns,
    2: time.process_time_ns,
    3: time.thread_time_ns,
}


@dataclass(frozen=True)
class Snapshot:
    """A pre-initialised interpreter: its whole linear memory at the pause point.

    - ``memory``: the memory's bytes at the snapshot (its length is the memory's size);
    - ``stack_pointer``: the shadow-stack pointer at the pause point;
    - ``start_flag``: address of wasi-libc's ``_start`` re-entry guard, cleared before re-entry.

    A run maps the memory copy-on-write over its fresh instance's (one ``mmap``, pages
    shared until the guest writes them: :class:`~workbench.runtime.data_image.DataImage`),
    rather than copying the ~3 MB that differ from the module's initial memory (~2 ms a run).
    """

    memory: bytes
    stack_pointer: int
    start_flag: int
    _image: list[object] = field(default_factory=list, compare=False, repr=False)

    @property
    def memory_size(self) -> int:
        return len(self.memory)

    def image(self) -> object:
        """The memory as a sealed, shareable image (made on first use)."""
        from ..runtime.data_image import DataImage  # runtime imports languages: import late

        with _image_lock:  # one memfd per snapshot, even when two runs start at once
            if not self._image:
                self._image.append(DataImage(self.memory))
            return self._image[0]

    def restore(self, store: wasmtime.Store, exports: object) -> bool:
        """Make a fresh instance's memory and stack pointer those of the snapshot.

        False (and the instance untouched) when its memory cannot grow to the snapshot's
        size under the run's cap: the caller then starts the interpreter cold, which meets
        the cap the way any module does.
        """
        from ..runtime.linear_memory import current_account  # runtime imports languages: import late

        memory = exports["memory"]  # type: ignore[index]
        current = memory.data_len(store)
        if current > self.memory_size:
            return False  # not this interpreter's memory: leave it pristine
        if self.memory_size > current:
            account = current_account()
            if account is not None and not account.allows(self.memory_size):
                return False  # not the guest's request: no violation; the cold start meets the cap itself
            try:
                memory.grow(store, (self.memory_size - current) // WASM_PAGE)
            except wasmtime.WasmtimeError:
                return False
        base = ctypes.addressof(memory.data_ptr(store).contents)
        if not self.image().map_into(base, memory.data_len(store)):  # type: ignore[attr-defined]
            ctypes.memmove(base, self.memory, self.memory_size)  # a host that cannot map: copy
        ctypes.memset(base + self.start_flag, 0, 4)
        exports[STACK_POINTER_EXPORT].set_value(store, wasmtime.Val.i32(self.stack_pointer))  # type: ignore[index]
        return True


def _own_memory(module: wasmtime.Module) -> ContextManager[None]:
    """A build's memories are charged to no run, and start from the module's data image (if lifted)."""
    from ..runtime.data_image import image_of  # runtime imports languages: import late
    from ..runtime.linear_memory import charging

    return charging(None, image_of(module))


class SnapshotFailed(Exception):
    """The interpreter could not be snapshotted (unexpected build); runs fall back to a cold start."""


def _memory_bytes(memory: wasmtime.Memory, store: object) -> bytes:
    return ctypes.string_at(memory.data_ptr(store), memory.data_len(store))  # type: ignore[arg-type]


class SnapshotBuilder:
    """Builds and keeps snapshots by (module sha256, preopen layout, environment).

    Kept in memory, and, when the environment is empty, in the compile cache's folder
    (:mod:`.pycache`) so that a new process does not boot an interpreter again.  Environment
    values can be secrets, and they are in the snapshot's memory: those are never written.
    """

    def __init__(self, boot_argv: Sequence[str], start_flag: int, *, max_items: int = 16) -> None:
        self.boot_argv = list(boot_argv)
        self.start_flag = start_flag
        self.max_items = max_items
        self._items: OrderedDict[tuple[object, ...], Snapshot | SnapshotFailed] = OrderedDict()
        self._failures: dict[tuple[object, ...], int] = {}
        self._lock = threading.Lock()
        self.builds = 0
        #: snapshots read from the compile cache's folder rather than built
        self.loads = 0

    def get(self, module_sha256: str, entry: Entry) -> Snapshot | SnapshotFailed:
        key = (module_sha256, entry.preopens, entry.env)
        with self._lock:  # one build at a time: builds are rare and each uses a core fully
            found = self._items.get(key)
            if found is None:
                try:
                    found = self._load(module_sha256, entry)
                    if found is None:
                        found = self._build(entry)
                        self._keep(module_sha256, entry, found)
                except SnapshotFailed as failure:
                    # a build can fail by chance (a cancellation elsewhere kicks every engine's epoch):
                    # give up on this layout only when it fails twice
                    failures = self._failures[key] = self._failures.get(key, 0) + 1
                    if failures < 2:
                        return failure
                    found = failure
                    warnings.warn(
                        f"workbench: Python fast path unavailable for this interpreter ({failure}); "
                        "runs start it from scratch",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                self._items[key] = found
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
            else:
                self._items.move_to_end(key)
            return found

    def _disk_key(self, module_sha256: str, entry: Entry) -> str | None:
        """The snapshot's key on disk; None when it must not be written (an environment is baked in)."""
        if entry.env:
            return None
        return snapshot_key(module_sha256, self.boot_argv, self.start_flag, entry.preopens)

    def _load(self, module_sha256: str, entry: Entry) -> Snapshot | None:
        key = self._disk_key(module_sha256, entry)
        stored = load_snapshot(key) if key is not None else None
        if stored is None:
            return None
        memory, stack_pointer = stored
        if not (self.start_flag + 4 <= len(memory) and 0 < stack_pointer < len(memory)):
            return None  # not a snapshot of this interpreter: build one
        self.loads += 1
        return Snapshot(memory, stack_pointer, self.start_flag)

    def _keep(self, module_sha256: str, entry: Entry, snapshot: Snapshot) -> None:
        key = self._disk_key(module_sha256, entry)
        if key is not None:
            store_snapshot(key, snapshot.memory, snapshot.stack_pointer)

    def _build(self, entry: Entry) -> Snapshot:
        self.builds += 1
        engine, module = entry.engine, entry.module
        initial = self._initial_memory(engine, module)
        paused, stack_pointer, output = self._run_to_pause(entry)
        if paused is None or stack_pointer is None:
            raise SnapshotFailed(f"the interpreter did not reach its pause point; it printed {output[-300:]!r}")
        flag = self.start_flag
        if not (flag + 4 <= len(initial) and initial[flag:flag + 4] == b"\0\0\0\0" and paused[flag:flag + 4] != b"\0\0\0\0"):
            raise SnapshotFailed("_start's re-entry flag is not where it was expected")
        return Snapshot(paused, stack_pointer, flag)

    @staticmethod
    def _initial_memory(engine: wasmtime.Engine, module: wasmtime.Module) -> bytes:
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        store = wasmtime.Store(engine)
        try:
            store.set_wasi(wasmtime.WasiConfig())
            with _own_memory(module):
                exports = linker.instantiate(store, module).exports(store)
            return _memory_bytes(exports["memory"], store)  # type: ignore[arg-type]
        finally:
            store.close()  # freed here, on this thread: see runtime/shutdown.py
            linker.close()

    def _run_to_pause(self, entry: Entry) -> tuple[bytes | None, int | None, bytes]:
        """Start an interpreter in a store of its own and copy its memory at the pause point.

        The store and the linker are freed before this returns.  Nothing here may hold
        the store: the host function below lives in wasmtime-py's global table until the
        store and linker are freed, so a closure over the store made a cycle through C
        that Python's collector cannot see (the store, its memory and its output streams
        then lived until interpreter teardown freed them, on wasmtime's threads, during
        finalization: the abort at exit, docs/decisions.md "A clean exit").
        """
        from ..runtime.wasi_streams import OutputStreams  # runtime imports languages: import late

        engine, module = entry.engine, entry.module
        state: dict[str, object] = {"armed": False, "memory": None, "sp": None}
        output: list[bytes] = []

        def on_output(data: bytes) -> int:
            if SNAPSHOT_MARKER.encode() in data:
                state["armed"] = True
            else:
                output.append(bytes(data))
            return len(data)

        def clock_time_get(caller: wasmtime.Caller, clock_id: int, precision: int, out: int) -> int:
            memory = caller["memory"]
            if state["armed"] and state["memory"] is None:
                state["memory"] = _memory_bytes(memory, caller)  # type: ignore[arg-type]
                state["sp"] = caller[STACK_POINTER_EXPORT].value(caller)  # type: ignore[union-attr]
                # stop at the next epoch check; the instance is thrown away
                ffi.wasmtime_context_set_epoch_deadline(store_context(caller), 0)
            now = _CLOCKS.get(clock_id, time.monotonic_ns)()
            memory.write(caller, now.to_bytes(8, "little"), out)  # type: ignore[union-attr]
            return 0

        store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        streams = OutputStreams()
        try:
            linker.allow_shadowing = True
            linker.define_wasi()
            linker.define_func("wasi_snapshot_preview1", "clock_time_get", _clock_type(), clock_time_get, access_caller=True)
            with tempfile.TemporaryDirectory(prefix="workbench-snapshot-") as empty:
                wasi = wasmtime.WasiConfig()
                wasi.argv = self.boot_argv
                wasi.env = [list(pair) for pair in entry.env]
                streams.attach(wasi, on_output, on_output)
                for guest_path in entry.preopens:  # same layout as the run; the folders behind do not matter
                    wasi.preopen_dir(empty, guest_path, False)
                store.set_wasi(wasi)
                try:
                    store.set_fuel(_FUEL_FOR_BUILD)
                except wasmtime.WasmtimeError:
                    pass  # an engine without fuel
                store.set_epoch_deadline(BUILD_DEADLINE_TICKS)
                try:
                    with _own_memory(module):
                        linker.instantiate(store, module).exports(store)["_start"](store)  # type: ignore[operator]
                except (wasmtime.Trap, wasmtime.WasmtimeError, wasmtime.ExitTrap):
                    pass  # the expected end is the epoch trap right after the pause
        finally:
            store.close()
            linker.close()
            streams.release()
        return state["memory"], state["sp"], b"".join(output)  # type: ignore[return-value]


def make_enter(module_sha256: str, builder: SnapshotBuilder) -> Callable[[Entry], int]:
    """The ``Program.enter`` hook: restore the snapshot into the run's fresh instance and start it."""

    def enter(entry: Entry) -> int:
        snapshot = builder.get(module_sha256, entry)
        if isinstance(snapshot, Snapshot):
            snapshot.restore(entry.store, entry.exports)  # if it cannot, the instance is still pristine
        entry.exports["_start"](entry.store)  # type: ignore[index]
        return 0

    return enter
