"""The one module that touches wasmtime-py's internals: its ctypes bindings and private attributes.

Why a seam: the sandbox needs a few things wasmtime-py's public API does not offer (the
epoch-deadline callback with a per-store pointer, unchecked host functions for the guard,
a host memory creator, WASI output callbacks, exports looked up by name).  Each private name
is used here and only here (a test checks it), so a wasmtime upgrade is one file to read.
The version is checked at import: an unknown version fails at once with what to install,
never later with an ``AttributeError`` deep inside a run.
"""

from __future__ import annotations

import os
from typing import Any

import wasmtime
from wasmtime import _bindings as ffi
from wasmtime._extern import wrap_extern
from wasmtime._ffi import WASMTIME_EXTERN_FUNC, WASMTIME_EXTERN_MEMORY, WASMTIME_FUNCREF, WASMTIME_I32
from wasmtime._func import enter_wasm

from .errors import SandboxError

__all__ = [
    "ffi",
    "wrap_extern",
    "enter_wasm",
    "WASMTIME_EXTERN_FUNC",
    "WASMTIME_EXTERN_MEMORY",
    "WASMTIME_FUNCREF",
    "WASMTIME_I32",
    "KNOWN_VERSIONS",
    "check_version",
    "installed_version",
    "store_context",
    "memory_handle",
    "instance_handle",
    "error_from",
    "guest_profiler_new",
    "guest_profiler_sample",
    "guest_profiler_finish",
    "guest_profiler_delete",
]

#: wasmtime-py releases whose internals this module was written against (major.minor)
KNOWN_VERSIONS = ("50.0",)


def check_version(version: str) -> None:
    """Refuse a wasmtime-py whose internals this module does not know."""
    if ".".join(version.split(".")[:2]) not in KNOWN_VERSIONS:
        raise SandboxError(
            f"wasmtime {version} is installed, but the workbench knows only wasmtime "
            f"{', '.join(v + '.x' for v in KNOWN_VERSIONS)} (it uses parts of wasmtime-py that change between releases)",
            hint="install the version the project pins: pip install 'wasmtime==50.0.1' (or reinstall the workbench)",
        )


def installed_version() -> str:
    """The installed wasmtime-py's version, read from its ``dist-info`` folder's name.

    ``importlib.metadata`` would cost ~40 ms of CPU at every start-up (it imports the
    ``email`` package), a sixth of a cold start; it is asked only when the folder is not
    where pip puts it, or is ambiguous.
    """
    site = os.path.dirname(os.path.dirname(os.path.abspath(wasmtime.__file__)))
    try:
        found = [name for name in os.listdir(site) if name.startswith("wasmtime-") and name.endswith(".dist-info")]
    except OSError:
        found = []
    if len(found) == 1:
        return found[0][len("wasmtime-"):-len(".dist-info")]
    import importlib.metadata

    return importlib.metadata.version("wasmtime")


check_version(installed_version())


def store_context(store: Any) -> Any:
    """The ``wasmtime_context_t*`` of a :class:`wasmtime.Store` or a ``Caller``."""
    return store._context()


def memory_handle(memory: wasmtime.Memory) -> Any:
    """The ``wasmtime_memory_t`` behind a :class:`wasmtime.Memory`."""
    return memory._memory


def instance_handle(instance: wasmtime.Instance) -> Any:
    """The ``wasmtime_instance_t`` behind a :class:`wasmtime.Instance`."""
    return instance._instance


def error_from(pointer: Any) -> wasmtime.WasmtimeError:
    """A :class:`wasmtime.WasmtimeError` that takes ownership of a ``wasmtime_error_t*``."""
    return wasmtime.WasmtimeError._from_ptr(pointer)


# -- wasmtime's guest profiler (C API: wasmtime/profiling.h) -----------------------------------------
def guest_profiler_new(engine: wasmtime.Engine, name: str, interval_ns: int,
                       modules: list[tuple[str, wasmtime.Module]]) -> Any:
    """``wasmtime_guestprofiler_new``: a profiler whose stacks show frames of ``modules``; owned by the caller
    (:func:`guest_profiler_finish` or :func:`guest_profiler_delete` frees it)."""
    import ctypes

    names = []
    entries = (ffi.wasmtime_guestprofiler_modules_t * len(modules))()
    for slot, (module_name, module) in enumerate(modules):
        vec = _name_vec(module_name)
        names.append(vec)
        entries[slot].name = ctypes.pointer(vec)
        entries[slot].mod = module.ptr()
    title = _name_vec(name)
    try:
        return ffi.wasmtime_guestprofiler_new(engine.ptr(), ctypes.byref(title), interval_ns, entries, len(modules))
    finally:
        for vec in [title, *names]:
            ffi.wasm_byte_vec_delete(ctypes.byref(vec))


def _name_vec(text: str) -> Any:
    import ctypes

    data = text.encode("utf-8")
    vec = ffi.wasm_byte_vec_t()
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), ctypes.cast(ctypes.c_char_p(data), ctypes.POINTER(ctypes.c_uint8)))
    return vec


def guest_profiler_sample(profiler: Any, store: wasmtime.Store, delta_ns: int) -> None:
    """``wasmtime_guestprofiler_sample``: record the guest's stack now (call on the guest's thread, from
    the epoch callback, while the guest is on the stack)."""
    ffi.wasmtime_guestprofiler_sample(profiler, store.ptr(), delta_ns)


def guest_profiler_finish(profiler: Any) -> bytes:
    """``wasmtime_guestprofiler_finish``: the profile (Firefox Profiler JSON); frees the profiler."""
    import ctypes

    out = ffi.wasm_byte_vec_t()
    error = ffi.wasmtime_guestprofiler_finish(profiler, ctypes.byref(out))
    if error:
        raise error_from(error)
    try:
        return ctypes.string_at(out.data, out.size)
    finally:
        ffi.wasm_byte_vec_delete(ctypes.byref(out))


def guest_profiler_delete(profiler: Any) -> None:
    """``wasmtime_guestprofiler_delete``: free a profiler without finishing it."""
    ffi.wasmtime_guestprofiler_delete(profiler)
