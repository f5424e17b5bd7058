"""Small guest modules that try one thing each: the probes of the demo, tests and checks.

Each function returns WAT text.  A probe that touches the filesystem prints one
line, ``ok: <first bytes read>`` or ``error: errno N (NAME)``, and exits 0 on
success, 1 on failure, so both a person and a test can read what happened.
Filesystem probes take the preopened directory descriptor to work from
(``dirfd=3`` is the first granted folder) and a path relative to it, exactly as
a guest's libc would call ``path_open``.
"""

from __future__ import annotations

__all__ = [
    "WASI_ERRNO",
    "hello",
    "read_file",
    "write_file",
    "link_file",
    "memory_bomb",
    "infinite_loop",
    "output_flood",
    "fuel_loop",
    "deep_recursion",
    "unreachable",
    "errno_name",
    "print_environ",
    "echo_stdin",
    "print_args",
]

#: WASI preview1 errno numbers worth naming in messages
WASI_ERRNO = {
    0: "SUCCESS", 2: "EACCES", 8: "EBADF", 20: "EEXIST", 28: "EINVAL", 29: "EIO", 31: "EISDIR",
    32: "ELOOP", 44: "ENOENT", 54: "ENOTDIR", 58: "ENOTSUP", 63: "EPERM", 69: "EROFS", 76: "ENOTCAPABLE",
}

# rights bits (WASI preview1)
FD_READ, FD_SEEK, FD_WRITE = 1 << 1, 1 << 2, 1 << 6
PATH_LINK_SOURCE, PATH_LINK_TARGET = 1 << 11, 1 << 12
OFLAG_CREAT, OFLAG_TRUNC = 1, 8


def errno_name(number: int) -> str:
    return WASI_ERRNO.get(number, f"errno {number}")


def _wat_string(text: str) -> str:
    return "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else f"\\{b:02x}" for b in text.encode())


# Memory map shared by the file probes:
#   0..16      iovec / scratch      16..20  opened fd / nread   20..24  nwritten
#   64..96     number formatting    128..   path (and the second path at 1024)
#   2048..     text constants       4096..  read buffer (60 kB)
_PRELUDE = """
 (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "path_link" (func $path_link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
 (memory (export "memory") 1)
 (data (i32.const 2048) "ok: ")
 (data (i32.const 2056) "error: errno ")
 (data (i32.const 2072) "\\0a")
 (func $print (param $ptr i32) (param $len i32)
   (i32.store (i32.const 0) (local.get $ptr))
   (i32.store (i32.const 4) (local.get $len))
   (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 20))))
 (func $print_u32 (param $n i32) (local $p i32)
   (local.set $p (i32.const 96))
   (loop $digits
     (local.set $p (i32.sub (local.get $p) (i32.const 1)))
     (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
     (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
     (br_if $digits (i32.ne (local.get $n) (i32.const 0))))
   (call $print (local.get $p) (i32.sub (i32.const 96) (local.get $p))))
 (func $fail (param $errno i32)
   (call $print (i32.const 2056) (i32.const 13))
   (call $print_u32 (local.get $errno))
   (call $print (i32.const 2072) (i32.const 1))
   (call $proc_exit (i32.const 1)))
"""


def _file_probe(body: str, path: str, second_path: str = "") -> str:
    data = f' (data (i32.const 128) "{_wat_string(path)}")\n'
    if second_path:
        data += f' (data (i32.const 1024) "{_wat_string(second_path)}")\n'
    return f"(module{_PRELUDE}{data} (func (export \"_start\") (local $err i32) (local $fd i32){body}))\n"


#: WAT: read up to 60 kB from ``$fd`` and print ``ok: <bytes>`` (or fail with the errno)
_READ_AND_PRINT = """
   (i32.store (i32.const 8) (i32.const 4096))
   (i32.store (i32.const 12) (i32.const 60000))
   (local.set $err (call $fd_read (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 16)))
   (if (local.get $err) (then (call $fail (local.get $err))))
   (call $print (i32.const 2048) (i32.const 4))
   (call $print (i32.const 4096) (i32.load (i32.const 16)))
   (call $print (i32.const 2072) (i32.const 1))"""


