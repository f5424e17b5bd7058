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

Exports are looked up by name (:class:`Exports`), never enumerated: wasmtime-py's
``Instance.exports(store)`` walks every export with ``wasmtime_instance_export_nth``,
which is itself linear, so a 214 kB module with 25,000 exports held the host for
~10 s before the guest ran, outside every deadline (issue 10, point 5).
"""

from __future__ import annotations

import ctypes
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import wasmtime

from .._wasmtime_ffi import (
    WASMTIME_EXTERN_FUNC,
    WASMTIME_FUNCREF,
    WASMTIME_I32,
    enter_wasm,
    error_from,
    ffi,
    store_context,
    wrap_extern,
)
__all__ = ["ExternArray", "Exports", "ExportNames", "export_names", "instantiate", "linker_get", "export_get", "fill_func_table", "func_extern", "global_i32"]

ExternArray = ctypes.Array[ffi.wasmtime_extern_t]  # an import array for wasmtime_instance_new


def linker_get(linker: wasmtime.Linker, store: wasmtime.Store, module: bytes, name: bytes, out: ffi.wasmtime_extern_t) -> None:
    """Write the linker's definition of ``module``/``name`` (store-bound) into ``out``."""
    if not ffi.wasmtime_linker_get(linker.ptr(), store_context(store), module, len(module), name, len(name), ctypes.byref(out)):
        raise wasmtime.WasmtimeError(f"the linker defines no {module.decode()}::{name.decode()}")


def export_get(store: wasmtime.Store, instance: ffi.wasmtime_instance_t, name: bytes, out: ffi.wasmtime_extern_t) -> None:
    """Write ``instance``'s export ``name`` into ``out``."""
    if not ffi.wasmtime_instance_export_get(store_context(store), ctypes.byref(instance), name, len(name), ctypes.byref(out)):
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
        error = ffi.wasmtime_instance_new(store_context(store), module.ptr(), imports, len(imports), ctypes.byref(instance), trap)
        if error:
            raise error_from(error)
    return instance


def global_i32(store: wasmtime.Store, instance: ffi.wasmtime_instance_t, name: bytes) -> tuple[Callable[[], int], Callable[[int], None]]:
    """(read, write) for the exported mutable i32 global ``name`` of ``instance``."""
    item = ffi.wasmtime_extern_t()
    export_get(store, instance, name, item)
    handle = item.of.global_

    def read() -> int:
        value = ffi.wasmtime_val_t()
        ffi.wasmtime_global_get(store_context(store), ctypes.byref(handle), ctypes.byref(value))
        return int(value.of.i32)

    def write(number: int) -> None:
        value = ffi.wasmtime_val_t()
        value.kind = WASMTIME_I32
        value.of.i32 = number
        error = ffi.wasmtime_global_set(store_context(store), ctypes.byref(handle), ctypes.byref(value))
        if error:
            raise error_from(error)

    return read, write


def fill_func_table(store: wasmtime.Store, table: ffi.wasmtime_table_t, funcs: Sequence[ffi.wasmtime_func_t]) -> None:
    """Set ``table[i] = funcs[i]`` for a funcref table."""
    context = store_context(store)
    value = ffi.wasmtime_val_t()
    value.kind = WASMTIME_FUNCREF
    for index, func in enumerate(funcs):
        value.of.funcref = func
        error = ffi.wasmtime_table_set(context, ctypes.byref(table), index, ctypes.byref(value))
        if error:
            raise error_from(error)


@dataclass(frozen=True)
class ExportNames:
    """What a compiled module exports, by kind: its functions (to check an entry point) and
    its memories (what the monitor reads), in export order."""

    functions: frozenset[str]
    memories: tuple[str, ...]


_export_names: "weakref.WeakKeyDictionary[wasmtime.Module, ExportNames]" = weakref.WeakKeyDictionary()


def export_names(module: wasmtime.Module) -> ExportNames:
    """The module's :class:`ExportNames`, read from its type in one pass, once per compiled module."""
    names = _export_names.get(module)
    if names is None:
        functions: set[str] = set()
        memories: list[str] = []
        for export in module.exports:
            if export.name is None:
                continue
            kind = export.type
            if isinstance(kind, wasmtime.FuncType):
                functions.add(export.name)
            elif isinstance(kind, wasmtime.MemoryType):
                memories.append(export.name)
        names = _export_names[module] = ExportNames(frozenset(functions), tuple(memories))
    return names


class Exports:
    """An instance's exports, looked up by name: ``exports["_start"]``, ``"memory" in exports``.

    Each lookup is one ``wasmtime_instance_export_get`` (a hash lookup in wasmtime) and
    wraps only the item asked for.  :meth:`memories` finds the exported memories from
    the module's type, read once per compiled module, not per run.
    """

    def __init__(self, store: wasmtime.Store, instance: ffi.wasmtime_instance_t, module: wasmtime.Module) -> None:
        self._store = store
        self._instance = instance
        self._module = module
        self._memories: list[wasmtime.Memory] | None = None

    def get(self, name: str, default: Any = None) -> Any:
        """The export ``name`` (a Func, Memory, Global, Table, ...), or ``default``."""
        try:
            key = name.encode()
        except UnicodeEncodeError:  # a lone surrogate: no wasm name can hold it
            return default
        item = ffi.wasmtime_extern_t()
        found = ffi.wasmtime_instance_export_get(
            store_context(self._store), ctypes.byref(self._instance), key, len(key), ctypes.byref(item)
        )
        return wrap_extern(item) if found else default

    def __getitem__(self, name: str) -> Any:
        item = self.get(name)
        if item is None:
            raise KeyError(name)
        return item

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def memories(self) -> list[wasmtime.Memory]:
        """The exported linear memories, in export order (looked up once)."""
        if self._memories is None:
            found = (self.get(name) for name in export_names(self._module).memories)
            self._memories = [item for item in found if isinstance(item, wasmtime.Memory)]
        return self._memories
