"""A recorded call trace turned into a typed table: arguments decoded by name.

Why apart from :mod:`trace`: recording is on the guest's call path and keeps raw integers
only (plus the bytes of a path, which may change once the call returns); everything a person
reads (flags and rights by name, the path each descriptor was opened for, errno names) is
worked out here, once, when the table is asked for.  Paths are guest paths (what the guest
passed, joined to the guest path of its descriptor), never host paths.
"""

from __future__ import annotations

import posixpath
from typing import Any, Sequence

from .errnos import errno_name

__all__ = ["trace_records", "trace_text", "PARAMS", "TRACE_COLUMNS", "flag_names", "rights_names", "trace_frame", "OUT_PARAMS", "PATH_PARAMS"]

#: WASI preview 1 functions by name: their parameters, in order
PARAMS: dict[str, tuple[str, ...]] = {
    "args_get": ("argv", "argv_buf"),
    "args_sizes_get": ("argc_out", "size_out"),
    "environ_get": ("environ", "environ_buf"),
    "environ_sizes_get": ("count_out", "size_out"),
    "clock_res_get": ("clock", "resolution_out"),
    "clock_time_get": ("clock", "precision", "time_out"),
    "fd_advise": ("fd", "offset", "len", "advice"),
    "fd_allocate": ("fd", "offset", "len"),
    "fd_close": ("fd",),
    "fd_datasync": ("fd",),
    "fd_fdstat_get": ("fd", "buf"),
    "fd_fdstat_set_flags": ("fd", "fdflags"),
    "fd_fdstat_set_rights": ("fd", "rights", "inheriting"),
    "fd_filestat_get": ("fd", "buf"),
    "fd_filestat_set_size": ("fd", "size"),
    "fd_filestat_set_times": ("fd", "atim", "mtim", "fst_flags"),
    "fd_pread": ("fd", "iovs", "iovs_len", "offset", "count_out"),
    "fd_prestat_get": ("fd", "buf"),
    "fd_prestat_dir_name": ("fd", "path", "path_len"),
    "fd_pwrite": ("fd", "iovs", "iovs_len", "offset", "count_out"),
    "fd_read": ("fd", "iovs", "iovs_len", "count_out"),
    "fd_readdir": ("fd", "buf", "buf_len", "cookie", "count_out"),
    "fd_renumber": ("fd", "to"),
    "fd_seek": ("fd", "offset", "whence", "offset_out"),
    "fd_sync": ("fd",),
    "fd_tell": ("fd", "offset_out"),
    "fd_write": ("fd", "iovs", "iovs_len", "count_out"),
    "path_create_directory": ("fd", "path", "path_len"),
    "path_filestat_get": ("fd", "lookup", "path", "path_len", "buf"),
    "path_filestat_set_times": ("fd", "lookup", "path", "path_len", "atim", "mtim", "fst_flags"),
    "path_link": ("fd", "lookup", "path", "path_len", "new_fd", "new_path", "new_len"),
    "path_open": ("fd", "lookup", "path", "path_len", "oflags", "rights", "inheriting", "fdflags", "fd_out"),
    "path_readlink": ("fd", "path", "path_len", "buf", "buf_len", "count_out"),
    "path_remove_directory": ("fd", "path", "path_len"),
    "path_rename": ("fd", "path", "path_len", "new_fd", "new_path", "new_len"),
    "path_symlink": ("text", "text_len", "fd", "path", "path_len"),
    "path_unlink_file": ("fd", "path", "path_len"),
    "poll_oneoff": ("subscriptions", "events", "n_subscriptions", "count_out"),
    "proc_exit": ("code",),
    "proc_raise": ("signal",),
    "sched_yield": (),
    "random_get": ("buf", "len"),
    "sock_accept": ("fd", "fdflags", "fd_out"),
    "sock_recv": ("fd", "iovs", "iovs_len", "ri_flags", "count_out", "flags_out"),
    "sock_send": ("fd", "iovs", "iovs_len", "si_flags", "count_out"),
    "sock_shutdown": ("fd", "how"),
}

#: (pointer, length) parameter pairs read as text when the call is made (the path may change after)
PATH_PARAMS: dict[str, tuple[tuple[int, int], ...]] = {
    name: ((params.index("path"), params.index("path_len")),)
    + (((params.index("new_path"), params.index("new_len")),) if "new_path" in params else ())
    for name, params in PARAMS.items()
    if "path" in params and name != "fd_prestat_dir_name"
}
#: the u32 a call writes back (bytes moved, the new descriptor), read when it returns
OUT_PARAMS: dict[str, int] = {
    name: params.index("count_out") if "count_out" in params else params.index("fd_out")
    for name, params in PARAMS.items()
    if "count_out" in params or "fd_out" in params
}

