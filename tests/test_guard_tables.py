"""The guard's pure-Python parts, without wasmtime: its ABI table and its descriptor table."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.runtime.fdtable import FdEntry, FdTable, MountRoot
from workbench.runtime.guard_abi import CALLS, SIGNATURES, param_index
from workbench.runtime.guard_wasm import CHECKED, COARSENED, FD_CALLS
from workbench.runtime.wasi import WASI_SIGNATURES


def test_the_guard_abi_agrees_with_wasi_preview1() -> None:
    """Names are the guard's; the types must be preview 1's (checked against wasmtime elsewhere)."""
    for name in CALLS:
        assert SIGNATURES[name] == WASI_SIGNATURES[name], name
    assert set(CHECKED) | set(COARSENED) <= set(CALLS)
    assert all(param_index(name, "fd") == 0 for name in FD_CALLS)
    assert param_index("path_open", "oflags") == 4 and param_index("path_open", "fd_out") == 8


MOUNT = MountRoot("/work", "/host/work", None, True, False, True)


def test_renumber_moves_an_entry_and_drops_the_one_it_replaces() -> None:
    table = FdTable()
    table.opened(3, FdEntry("/work", MOUNT))
    table.opened(5, FdEntry("/work/a", MOUNT))
    table.renumbered(5, 3)
    assert table.get(5) is None and table.get(3) is not None and table.get(3).path == "/work/a"  # type: ignore[union-attr]
    table.renumbered(9, 3)  # an unknown source: the target is closed all the same
    assert table.get(3) is None


def test_a_rename_moves_every_descriptor_at_or_below_it_and_nothing_else() -> None:
    table = FdTable()
    for fd, path in [(4, "/work/sub"), (5, "/work/sub/deep"), (6, "/work/subway"), (7, "/work")]:
        table.opened(fd, FdEntry(path, MOUNT))
    table.renamed("/work/sub", "/work/moved")
    assert [table.get(fd).path for fd in (4, 5, 6, 7)] == [  # type: ignore[union-attr]
        "/work/moved", "/work/moved/deep", "/work/subway", "/work"]


def test_host_descriptors_are_released_when_replaced_closed_or_at_the_end(tmp_path: Path) -> None:
    table = FdTable()
    fds = [os.open(tmp_path, os.O_RDONLY) for _ in range(3)]
    table.opened(4, FdEntry("/a", MOUNT, host_fd=fds[0]))
    table.opened(4, FdEntry("/b", MOUNT, host_fd=fds[1]))  # replaces: fds[0] closed
    table.opened(5, FdEntry("/c", MOUNT, host_fd=fds[2]))
    table.closed(5)
    assert [_is_open(fd) for fd in fds] == [False, True, False]
    table.close_all()
    assert not _is_open(fds[1])


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