def _write_and_print(size: int) -> str:
    """Write the ``size`` bytes at 4096 to ``$fd``, then print ``ok:`` (or fail with the errno)."""
    return f"""
   (i32.store (i32.const 8) (i32.const 4096))
   (i32.store (i32.const 12) (i32.const {size}))
   (local.set $err (call $fd_write (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 16)))
   (if (local.get $err) (then (call $fail (local.get $err))))
   (call $print (i32.const 2048) (i32.const 4))
   (call $print (i32.const 2072) (i32.const 1))"""


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


def hello(text: str = "hello from the sandbox\n", stream: int = 1) -> str:
    """Write ``text`` to stdout (``stream=1``) or stderr (``stream=2``) through WASI ``fd_write``."""
    data = text.encode()
    return f"""(module
 (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (data (i32.const 64) "{_wat_string(text)}")
 (func $main (export "_start")
   (i32.store (i32.const 0) (i32.const 64))
   (i32.store (i32.const 4) (i32.const {len(data)}))
   (drop (call $fd_write (i32.const {stream}) (i32.const 0) (i32.const 1) (i32.const 16)))))
"""


def memory_bomb(pages_per_step: int = 1) -> str:
    """Grow linear memory until ``memory.grow`` refuses, then report how far it got and exit."""
    return f"""(module
 (memory (export "memory") 1)
 (func $bomb (export "_start")
   (loop $grow
     (br_if $grow (i32.ne (memory.grow (i32.const {pages_per_step})) (i32.const -1))))))
"""


def infinite_loop() -> str:
    """Spin forever without calling anything: only an epoch deadline can stop it."""
    return """(module
 (memory (export "memory") 1)
 (func $spin (export "_start") (loop $forever (br $forever))))
"""


def fuel_loop(iterations: int = 10**9) -> str:
    """Count to ``iterations``: a deterministic amount of work for fuel budgets."""
    return f"""(module
 (memory (export "memory") 1)
 (func $count (export "_start") (local $i i64)
   (loop $next
     (local.set $i (i64.add (local.get $i) (i64.const 1)))
     (br_if $next (i64.lt_u (local.get $i) (i64.const {iterations}))))))
"""


