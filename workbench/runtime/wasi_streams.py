"""A guest's stdout/stderr wired into wasmtime's WASI with no finalizer that calls Python.

Why not ``WasiConfig.stdout_custom`` (wasmtime-py): it registers a finalizer that
wasmtime calls when it drops the output stream, and wasmtime drops it on a tokio
worker thread of its own, a few milliseconds after the store is freed (the stream's
last reference lives in the ``AsyncWriteStream`` task).  If the interpreter is
finalizing by then, that thread's call into Python (``PyGILState_Ensure``) ends in
``pthread_exit``; its forced unwind reaches a Rust frame that cannot unwind, and the
process aborts ("panic in a function that cannot unwind", SIGABRT) -- see
docs/decisions.md, "A clean exit", and runtime/shutdown.py.

Here the finalizer is NULL, so a dropped stream never calls Python.  The Python side
of a stream (its writer) is released by the run itself, after it has freed the store
(:meth:`OutputStreams.release`).  The Python snapshot builder (``languages``) uses it too.  Writes reach the writer on wasmtime's worker thread
while the guest's ``fd_write`` waits for them (a preview-1 write is a blocking write
and flush), so none is pending once the guest has returned.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
from typing import Callable, TypeVar

import wasmtime

from .._wasmtime_ffi import ffi

__all__ = ["OutputStreams", "keep_forever", "set_stdin"]

Writer = Callable[[bytes], int]
T = TypeVar("T")


def keep_forever(thunk: T) -> T:
    """Make a ctypes callback object immortal (wasmtime may hold its address until the process ends).

    Module teardown at exit clears module globals; a thunk freed that way while wasmtime
    still holds its address would turn a late callback into a jump to freed memory (SIGSEGV).
    """
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(thunk))
    return thunk


_WRITE_TYPE = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte), ctypes.c_size_t)
_FINALIZER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_NO_FINALIZER = ctypes.cast(None, _FINALIZER_TYPE)  # type: ignore[arg-type]

_writers: dict[int, Writer] = {}
_ids = itertools.count(1)


def _write(handle: int | None, data: object, size: int) -> int:
    writer = _writers.get(handle or 0)
    if writer is None:  # released: the run is over (never expected; fail the write, touch nothing)
        return -errno.EBADF
    try:
        written = writer(ctypes.string_at(data, size))  # type: ignore[arg-type]
    except BaseException:  # nothing may unwind into wasmtime
        return -errno.EIO
    return size if written is None else int(written)


# module-lifetime and immortal: wasmtime holds this pointer for as long as any stream lives
_write_thunk = keep_forever(_WRITE_TYPE(_write))


class OutputStreams:
    """The writers one WASI context uses; release them once its store is freed."""

    def __init__(self) -> None:
        self._handles: list[int] = []

    def attach(self, config: wasmtime.WasiConfig, stdout: Writer, stderr: Writer) -> None:
        """Send the guest's stdout and stderr to ``stdout`` and ``stderr`` (each returns bytes taken or -errno)."""
        for setter, writer in ((ffi.wasi_config_set_stdout_custom, stdout), (ffi.wasi_config_set_stderr_custom, stderr)):
            handle = next(_ids)
            _writers[handle] = writer
            self._handles.append(handle)
            setter(config.ptr(), _write_thunk, ctypes.c_void_p(handle), _NO_FINALIZER)

    def release(self) -> None:
        """Forget the writers (call after the store is freed: no write can come any more)."""
        for handle in self._handles:
            _writers.pop(handle, None)
        self._handles.clear()

    @staticmethod
    def live() -> int:
        """How many writers are registered in this process (tests: a finished run leaves none)."""
        return len(_writers)


def set_stdin(wasi: wasmtime.WasiConfig, data: bytes) -> None:
    """Give the guest ``data`` as its whole stdin (copied: the config owns its copy)."""
    vec = ffi.wasm_byte_vec_t()
    buffer = ctypes.cast(ctypes.create_string_buffer(data, len(data)), ctypes.POINTER(ctypes.c_uint8))
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), buffer)
    ffi.wasi_config_set_stdin_bytes(wasi.ptr(), ctypes.byref(vec))
