"""Small guest modules that try one thing each: the probes of the demo, tests and checks.

Each function returns WAT text.  A probe that touches the filesystem prints one
line, ``ok: <first bytes read>`` or ``error: errno N (NAME)``, and exits 0 on
success, 1 on failure, so both a person and a test can read what happened.
Filesystem probes take the preopened directory descriptor to work from
(``dirfd=3`` is the first granted folder) and a path relative to it, exactly as
a guest's libc would call ``path_open``.
"""

from __future__ import annotations

from . import files, limits
from ._wat import WASI_ERRNO, errno_name
from .files import read_file, write_file, link_file, guest_read, guest_write
from .limits import (
    hello,
    memory_bomb,
    infinite_loop,
    fuel_loop,
    output_flood,
    deep_recursion,
    unreachable,
    print_environ,
    echo_stdin,
    print_args,
    table_bomb,
    big_table,
    many_tables,
    divide_by_zero,
    out_of_bounds,
    bad_indirect_call,
    fibonacci,
    sleep,
)

__all__ = ["WASI_ERRNO", "errno_name", *files.__all__, *limits.__all__]