def output_flood(total_bytes: int = 50 * 10**6, chunk: int = 60000, stream: int = 1) -> str:
    """Write ``total_bytes`` of ``x`` to a stream in ``chunk``-byte writes, ignoring errors."""
    writes = -(-total_bytes // chunk)
    return f"""(module
 (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (func $flood (export "_start") (local $i i32)
   (memory.fill (i32.const 64) (i32.const 120) (i32.const {chunk}))
   (i32.store (i32.const 0) (i32.const 64))
   (i32.store (i32.const 4) (i32.const {chunk}))
   (loop $write
     (drop (call $fd_write (i32.const {stream}) (i32.const 0) (i32.const 1) (i32.const 16)))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br_if $write (i32.lt_u (local.get $i) (i32.const {writes}))))))
"""


def deep_recursion() -> str:
    """Recurse without end: a stack overflow."""
    return """(module
 (memory (export "memory") 1)
 (func $recurse (export "_start") (call $recurse)))
"""


def unreachable() -> str:
    """Trap at once with ``unreachable`` in a named function: a fault, not a violation."""
    return """(module
 (memory (export "memory") 1)
 (func $explode (call $inner))
 (func $inner unreachable)
 (func $main (export "_start") (call $explode)))
"""


def _print_string_list(sizes: str, get: str) -> str:
    """WAT that prints a WASI string list (``args_*`` or ``environ_*``), one entry per line."""
    return f"""(module
 (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "{sizes}" (func $sizes (param i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "{get}" (func $get (param i32 i32) (result i32)))
 (memory (export "memory") 2)
 (func $main (export "_start") (local $n i32) (local $i i32) (local $p i32) (local $len i32)
   (drop (call $sizes (i32.const 0) (i32.const 4)))
   (local.set $n (i32.load (i32.const 0)))
   (drop (call $get (i32.const 1024) (i32.const 8192)))
   (block $done (loop $each
     (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
     (local.set $p (i32.load (i32.add (i32.const 1024) (i32.mul (local.get $i) (i32.const 4)))))
     (local.set $len (i32.const 0))
     (block $end (loop $scan
       (br_if $end (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $len)))))
       (local.set $len (i32.add (local.get $len) (i32.const 1)))
       (br $scan)))
     (i32.store8 (i32.add (local.get $p) (local.get $len)) (i32.const 10))
     (i32.store (i32.const 16) (local.get $p))
     (i32.store (i32.const 20) (i32.add (local.get $len) (i32.const 1)))
     (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br $each)))))
"""


def print_environ() -> str:
    """Print every environment variable the guest can see, one ``NAME=value`` per line."""
    return _print_string_list("environ_sizes_get", "environ_get")


def echo_stdin() -> str:
    """Copy stdin to stdout until end of input."""
    return """(module
 (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (func $cat (export "_start")
   (loop $more
     (i32.store (i32.const 0) (i32.const 1024))
     (i32.store (i32.const 4) (i32.const 4096))
     (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
     (if (i32.load (i32.const 8)) (then
       (i32.store (i32.const 4) (i32.load (i32.const 8)))
       (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))
       (br $more))))))
"""


def print_args() -> str:
    """Print argv, one argument per line (argv[0] is the module name)."""
    return _print_string_list("args_sizes_get", "args_get")


# -- probes for the monitor and the validation suites (workbench/validation) --------------------

__all__ += [
    "guest_read",
    "guest_write",
    "table_bomb",
    "big_table",
    "many_tables",
    "divide_by_zero",
    "out_of_bounds",
    "bad_indirect_call",
    "fibonacci",
    "sleep",
]

# Preopen lookup as wasi-libc's open() does it: walk fd 3, 4, ... with fd_prestat_get, keep the
# longest preopen name that is a whole-segment prefix of the path, open the rest relative to it.
# Why: probes that hard-code dirfd=3 break when the sandbox adds a preopen (the guard's empty root).
# Memory: prestat at 32..40, preopen name at 1024 (up to 512 bytes), path at 128.
_RESOLVE_IMPORTS = """
 (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat_get (param i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $prestat_name (param i32 i32 i32) (result i32)))"""
_RESOLVE = """
 (func $matches (param $len i32) (param $n i32) (result i32) (local $i i32)
   (if (i32.gt_u (local.get $len) (local.get $n)) (then (return (i32.const 0))))
   (block $same (loop $cmp
     (br_if $same (i32.ge_u (local.get $i) (local.get $len)))
     (if (i32.ne (i32.load8_u (i32.add (i32.const 1024) (local.get $i)))
                 (i32.load8_u (i32.add (i32.const 128) (local.get $i))))
       (then (return (i32.const 0))))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br $cmp)))
   (if (i32.eq (local.get $len) (local.get $n)) (then (return (i32.const 1))))
   (if (i32.eq (i32.load8_u (i32.add (i32.const 128) (local.get $len))) (i32.const 47)) (then (return (i32.const 1))))
   (i32.and (i32.gt_u (local.get $len) (i32.const 0))
            (i32.eq (i32.load8_u (i32.add (i32.const 1023) (local.get $len))) (i32.const 47))))
 (func $resolve (param $n i32) (result i32) (local $fd i32) (local $best i32) (local $bestlen i32) (local $len i32)
   (local.set $best (i32.const -1))
   (local.set $bestlen (i32.const -1))
   (local.set $fd (i32.const 3))
   (block $end (loop $each
     (br_if $end (call $prestat_get (local.get $fd) (i32.const 32)))
     (local.set $len (i32.load (i32.const 36)))
     (if (i32.le_u (local.get $len) (i32.const 512)) (then
       (drop (call $prestat_name (local.get $fd) (i32.const 1024) (local.get $len)))
       (if (i32.and (call $matches (local.get $len) (local.get $n)) (i32.gt_s (local.get $len) (local.get $bestlen)))
         (then (local.set $best (local.get $fd)) (local.set $bestlen (local.get $len))))))
     (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
     (br $each)))
   (if (i32.lt_s (local.get $best) (i32.const 0)) (then (call $fail (i32.const 44))))
   ;; the rest of the path starts after the preopen's name and any slashes; kept at 24
   (block $done (loop $skip
     (br_if $done (i32.ge_u (local.get $bestlen) (local.get $n)))
     (br_if $done (i32.ne (i32.load8_u (i32.add (i32.const 128) (local.get $bestlen))) (i32.const 47)))
     (local.set $bestlen (i32.add (local.get $bestlen) (i32.const 1)))
     (br $skip)))
   (i32.store (i32.const 24) (local.get $bestlen))
   (local.get $best))
"""


def _resolved_open(path: str, oflags: int, rights: int) -> str:
    """WAT that resolves ``path`` like libc and leaves the opened fd in ``$fd`` (or fails the probe)."""
    n = len(path.encode())
    return f"""
   (local.set $dir (call $resolve (i32.const {n})))
   (local.set $err (call $path_open (local.get $dir) (i32.const 1)
       (i32.add (i32.const 128) (i32.load (i32.const 24))) (i32.sub (i32.const {n}) (i32.load (i32.const 24)))
       (i32.const {oflags}) (i64.const {rights}) (i64.const 0) (i32.const 0) (i32.const 16)))
   (if (local.get $err) (then (call $fail (local.get $err))))
   (local.set $fd (i32.load (i32.const 16)))"""


def _resolving_probe(body: str, path: str, extra_data: str = "") -> str:
    data = f' (data (i32.const 128) "{_wat_string(path)}")\n{extra_data}'
    return (
        f"(module{_RESOLVE_IMPORTS}{_PRELUDE}{_RESOLVE}{data} (func (export \"_start\") (local $err i32) (local $fd i32) (local $dir i32)"
        f"{body}))\n"
    )


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


def table_bomb(step: int = 1000) -> str:
    """Grow a funcref table by ``step`` elements until ``table.grow`` refuses; print ``table: N``."""
    body = f"""
   (loop $grow
     (br_if $grow (i32.ne (table.grow $t (ref.null func) (i32.const {step})) (i32.const -1))))
   (call $print (i32.const 2100) (i32.const 7))
   (call $print_u32 (table.size $t))
   (call $print (i32.const 2072) (i32.const 1))"""
    return (
        f'(module{_PRELUDE} (table $t 1 funcref)\n (data (i32.const 2100) "table: ")\n'
        f' (func (export "_start") (local $err i32) (local $fd i32){body}))\n'
    )


def big_table(elements: int) -> str:
    """A module whose table starts with ``elements`` elements (refused at instantiation if over the cap)."""
    return f'(module (memory (export "memory") 1) (table {elements} funcref) (func (export "_start")))\n'


def many_tables(count: int) -> str:
    """A module that defines ``count`` small tables (refused at instantiation if over the cap)."""
    tables = " ".join("(table 1 funcref)" for _ in range(count))
    return f'(module (memory (export "memory") 1) {tables} (func (export "_start")))\n'


def divide_by_zero() -> str:
    """Divide by zero in a named function: a fault (``integer_divide_by_zero``)."""
    return """(module
 (memory (export "memory") 1)
 (func $divide (param $d i32) (result i32) (i32.div_s (i32.const 1) (local.get $d)))
 (func $main (export "_start") (drop (call $divide (i32.load (i32.const 0))))))
"""


def out_of_bounds() -> str:
    """Store past the end of linear memory: a fault (``memory_out_of_bounds``)."""
    return """(module
 (memory (export "memory") 1)
 (func $poke (export "_start") (i32.store (i32.const 70000) (i32.const 1))))
"""


def bad_indirect_call() -> str:
    """Call a table entry through the wrong function type: a fault (``bad_signature``)."""
    return """(module
 (memory (export "memory") 1)
 (type $takes_i32 (func (param i32)))
 (table 1 funcref)
 (elem (i32.const 0) $answer)
 (func $answer (result i32) (i32.const 42))
 (func $main (export "_start") (call_indirect (type $takes_i32) (i32.const 1) (i32.const 0))))
"""


def fibonacci(n: int = 30) -> str:
    """Naive recursive Fibonacci: CPU-bound work full of calls (each call is an epoch check)."""
    return f"""(module
 (memory (export "memory") 1)
 (func $fib (param $n i32) (result i32)
   (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
     (then (local.get $n))
     (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                    (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
 (func $main (export "_start") (i32.store (i32.const 0) (call $fib (i32.const {n})))))
"""


def sleep(seconds: float) -> str:
    """Sleep in the host with WASI ``poll_oneoff`` on the monotonic clock (no wasm runs meanwhile)."""
    nanos = int(seconds * 1e9)
    return f"""(module
 (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (func $main (export "_start")
   (i32.store8 (i32.const 8) (i32.const 0))
   (i32.store (i32.const 16) (i32.const 1))
   (i64.store (i32.const 24) (i64.const {nanos}))
   (drop (call $poll (i32.const 0) (i32.const 256) (i32.const 1) (i32.const 512)))))
"""
