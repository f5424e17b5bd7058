"""The WASI preview 1 functions the guard wraps or calls: one table, typed, by parameter name.

Why one table: the guard's wasm side (:mod:`guard_wasm`) generates a forwarder and a guard
function for each of these signatures, and the host side decodes the raw arguments of the
same calls.  Both read this module, so a parameter can never be decoded from the wrong
position.  Each function is a :class:`typing.NamedTuple` whose fields are its parameters in
order, annotated ``I32`` or ``I64`` (the wasm types); every one returns an ``i32`` errno.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

__all__ = ["I32", "I64", "CALLS", "SIGNATURES", "decode", "param_index"]

I32 = int  # a wasm i32 parameter (annotation read by :data:`SIGNATURES`)
I64 = int  # a wasm i64 parameter


class PathOpen(NamedTuple):
    dirfd: I32
    lookup: I32
    path: I32
    path_len: I32
    oflags: I32
    rights: I64
    inheriting: I64
    fdflags: I32
    fd_out: I32


class PathCreateDirectory(NamedTuple):
    dirfd: I32
    path: I32
    path_len: I32


class PathRemoveDirectory(NamedTuple):
    dirfd: I32
    path: I32
    path_len: I32


class PathUnlinkFile(NamedTuple):
    dirfd: I32
    path: I32
    path_len: I32


class PathRename(NamedTuple):
    old_fd: I32
    old_path: I32
    old_len: I32
    new_fd: I32
    new_path: I32
    new_len: I32


class PathLink(NamedTuple):
    old_fd: I32
    old_flags: I32
    old_path: I32
    old_len: I32
    new_fd: I32
    new_path: I32
    new_len: I32


class PathSymlink(NamedTuple):
    text: I32
    text_len: I32
    dirfd: I32
    path: I32
    path_len: I32


class PathReadlink(NamedTuple):
    dirfd: I32
    path: I32
    path_len: I32
    buf: I32
    buf_len: I32
    size_out: I32


class PathFilestatGet(NamedTuple):
    dirfd: I32
    flags: I32
    path: I32
    path_len: I32
    buf: I32


class PathFilestatSetTimes(NamedTuple):
    dirfd: I32
    flags: I32
    path: I32
    path_len: I32
    atim: I64
    mtim: I64
    fst_flags: I32


class FdRenumber(NamedTuple):
    fd: I32
    to: I32


class PollOneoff(NamedTuple):
    subscriptions: I32
    events: I32
    n_subscriptions: I32
    n_events_out: I32


class FdFilestatSetTimes(NamedTuple):
    fd: I32
    atim: I64
    mtim: I64
    fst_flags: I32


class FdFilestatSetSize(NamedTuple):
    fd: I32
    size: I64


class FdAllocate(NamedTuple):
    fd: I32
    offset: I64
    length: I64


class FdWrite(NamedTuple):
    fd: I32
    iovs: I32
    iovs_len: I32
    written_out: I32


class FdPwrite(NamedTuple):
    fd: I32
    iovs: I32
    iovs_len: I32
    offset: I64
    written_out: I32


class FdReaddir(NamedTuple):
    fd: I32
    buf: I32
    buf_len: I32
    cookie: I64
    size_out: I32


class FdClose(NamedTuple):
    fd: I32


class ClockTimeGet(NamedTuple):
    clock: I32
    precision: I64
    time_out: I32


class ClockResGet(NamedTuple):
    clock: I32
    resolution_out: I32


class FdFilestatGet(NamedTuple):
    fd: I32
    buf: I32


#: every function by its WASI name, in the order the guard numbers them
CALLS: dict[str, type[Any]] = {
    "path_open": PathOpen,
    "path_create_directory": PathCreateDirectory,
    "path_remove_directory": PathRemoveDirectory,
    "path_unlink_file": PathUnlinkFile,
    "path_rename": PathRename,
    "path_link": PathLink,
    "path_symlink": PathSymlink,
    "path_readlink": PathReadlink,
    "path_filestat_get": PathFilestatGet,
    "path_filestat_set_times": PathFilestatSetTimes,
    "fd_renumber": FdRenumber,
    "poll_oneoff": PollOneoff,
    "fd_filestat_set_times": FdFilestatSetTimes,
    "fd_filestat_set_size": FdFilestatSetSize,
    "fd_allocate": FdAllocate,
    "fd_write": FdWrite,
    "fd_pwrite": FdPwrite,
    "fd_readdir": FdReaddir,
    "fd_close": FdClose,
    "clock_time_get": ClockTimeGet,
    "clock_res_get": ClockResGet,
    "fd_filestat_get": FdFilestatGet,
}

_WASM_TYPES = {"I32": "i32", "I64": "i64"}


def _annotation(kind: Any) -> str:
    """``I32``/``I64`` from a field's annotation (a string, or a ForwardRef on some Pythons)."""
    return str(getattr(kind, "__forward_arg__", kind))

#: (parameter types, result types) per function, read off :data:`CALLS`
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    name: (tuple(_WASM_TYPES[_annotation(kind)] for kind in call.__annotations__.values()), ("i32",))
    for name, call in CALLS.items()
}
_KINDS = {name: tuple(kind == "i64" for kind in params) for name, (params, _) in SIGNATURES.items()}


def param_index(function: str, parameter: str) -> int:
    """The position of ``parameter`` in ``function``'s signature (for generated wasm)."""
    fields: Sequence[str] = CALLS[function]._fields
    return list(fields).index(parameter)


def decode(function: str, raw: Any) -> Any:
    """``function``'s arguments from a raw C-API value array, as its :data:`CALLS` tuple."""
    kinds = _KINDS[function]
    return CALLS[function](*[raw[i].i64 if wide else raw[i].i32 for i, wide in enumerate(kinds)])
