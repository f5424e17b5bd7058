"""Compiling a module, bounded: a shape check first, then the compiler under a time limit.

Why both: compiling is a phase the guest controls, and size alone does not bound it.
Cranelift's work grows faster than the input in places; a 36 kB module of 3,000
nested loops over 3,000 locals took 37 s to compile here, and twice that input takes
minutes.  wasmtime cannot interrupt a compile, so it runs in a helper process that is
killed at the limit:

- :func:`check_shape` reads the section headers (no code is decoded) and refuses a
  module past :class:`CompileBounds` with a :class:`CompileError` that says which
  bound and how to fit it.  The pinned CPython build (26 MB, 11,448 functions) is
  well inside them;
- :func:`compile_module` sends the bytes to one long-lived helper process
  (``python -m workbench.runtime.compile_worker``) that compiles them with the same
  engine settings and answers with ``Module.serialize()``; the host deserialises
  (milliseconds, the same trust as the compile cache's files).  Past the time limit
  (``seconds + seconds_per_mb`` × size, counted from when the helper is ready, so its own
  start-up under load does not eat into it) the helper is killed and the compile is a
  :class:`CompileError`; the next compile starts a new helper.  Ctrl-C while waiting
  stops the helper too.

The helper costs one interpreter start (~0.3 s) the first time a process compiles
anything, then about a millisecond per small module.  Where no helper can be started
(no ``sys.executable``), modules compile in this process with the shape check only.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import wasmtime

from ..errors import CompileError
from ..languages.wasm_binary import read_shape
from .engine import EngineHandle, EngineSettings

__all__ = ["CompileBounds", "COMPILE_BOUNDS", "check_shape", "compile_module"]

_REQUEST = struct.Struct("<IQ")  # settings JSON length, wasm length
_REPLY = struct.Struct("<BQ")  # status (0 compiled, 1 wasmtime refused it), payload length
_READY = b"R"  # the helper's first byte: imports done, listening
#: how long a helper may take to start (an interpreter and ``import wasmtime``; ~0.3 s idle)
STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class CompileBounds:
    """What a module may be before it is compiled, and how long compiling may take.

    - ``max_bytes``: the whole module (the CPython build is 26 MB, 10 MB of it DWARF)
    - ``max_code_bytes``: its code section (CPython: 6.2 MB)
    - ``max_functions``, ``max_exports``, ``max_imports``: declared counts (CPython: 11,448
      functions, 3 exports, 43 imports; a sandboxed module imports only WASI's 46 functions)
    - ``seconds`` + ``seconds_per_mb`` × size: the compile time limit (CPython: 9 s of 272 s)
    """

    max_bytes: int = 256 * 2**20
    max_code_bytes: int = 64 * 2**20
    max_functions: int = 500_000
    max_exports: int = 100_000
    max_imports: int = 1_000
    seconds: float = 10.0
    seconds_per_mb: float = 10.0

    def time_limit(self, size: int) -> float:
        return self.seconds + self.seconds_per_mb * size / 1e6


#: the bounds every compile keeps to (documented in docs/decisions.md)
COMPILE_BOUNDS = CompileBounds()


def _too_big(what: str, value: int, most: int) -> CompileError:
    return CompileError(
        f"module is too large to compile here: {what} {value:,} (the most is {most:,})",
        hint="split the module, or build it without what it does not need (dead code, debug info)",
    )


def check_shape(wasm: bytes, bounds: CompileBounds | None = None) -> None:
    """Refuse a module past ``bounds`` (default :data:`COMPILE_BOUNDS`; read from its section
    headers, linear in the number of sections)."""
    bounds = bounds or COMPILE_BOUNDS
    if len(wasm) > bounds.max_bytes:
        raise _too_big("size in bytes", len(wasm), bounds.max_bytes)
    shape = read_shape(wasm)
    if shape is None:
        return  # not readable as a module: the compiler's own error says why
    if shape.code_bytes > bounds.max_code_bytes:
        raise _too_big("code section in bytes", shape.code_bytes, bounds.max_code_bytes)
    for name, most in (("functions", bounds.max_functions), ("exports", bounds.max_exports),
                       ("imports", bounds.max_imports)):
        count = shape.counts.get(name, 0)
        if count > most:
            raise _too_big(f"number of {name}", count, most)


class _Helper:
    """The compile helper process and the framing of its pipe."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # the same workbench as ours
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.runtime.compile_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        self._ready = False

    def compile(self, settings: EngineSettings, wasm: bytes, seconds: float) -> tuple[int, bytes]:
        """Compile ``wasm`` within ``seconds``, counted from when the helper is ready to listen
        (its own start-up, an interpreter and ``import wasmtime``, has a separate minute)."""
        if not self._ready:
            if self._receive(1, time.monotonic() + STARTUP_SECONDS) != _READY:
                raise EOFError
            self._ready = True
        deadline = time.monotonic() + seconds
        header = json.dumps(dataclasses.asdict(settings)).encode()
        self._send(_REQUEST.pack(len(header), len(wasm)) + header, deadline)
        self._send(wasm, deadline)
        status, size = _REPLY.unpack(self._receive(_REPLY.size, deadline))
        return status, self._receive(size, deadline)

    def _send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(self._in, deadline, write=True)
            try:
                sent = os.write(self._in, view[: 1 << 20])
            except BlockingIOError:
                continue
            view = view[sent:]

    def _receive(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        while size:
            self._wait(self._out, deadline, write=False)
            chunk = os.read(self._out, min(size, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    @staticmethod
    def _wait(fd: int, deadline: float, *, write: bool) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        ready = select.select([], [fd], [], left) if write else select.select([fd], [], [], left)
        if not ready[0] and not ready[1]:
            raise TimeoutError

    def close(self, *, wait: bool = True) -> None:
        """Kill the helper (it holds nothing worth a clean shutdown) and close its pipes.

        ``wait=False`` at exit: the kernel's teardown of the helper (10-80 ms here) need not
        delay ours; it is reaped once this process is gone."""
        self.proc.kill()
        if wait:
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass


_helper: _Helper | None = None
_helper_lock = threading.Lock()


def _close_helper() -> None:
    """At exit: kill the helper, without waiting for its teardown."""
    global _helper
    with _helper_lock:
        if _helper is not None:
            _helper.close(wait=False)
            _helper = None


atexit.register(_close_helper)


def compile_module(handle: EngineHandle, wasm: bytes, bounds: CompileBounds | None = None) -> wasmtime.Module:
    """``wasm`` compiled for ``handle``'s engine, within ``bounds`` (default :data:`COMPILE_BOUNDS`).

    Raises :class:`CompileError` for a module past the bounds (shape or time) and
    :class:`wasmtime.WasmtimeError` when wasmtime refuses it (the caller explains that).
    """
    global _helper
    bounds = bounds or COMPILE_BOUNDS
    check_shape(wasm, bounds)
    if not sys.executable:
        return wasmtime.Module(handle.engine, wasm)
    limit = bounds.time_limit(len(wasm))
    with _helper_lock:
        for attempt in (1, 2):  # a helper that died since its last compile (a signal) is replaced once
            helper = _helper
            if helper is not None and helper.proc.poll() is not None:
                helper.close()  # its pipes
                helper = None
            if helper is None:
                try:
                    helper = _helper = _Helper()
                except OSError:  # no interpreter to start: compile here, with the shape check only
                    return wasmtime.Module(handle.engine, wasm)
            try:
                status, payload = helper.compile(handle.settings, wasm, limit)
                break
            except TimeoutError:
                _helper = None
                helper.close()
                raise CompileError(
                    f"compiling the module took longer than {limit:.0f} s, so it was stopped",
                    hint="the module is too large or too complex to compile here (for example thousands of "
                    "nested loops over thousands of locals); simplify it or split it",
                ) from None
            except (EOFError, OSError) as exc:
                _helper = None
                helper.close()
                if attempt == 2:
                    raise CompileError(
                        f"the compiler process ended while compiling the module (exit status {helper.proc.returncode})",
                        hint="the module may need more memory to compile than this machine has; simplify it or split it",
                    ) from exc
            except BaseException:  # Ctrl-C while waiting: the helper may still be compiling
                _helper = None
                helper.close()
                raise
    if status != 0:
        raise wasmtime.WasmtimeError(payload.decode("utf-8", "replace"))
    return wasmtime.Module.deserialize(handle.engine, payload)
