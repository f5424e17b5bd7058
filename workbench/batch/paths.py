"""Reading a job's source file below one folder, and nowhere else.

A JSON Lines jobs file may come from someone else (a class's submission manifest, a plugin
catalogue), and its ``path`` fields are read on the client, with the client's rights.  So a
path is read only below the jobs file's folder (or the folder given as ``--jobs-root``):

- an absolute path, a ``..`` component, a NUL byte or an empty path is refused;
- no symlink is followed, anywhere on the way: each folder is opened relative to the one
  before it with ``O_NOFOLLOW`` (``openat``), so a symlink swapped in between a check and the
  read cannot lead out (there is no separate check to race: the walk *is* the check);
- the file itself must be a regular file (opened ``O_NONBLOCK``, so a FIFO cannot hang the
  batch; a device is refused).

Every refusal is a :class:`~workbench.errors.BatchError` naming the job and the path, raised
before anything runs (the CLI exits 2).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import BatchError

__all__ = ["read_below"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _refuse(job: str, path: object, why: str, root: Path) -> BatchError:
    return BatchError(f"job {job!r}: the path {path!r} {why}",
                      hint=f"a job's path names a file below {root} (the jobs file's folder, or --jobs-root DIR), "
                           "relative to it: no absolute path, no '..', no symlink")


def read_below(root: Path, path: object, job: str) -> bytes:
    """The bytes of the regular file ``path`` (relative, ``/``-separated) names below ``root``."""
    if not isinstance(path, str) or not path:
        raise _refuse(job, path, "is not a relative file path", root)
    if "\0" in path:
        raise _refuse(job, path, "holds a NUL byte", root)
    if path.startswith("/") or os.path.isabs(path):
        raise _refuse(job, path, "is absolute", root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(job, path, "climbs out with '..'", root)
    if not parts:
        raise _refuse(job, path, "names a folder, not a file", root)
    fds: list[int] = []
    try:
        try:
            fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)))
        except OSError as exc:
            raise BatchError(f"job {job!r}: cannot open the jobs folder {root}: {exc.strerror or exc}") from exc
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            try:
                fds.append(os.open(part, _FILE_FLAGS if last else _DIR_FLAGS, dir_fd=fds[-1]))
            except OSError as exc:
                so_far = "/".join(parts[: index + 1])
                if exc.errno in (errno.ELOOP, errno.EMLINK) or (exc.errno == errno.ENOTDIR and _is_link(fds[-1], part)):
                    raise _refuse(job, path, f"goes through a symlink ({so_far!r}); symlinks are not followed",
                                  root) from exc
                if exc.errno == errno.ENOENT:
                    raise _refuse(job, path, f"does not exist below {root}", root) from exc
                raise _refuse(job, path, f"cannot be opened ({so_far!r}: {exc.strerror or exc})", root) from exc
        info = os.fstat(fds[-1])
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(job, path, "is not a regular file", root)
        with os.fdopen(os.dup(fds[-1]), "rb") as file:
            return file.read()
    finally:
        for fd in fds:
            os.close(fd)


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
