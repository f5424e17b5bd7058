"""The WAT both kinds of probe are built from: errno names, rights bits, the shared prelude
(printing, failing with an errno), reading and writing a descriptor, and the libc-style
preopen lookup."""

from __future__ import annotations

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
