"""The WASI preview1 surface a guest may import, and the import check.

A module is checked before it runs: every import must be a WASI preview1
function, with the signature preview1 gives it, or one of the workbench's own host imports
(:mod:`.host_imports`, linked only under their grant: that check is per sandbox, at the run).  Anything else (``env.foo``, an
imported memory, the old ``wasi_unstable`` names, ``proc_exit`` taking an i64) is
refused with one message that lists every bad import, rather than wasmtime's
first-only error at link time, which a run would report as the guest's fault: a
module that can never be linked is bad input, not a guest that misbehaved.  The
``sock_*`` functions only act on sockets handed to the guest at start, and this
sandbox hands over none, so they grant nothing.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import wasmtime

from ..errors import LinkError
from .host_imports import HOST_MODULE, HOST_SIGNATURES
from .wasm_imports import DeclaredImport, declared_imports

__all__ = ["WASI_MODULE", "WASI_FUNCTIONS", "WASI_SIGNATURES", "ExtraImports", "check_imports", "check_declared_imports"]

WASI_MODULE = "wasi_snapshot_preview1"

_I, _L = "i32", "i64"
#: every preview1 function as its core wasm type: (params, results), from the preview1 witx
#: (tests compare it with the definitions wasmtime's own linker provides)
WASI_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "args_get": ((_I, _I), (_I,)),
    "args_sizes_get": ((_I, _I), (_I,)),
    "environ_get": ((_I, _I), (_I,)),
    "environ_sizes_get": ((_I, _I), (_I,)),
    "clock_res_get": ((_I, _I), (_I,)),
    "clock_time_get": ((_I, _L, _I), (_I,)),
    "fd_advise": ((_I, _L, _L, _I), (_I,)),
    "fd_allocate": ((_I, _L, _L), (_I,)),
    "fd_close": ((_I,), (_I,)),
    "fd_datasync": ((_I,), (_I,)),
    "fd_fdstat_get": ((_I, _I), (_I,)),
    "fd_fdstat_set_flags": ((_I, _I), (_I,)),
    "fd_fdstat_set_rights": ((_I, _L, _L), (_I,)),
    "fd_filestat_get": ((_I, _I), (_I,)),
    "fd_filestat_set_size": ((_I, _L), (_I,)),
    "fd_filestat_set_times": ((_I, _L, _L, _I), (_I,)),
    "fd_pread": ((_I, _I, _I, _L, _I), (_I,)),
    "fd_prestat_get": ((_I, _I), (_I,)),
    "fd_prestat_dir_name": ((_I, _I, _I), (_I,)),
    "fd_pwrite": ((_I, _I, _I, _L, _I), (_I,)),
    "fd_read": ((_I, _I, _I, _I), (_I,)),
    "fd_readdir": ((_I, _I, _I, _L, _I), (_I,)),
    "fd_renumber": ((_I, _I), (_I,)),
    "fd_seek": ((_I, _L, _I, _I), (_I,)),
    "fd_sync": ((_I,), (_I,)),
    "fd_tell": ((_I, _I), (_I,)),
    "fd_write": ((_I, _I, _I, _I), (_I,)),
    "path_create_directory": ((_I, _I, _I), (_I,)),
    "path_filestat_get": ((_I, _I, _I, _I, _I), (_I,)),
    "path_filestat_set_times": ((_I, _I, _I, _I, _L, _L, _I), (_I,)),
    "path_link": ((_I, _I, _I, _I, _I, _I, _I), (_I,)),
    "path_open": ((_I, _I, _I, _I, _I, _L, _L, _I, _I), (_I,)),
    "path_readlink": ((_I, _I, _I, _I, _I, _I), (_I,)),
    "path_remove_directory": ((_I, _I, _I), (_I,)),
    "path_rename": ((_I, _I, _I, _I, _I, _I), (_I,)),
    "path_symlink": ((_I, _I, _I, _I, _I), (_I,)),
    "path_unlink_file": ((_I, _I, _I), (_I,)),
    "poll_oneoff": ((_I, _I, _I, _I), (_I,)),
    "proc_exit": ((_I,), ()),
    "proc_raise": ((_I,), (_I,)),
    "sched_yield": ((), (_I,)),
    "random_get": ((_I, _I), (_I,)),
    "sock_accept": ((_I, _I, _I), (_I,)),
    "sock_recv": ((_I, _I, _I, _I, _I, _I), (_I,)),
    "sock_send": ((_I, _I, _I, _I, _I), (_I,)),
    "sock_shutdown": ((_I, _I), (_I,)),
}
WASI_FUNCTIONS = frozenset(WASI_SIGNATURES)


def _signature(types: tuple[str, ...]) -> str:
    return f"({', '.join(types)})"


def _describe(func: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    params, results = func
    return f"{_signature(params)} -> {_signature(results)}"


#: imports besides WASI that a program may be allowed (its ``Needs``): (module, name) -> (params, results)
ExtraImports = Mapping[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]]


def check_imports(module: wasmtime.Module, extra: ExtraImports | None = None) -> None:
    """Raise :class:`LinkError` naming every import the sandbox does not provide as typed
    (``extra``: imports besides WASI this program is given, such as the refusing ``host::call``)."""
    _check((
        DeclaredImport(
            imp.module,
            imp.name or "",
            type(imp.type).__name__.replace("Type", "").lower(),
            *(
                (tuple(str(p) for p in imp.type.params), tuple(str(r) for r in imp.type.results))
                if isinstance(imp.type, wasmtime.FuncType)
                else ((), ())
            ),
        )
        for imp in module.imports
    ), extra)


def check_declared_imports(wasm: bytes, extra: ExtraImports | None = None) -> None:
    """The same check on the module's bytes, before it is compiled: a module that will be refused
    costs no compile.  Only refuses; a module it cannot read is left to :func:`check_imports`."""
    imports = declared_imports(wasm)
    if imports is not None:
        _check(imports, extra)


def _check(imports: Iterable[DeclaredImport], extra: ExtraImports | None = None) -> None:
    missing: list[str] = []
    mistyped: list[str] = []
    for imp in imports:
        table = WASI_SIGNATURES if imp.module == WASI_MODULE else HOST_SIGNATURES if imp.module == HOST_MODULE else {}
        expected = table.get(imp.name)
        if expected is None and extra:
            expected = extra.get((imp.module, imp.name))
        if expected is None or imp.kind != "func":
            missing.append(f"{imp.module}::{imp.name} ({imp.kind})")
            continue
        actual = (imp.params, imp.results)
        if actual != expected:
            has = "preview1" if imp.module == WASI_MODULE else "the workbench"
            mistyped.append(f"{imp.module}::{imp.name} {_describe(actual)}, {has} has {_describe(expected)}")
    if missing:
        unstable = any(m.startswith("wasi_unstable::") for m in missing)
        hint = (
            "this module targets the old 'wasi_unstable' ABI; rebuild it for wasm32-wasi (preview1)"
            if unstable
            else "a sandboxed module may import only WASI preview1 functions (wasi_snapshot_preview1) and "
            "workbench::http_request / workbench::call (README: 'Network and module calls from a guest'); "
            "other host functions are not granted"
        )
        also = f"; and {len(mistyped)} WASI function(s) with the wrong signature: {'; '.join(mistyped)}" if mistyped else ""
        raise LinkError(
            f"module imports {len(missing)} item(s) the sandbox does not provide: {', '.join(missing)}{also}",
            imports=missing + mistyped,
            hint=hint,
        )
    if mistyped:
        raise LinkError(
            f"module imports {len(mistyped)} WASI function(s) with the wrong signature: {'; '.join(mistyped)}",
            imports=mistyped,
            hint="the module was built against another WASI definition; rebuild it for wasm32-wasi (preview1) "
            "with an up-to-date wasi-libc or toolchain",
        )
