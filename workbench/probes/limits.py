"""Probes that try one limit or fault each (memory, tables, CPU, fuel, output, stack, traps),
and the small programs that print, echo or sleep."""

from __future__ import annotations

from ._wat import (
    _PRELUDE,
    _wat_string,
)

__all__ = [
    "hello",
    "memory_bomb",
    "infinite_loop",
    "fuel_loop",
    "output_flood",
    "deep_recursion",
    "unreachable",
    "print_environ",
    "echo_stdin",
    "print_args",
    "table_bomb",
    "big_table",
    "many_tables",
    "divide_by_zero",
    "out_of_bounds",
    "bad_indirect_call",
    "fibonacci",
    "sleep",
]


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
