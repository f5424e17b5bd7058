"""The WASI preview 1 functions the guard wraps or calls: one table, typed, by parameter name.

Why one table: the guard's wasm side (:mod:`guard_wasm`) generates a forwarder and a guard
function for each of these signatures, and the host side decodes the raw arguments of the
same calls.  Both read this module, so a parameter can never be decoded from the wrong
position.  Each function is a :class:`typing.NamedTuple` whose fields are its parameters in
order, annotated ``I32`` or ``I64`` (the wasm types); every one returns an ``i32`` errno.

Every parameter in this table is unsigned in WASI (``u32`` descriptors, sizes and pointers,
``u64`` rights, timestamps and offsets), so :func:`decode` reads each as unsigned: any bit pattern
a guest passes (``-1``, ``2**31``, ``2**63``) decodes to one Python ``int`` in ``[0, 2**32)`` or
``[0, 2**64)``, and nothing the host does with it can overflow or raise on a sign.
:data:`FLAG_WORDS` names the flag words among them and the bits WASI defines for each.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

__all__ = ["I32", "I64", "CALLS", "SIGNATURES", "FLAG_WORDS", "decode", "param_index", "undefined_bits"]

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

# the bits WASI preview 1 defines in each flag type (wasi_snapshot_preview1.witx)
_LOOKUPFLAGS = 0x1  # symlink_follow
_OFLAGS = 0xF  # creat, directory, excl, trunc
_RIGHTS = (1 << 30) - 1  # fd_datasync (bit 0) ... sock_accept (bit 29)
_FDFLAGS = 0x1F  # append, dsync, nonblock, rsync, sync
_FSTFLAGS = 0xF  # atim, atim_now, mtim, mtim_now

#: per function: (parameter, WASI type, defined bits) of each flag word the guard decodes.  wasmtime's
#: WASI traps on a bit outside these ("Invalid flag value ...", "number too large/small to fit in
#: target type"); the guard refuses such a call with EINVAL before it gets there (guard.py).
FLAG_WORDS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "path_open": (("lookup", "lookupflags", _LOOKUPFLAGS), ("oflags", "oflags", _OFLAGS),
                  ("rights", "rights", _RIGHTS), ("inheriting", "rights", _RIGHTS), ("fdflags", "fdflags", _FDFLAGS)),
    "path_link": (("old_flags", "lookupflags", _LOOKUPFLAGS),),
    "path_filestat_get": (("flags", "lookupflags", _LOOKUPFLAGS),),
    "path_filestat_set_times": (("flags", "lookupflags", _LOOKUPFLAGS), ("fst_flags", "fstflags", _FSTFLAGS)),
    "fd_filestat_set_times": (("fst_flags", "fstflags", _FSTFLAGS),),
}


def _annotation(kind: Any) -> str:
    """``I32``/``I64`` from a field's annotation (a string, or a ForwardRef on some Pythons)."""
    return str(getattr(kind, "__forward_arg__", kind))

#: (parameter types, result types) per function, read off :data:`CALLS`
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    name: (tuple(_WASM_TYPES[_annotation(kind)] for kind in call.__annotations__.values()), ("i32",))
    for name, call in CALLS.items()
}


def _decoder(function: str) -> Any:
    """``raw -> CALLS[function](raw[0].i32 & 0xFFFFFFFF, raw[1].i64 & 0xFFFF_FFFF_FFFF_FFFF, ...)``,
    generated once: the guard decodes every checked call, and a generated call is ~2x faster than
    a loop over the table.  The C API hands signed values; the mask reads them as WASI's unsigned."""
    params = SIGNATURES[function][0]
    masks = {"i32": "0xFFFFFFFF", "i64": "0xFFFFFFFFFFFFFFFF"}
    fields = ", ".join(f"raw[{i}].{kind} & {masks[kind]}" for i, kind in enumerate(params))
    return eval(f"lambda raw: call({fields})", {"call": CALLS[function]})  # noqa: S307 - text built above


_DECODERS = {name: _decoder(name) for name in CALLS}


def _flag_check(function: str) -> Any:
    """A function of ``function``'s decoded arguments naming its first flag word with an undefined
    bit, or None; generated once (one ``&`` per word on the hot path, no loop): ``a[4] & -16``
    tests oflags against its defined ``0xf``."""
    fields: Sequence[str] = CALLS[function]._fields
    tests = " else ".join(f"{name!r} if a[{list(fields).index(name)}] & {~defined}"
                          for name, _, defined in FLAG_WORDS[function])
    return eval(f"lambda a: {tests} else None")  # noqa: S307 - text built above


_FLAG_CHECKS = {name: _flag_check(name) for name in FLAG_WORDS}


def undefined_bits(function: str, args: Any) -> str | None:
    """The first of ``function``'s flag words (:data:`FLAG_WORDS`) in the decoded ``args`` that holds a
    bit WASI does not define, or None (also for a function without flag words)."""
    check = _FLAG_CHECKS.get(function)
    return None if check is None else check(args)


def param_index(function: str, parameter: str) -> int:
    """The position of ``parameter`` in ``function``'s signature (for generated wasm)."""
    fields: Sequence[str] = CALLS[function]._fields
    return list(fields).index(parameter)


def decode(function: str, raw: Any) -> Any:
    """``function``'s arguments from a raw C-API value array, as its :data:`CALLS` tuple."""
    return _DECODERS[function](raw)
