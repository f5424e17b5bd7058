"""Probes that read, write or link files: as a raw ``path_open`` on a descriptor, or as a C
program would, resolving an absolute path against the preopens."""

from __future__ import annotations

from ._wat import (
    FD_READ,
    FD_SEEK,
    FD_WRITE,
    OFLAG_CREAT,
    OFLAG_TRUNC,
    _READ_AND_PRINT,
    _file_probe,
    _resolved_open,
    _resolving_probe,
    _wat_string,
    _write_and_print,
)

__all__ = [
    "read_file",
    "write_file",
    "link_file",
    "guest_read",
    "guest_write",
]


def read_file(path: str, dirfd: int = 3, follow_symlinks: bool = True) -> str:
    """Open ``path`` (relative to ``dirfd``) for reading and print its first bytes."""
    n = len(path.encode())
    body = f"""
   (local.set $err (call $path_open (i32.const {dirfd}) (i32.const {int(follow_symlinks)})
       (i32.const 128) (i32.const {n}) (i32.const 0) (i64.const {FD_READ | FD_SEEK}) (i64.const 0)
       (i32.const 0) (i32.const 16)))
   (if (local.get $err) (then (call $fail (local.get $err))))
   (local.set $fd (i32.load (i32.const 16)))""" + _READ_AND_PRINT
    return _file_probe(body, path)


def write_file(path: str, text: str = "written by the guest\n", dirfd: int = 3) -> str:
    """Create/truncate ``path`` (relative to ``dirfd``) and write ``text`` to it."""
    n = len(path.encode())
    payload = text.encode()
    body = f"""
   (local.set $err (call $path_open (i32.const {dirfd}) (i32.const 1)
       (i32.const 128) (i32.const {n}) (i32.const {OFLAG_CREAT | OFLAG_TRUNC})
       (i64.const {FD_READ | FD_WRITE | FD_SEEK}) (i64.const 0) (i32.const 0) (i32.const 16)))
   (if (local.get $err) (then (call $fail (local.get $err))))
   (local.set $fd (i32.load (i32.const 16)))""" + _write_and_print(len(payload))
    return _file_probe(body, path).replace(
        ' (data (i32.const 128)', f' (data (i32.const 4096) "{_wat_string(text)}")\n (data (i32.const 128)', 1
    )


def link_file(existing: str, new: str, dirfd: int = 3, new_dirfd: int | None = None) -> str:
    """Try to create a hard link ``new`` → ``existing`` (both relative to their dirfds)."""
    new_dirfd = dirfd if new_dirfd is None else new_dirfd
    body = f"""
   (local.set $err (call $path_link (i32.const {dirfd}) (i32.const 0) (i32.const 128) (i32.const {len(existing.encode())})
       (i32.const {new_dirfd}) (i32.const 1024) (i32.const {len(new.encode())})))
   (if (local.get $err) (then (call $fail (local.get $err))))
   (call $print (i32.const 2048) (i32.const 4))
   (call $print (i32.const 2072) (i32.const 1))"""
    return _file_probe(body, existing, new)


def guest_read(path: str) -> str:
    """Read the absolute guest path ``path`` as a C program would (``open`` + ``read``) and print
    ``ok: <first bytes>``, or ``error: errno N`` (44, ENOENT, when no preopen covers the path)."""
    body = _resolved_open(path, 0, FD_READ | FD_SEEK) + _READ_AND_PRINT
    return _resolving_probe(body, path)


def guest_write(path: str, text: str = "written by the guest\n") -> str:
    """Create/truncate the absolute guest path ``path`` and write ``text``; prints ``ok:`` or ``error: errno N``."""
    payload = text.encode()
    body = _resolved_open(path, OFLAG_CREAT | OFLAG_TRUNC, FD_READ | FD_WRITE | FD_SEEK) + _write_and_print(len(payload))
    return _resolving_probe(body, path, f' (data (i32.const 4096) "{_wat_string(text)}")\n')
