"""The WASI preview1 surface a guest may import, and the import check.

A module is checked before it runs: every import must be a WASI preview1
function.  Anything else (``env.foo``, an imported memory, the old
``wasi_unstable`` names) is refused with one message that lists every missing
import, rather than wasmtime's first-only ``unknown import``.  The ``sock_*``
functions only act on sockets handed to the guest at start, and this sandbox
hands over none, so they grant nothing.
"""

from __future__ import annotations

import wasmtime

from ..errors import LinkError

__all__ = ["WASI_MODULE", "WASI_FUNCTIONS", "check_imports"]

WASI_MODULE = "wasi_snapshot_preview1"
WASI_FUNCTIONS = frozenset(
    """
    args_get args_sizes_get environ_get environ_sizes_get clock_res_get clock_time_get
    fd_advise fd_allocate fd_close fd_datasync fd_fdstat_get fd_fdstat_set_flags fd_fdstat_set_rights
    fd_filestat_get fd_filestat_set_size fd_filestat_set_times fd_pread fd_prestat_get
    fd_prestat_dir_name fd_pwrite fd_read fd_readdir fd_renumber fd_seek fd_sync fd_tell fd_write
    path_create_directory path_filestat_get path_filestat_set_times path_link path_open
    path_readlink path_remove_directory path_rename path_symlink path_unlink_file
    poll_oneoff proc_exit proc_raise sched_yield random_get
    sock_accept sock_recv sock_send sock_shutdown
    """.split()
)


def check_imports(module: wasmtime.Module) -> None:
    """Raise :class:`LinkError` naming every import the sandbox does not provide."""
    missing = []
    for imp in module.imports:
        kind = type(imp.type).__name__.replace("Type", "").lower()
        ok = imp.module == WASI_MODULE and imp.name in WASI_FUNCTIONS and isinstance(imp.type, wasmtime.FuncType)
        if not ok:
            missing.append(f"{imp.module}::{imp.name} ({kind})")
    if missing:
        unstable = any(m.startswith("wasi_unstable::") for m in missing)
        hint = (
            "this module targets the old 'wasi_unstable' ABI; rebuild it for wasm32-wasi (preview1)"
            if unstable
            else "a sandboxed module may import only WASI preview1 functions (wasi_snapshot_preview1); "
            "host functions are not granted"
        )
        raise LinkError(
            f"module imports {len(missing)} item(s) the sandbox does not provide: {', '.join(missing)}",
            imports=missing,
            hint=hint,
        )