_OFLAGS = ("CREAT", "DIRECTORY", "EXCL", "TRUNC")
_FDFLAGS = ("APPEND", "DSYNC", "NONBLOCK", "RSYNC", "SYNC")
_LOOKUP = ("SYMLINK_FOLLOW",)
_FST = ("ATIM", "ATIM_NOW", "MTIM", "MTIM_NOW")
_RIGHTS = (
    "fd_datasync", "fd_read", "fd_seek", "fd_fdstat_set_flags", "fd_sync", "fd_tell", "fd_write", "fd_advise",
    "fd_allocate", "path_create_directory", "path_create_file", "path_link_source", "path_link_target",
    "path_open", "fd_readdir", "path_readlink", "path_rename_source", "path_rename_target", "path_filestat_get",
    "path_filestat_set_size", "path_filestat_set_times", "fd_filestat_get", "fd_filestat_set_size",
    "fd_filestat_set_times", "path_symlink", "path_remove_directory", "path_unlink_file", "poll_fd_readwrite",
    "sock_shutdown", "sock_accept",
)
_ALL_RIGHTS = (1 << len(_RIGHTS)) - 1
_WHENCE = ("SET", "CUR", "END")
_CLOCKS = ("REALTIME", "MONOTONIC", "PROCESS_CPUTIME", "THREAD_CPUTIME")

#: the table's columns and their pandas dtypes, in order
TRACE_COLUMNS: dict[str, str] = {
    "seq": "int64",
    "time_s": "float64",
    "call": "string",
    "fd": "Int64",
    "fd_path": "string",
    "path": "string",
    "flags": "string",
    "rights": "string",
    "bytes": "Int64",
    "args": "string",
    "result": "Int64",
    "errno": "string",
    "decision": "string",
    "duration_us": "float64",
}


def flag_names(value: int, names: Sequence[str]) -> str:
    """``CREAT|TRUNC`` for bits 0 and 3; unknown bits as a hex remainder; ``""`` for none."""
    parts = [name for bit, name in enumerate(names) if value >> bit & 1]
    rest = value & ~((1 << len(names)) - 1)
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def rights_names(value: int) -> str:
    """WASI rights by name; ``all`` when every right is asked (as libc does)."""
    if value & _ALL_RIGHTS == _ALL_RIGHTS:
        rest = value & ~_ALL_RIGHTS
        return "all" if not rest else f"all|{hex(rest)}"
    return flag_names(value, _RIGHTS)


def _flags(call: str, named: dict[str, int]) -> str:
    parts = []
    if "lookup" in named:
        text = flag_names(named["lookup"], _LOOKUP)
        if text:
            parts.append(text)
    if "oflags" in named:
        parts.append(flag_names(named["oflags"], _OFLAGS))
    if "fdflags" in named:
        parts.append(flag_names(named["fdflags"], _FDFLAGS))
    if "fst_flags" in named:
        parts.append(flag_names(named["fst_flags"], _FST))
    if "whence" in named:
        parts.append(_WHENCE[named["whence"]] if 0 <= named["whence"] < 3 else str(named["whence"]))
    if "clock" in named:
        parts.append(_CLOCKS[named["clock"]] if 0 <= named["clock"] < 4 else str(named["clock"]))
    return "|".join(p for p in parts if p)


class _Descriptors:
    """The guest path each descriptor stands for, replayed call by call."""

    def __init__(self, preopens: Sequence[str]) -> None:
        self.paths: dict[int, str] = {0: "<stdin>", 1: "<stdout>", 2: "<stderr>"}
        for number, guest in enumerate(preopens, start=3):
            self.paths[number] = guest

    def joined(self, fd: int, path: str) -> str:
        base = self.paths.get(fd)
        if base is None or base.startswith("<") or path.startswith(("/", "<")):
            return path
        return posixpath.normpath(posixpath.join(base, path)) if path else base

    def after(self, call: str, named: dict[str, int], path: str | None, result: int | None, out: int | None) -> None:
        if result != 0:
            return
        if call == "path_open" and out is not None and path is not None:
            self.paths[out] = self.joined(named["fd"], path)
        elif call == "fd_close":
            self.paths.pop(named["fd"], None)
        elif call == "fd_renumber":
            moved = self.paths.pop(named["fd"], None)
            if moved is not None:
                self.paths[named["to"]] = moved


