"""Linking the guard's instances through wasmtime's C API, without a Python object per item.

Why: a guarded guest is three instances (forwarder, guest, guard) wired together by
hand, because their imports cross each other (design.md §5).  Through wasmtime-py's
objects every import and export becomes a Python wrapper (a ``Func`` per item, a dict
per instance); a CPython guest links ~70 items, which cost ~450 µs a run, a seventh
of a whole pre-initialised Python run.  Here items stay ``wasmtime_extern_t`` values
from lookup to instantiation.  Only the guest's own exports are wrapped, because the
run reads them (``memory``, the entry point).

Errors keep wasmtime-py's behaviour: a failed link raises :class:`wasmtime.WasmtimeError`,
a trap during instantiation (a start function) raises :class:`wasmtime.Trap`.
"""

from __future__ import annotations

import ctypes
from typing import Sequence

import wasmtime
from wasmtime import _bindings as ffi
from wasmtime._ffi import WASMTIME_EXTERN_FUNC, WASMTIME_FUNCREF
from wasmtime._func import enter_wasm

__all__ = ["ExternArray", "instantiate", "linker_get", "export_get", "fill_func_table", "func_extern"]

ExternArray = ctypes.Array  # of ffi.wasmtime_extern_t


def linker_get(linker: wasmtime.Linker, store: wasmtime.Store, module: bytes, name: bytes, out: ffi.wasmtime_extern_t) -> None:
    """Write the linker's definition of ``module``/``name`` (store-bound) into ``out``."""
    if not ffi.wasmtime_linker_get(linker.ptr(), store._context(), module, len(module), name, len(name), ctypes.byref(out)):
        raise wasmtime.WasmtimeError(f"the linker defines no {module.decode()}::{name.decode()}")


def export_get(store: wasmtime.Store, instance: ffi.wasmtime_instance_t, name: bytes, out: ffi.wasmtime_extern_t) -> None:
    """Write ``instance``'s export ``name`` into ``out``."""
    if not ffi.wasmtime_instance_export_get(store._context(), ctypes.byref(instance), name, len(name), ctypes.byref(out)):
        raise wasmtime.WasmtimeError(f"the instance exports no {name.decode()!r}")


def func_extern(func: ffi.wasmtime_func_t) -> ffi.wasmtime_extern_t:
    """A raw function as an extern, for an import slot."""
    return ffi.wasmtime_extern_t(WASMTIME_EXTERN_FUNC, ffi.wasmtime_extern_union(func=func))


def instantiate(store: wasmtime.Store, module: wasmtime.Module, imports: ExternArray | Sequence[ffi.wasmtime_extern_t]) -> ffi.wasmtime_instance_t:
    """Instantiate ``module`` with ``imports`` (in the module's import order)."""
    if not isinstance(imports, ctypes.Array):
        array = (ffi.wasmtime_extern_t * len(imports))()
        for i, item in enumerate(imports):
            array[i] = item
        imports = array
    instance = ffi.wasmtime_instance_t()
    with enter_wasm(store) as trap:
        error = ffi.wasmtime_instance_new(store._context(), module.ptr(), imports, len(imports), ctypes.byref(instance), trap)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
    return instance


def fill_func_table(store: wasmtime.Store, table: ffi.wasmtime_table_t, funcs: Sequence[ffi.wasmtime_func_t]) -> None:
    """Set ``table[i] = funcs[i]`` for a funcref table."""
    context = store._context()
    value = ffi.wasmtime_val_t()
    value.kind = WASMTIME_FUNCREF
    for index, func in enumerate(funcs):
        value.of.funcref = func
        error = ffi.wasmtime_table_set(context, ctypes.byref(table), index, ctypes.byref(value))
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