def _signed(value: int, call: str, param: str) -> int:
    """A raw argument as WASI types it: unsigned, but for a seek offset (a signed i64)."""
    value &= 0xFFFF_FFFF_FFFF_FFFF
    if param == "offset" and call == "fd_seek" and value >= 1 << 63:
        return value - (1 << 64)
    return value


def _printable(text: str, limit: int = 160) -> str:
    """Guest text for a terminal: control characters escaped (no escape sequences reach it), cut at ``limit``."""
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                    for c in text[:limit])
    return shown + (f"... ({len(text):,} characters)" if len(text) > limit else "")


def trace_frame(records: Sequence[Sequence[Any]], names: Sequence[str], preopens: Sequence[str],
                started_ns: int, dropped: int = 0) -> Any:
    """The trace as a pandas DataFrame (columns :data:`TRACE_COLUMNS`), in call order.

    ``records``: ``[name index, t0 ns, raw args, paths (bytes each) or None, result, t1 ns, out value,
    decision]`` each.
    """
    import pandas as pd

    fds = _Descriptors(preopens)
    rows: list[tuple[Any, ...]] = []
    for seq, (index, t0, raw, path_bytes, result, t1, out, decision) in enumerate(records):
        call = names[index]
        params = PARAMS.get(call, tuple(f"a{i}" for i in range(len(raw))))
        named = {p: _signed(int(v), call, p) for p, v in zip(params, raw)}
        texts = ["<unreadable>" if b is None else bytes(b).decode("utf-8", errors="replace") for b in path_bytes or ()]
        path = texts[0] if texts else None
        fd = named.get("fd")
        fd_path = None if fd is None else fds.paths.get(fd)
        resolved = None if path is None or fd is None else fds.joined(fd, path)
        if len(texts) > 1 and resolved is not None:  # rename, link: where it goes
            resolved = f"{resolved} -> {fds.joined(named.get('new_fd', -1), texts[1])}"
        rights = rights_names(named["rights"]) if "rights" in named else None
        moved = out if "count_out" in params and call != "poll_oneoff" else None
        if call == "random_get":
            moved = named.get("len")
        if call == "path_open" and out is not None and result == 0:
            shown = {k: v for k, v in named.items() if k not in ("path", "path_len", "fd_out", "rights", "inheriting")}
            shown["new_fd"] = out
        else:
            shown = {k: v for k, v in named.items()
                     if not k.endswith("_out") and k not in ("path", "path_len", "new_path", "new_len", "rights",
                                                              "inheriting")}
        args = ", ".join(f"{k}={v}" for k, v in shown.items())
        rows.append((
            seq, (t0 - started_ns) / 1e9, call, fd, fd_path, resolved, _flags(call, named) or None, rights, moved,
            args, result, None if result is None else errno_name(result), decision,
            None if t1 is None else (t1 - t0) / 1e3,
        ))
        fds.after(call, named, path, result, out)
    frame = pd.DataFrame.from_records(rows, columns=list(TRACE_COLUMNS))
    frame = frame.astype(TRACE_COLUMNS)
    frame.attrs["dropped"] = dropped
    return frame


def trace_records(frame: Any) -> list[dict[str, Any]]:
    """The trace as plain JSON-ready rows (missing values as None)."""
    if frame is None:
        return []
    return [{k: (None if v is None or v != v else v) for k, v in row.items()}  # NaN/NA to None
            for row in frame.astype(object).where(frame.notna(), None).to_dict("records")]


def trace_text(frame: Any) -> str:
    """One line per call, for a terminal: ``#3 +0.0041s path_open /etc/passwd SYMLINK_FOLLOW -> EACCES (deny) 68us``."""
    if frame is None or frame.empty:
        return "workbench: trace: no WASI calls"
    lines = []
    for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False):
        what = " ".join(_printable(str(x)) for x in (row.path or row.fd_path, row.flags,
                                                     row.bytes and f"{row.bytes} bytes") if x)
        result = "(no return)" if row.errno is None else row.errno
        decision = f" ({row.decision})" if row.decision else ""
        took = "" if row.duration_us is None else f" {row.duration_us:.0f}us"
        lines.append(f"workbench: trace: #{row.seq} +{row.time_s:.4f}s {row.call} {what} -> {result}{decision}{took}")
    if frame.attrs.get("dropped"):
        lines.append(f"workbench: trace: ... {frame.attrs['dropped']:,} more calls not kept")
    return "\n".join(lines)
