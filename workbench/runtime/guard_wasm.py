"""The two tiny wasm modules that put the guard between a guest and wasmtime's WASI.

Why wasm and not a Python host function on the forwarding path: wasmtime's
WASI reads and writes "the caller's ``memory`` export", so it can only be called
from an instance that exports the guest's memory (design.md §5), and a Python
``Func`` costs ~19 µs a call.  So:

- the **forwarder** is instantiated first; it exports one function per guarded
  WASI import, each a ``call_indirect`` through its table, and the guest is
  linked against those exports;
- the **guard** is instantiated after the guest: it imports the guest's memory
  (re-exporting it as ``memory`` for WASI), the real WASI functions, and the
  host's raw ``check_*``/``done`` hooks.  The forwarder's table is then filled
  with the guard's functions.

A checked call asks the host first (``check_*``, a raw C-API callback).  The answer is
an ``i32``: its low 16 bits are an errno; :data:`HANDLED` means the host performed the
call itself (it resolves and acts on the object atomically, see :mod:`hostwalk`), so the
errno is the result; otherwise a non-zero errno refuses the call.  :data:`VERIFY` asks the
guard to read the inode of what the real call opened or described and hand it to
``done``, which may still revoke it (:data:`CLOSE`, :data:`WIPE`); :data:`STRIP_TRUNC` and
:data:`STRIP_CREAT` make ``path_open`` leave truncation and creation to the host (done
only once the opened file is proven to be the one checked: :data:`TRUNCATE`).  :data:`NOFOLLOW`
clears the call's follow-symlinks flag: for one name in the descriptor's own folder that is not a
symlink, the real call then reaches exactly the object at the checked path, with nothing to verify.

Calls on descriptors (``fd_write``, ``fd_filestat_set_times`` ...) are wrapped only
for runs with mounts whose rules are finer than a folder (``GuardLayout.fine``):
elsewhere wasmtime's own per-mount permissions already say everything.  Standard
streams (fd 0-2) never reach the host.

Clocks are coarsened inside the guard, in wasm, with no host call at all.
A guest's start section runs before the table is filled; a path call from it
traps (fails closed).
"""

from __future__ import annotations

from dataclasses import dataclass

from .guard_abi import SIGNATURES, param_index

__all__ = [
    "SIGNATURES",
    "CHECKED",
    "FD_CALLS",
    "COARSENED",
    "GUARDED",
    "GuardLayout",
    "forwarder_wat",
    "guard_wat",
    "FN_IDS",
    "HELPER_NAMES",
    "HANDLED",
    "VERIFY",
    "STRIP_TRUNC",
    "STRIP_CREAT",
    "NOFOLLOW",
    "CLOSE",
    "TRUNCATE",
    "WIPE",
]

#: path-resolving calls the host checks (fd_renumber to follow descriptors; poll_oneoff so a
#: sleep never outlasts the run's deadline, which an epoch check cannot interrupt)
PATH_CALLS = (
    "path_open", "path_create_directory", "path_remove_directory", "path_unlink_file", "path_rename",
    "path_link", "path_symlink", "path_readlink", "path_filestat_get", "path_filestat_set_times",
    "fd_renumber", "poll_oneoff",
)
#: calls on a descriptor, checked only in runs with fine rules (no ``done``: they are judged up front)
FD_CALLS = (
    "fd_filestat_set_times", "fd_filestat_set_size", "fd_allocate", "fd_write", "fd_pwrite", "fd_readdir",
    "fd_close",
)
CHECKED = PATH_CALLS + FD_CALLS
#: functions whose time values the guard rounds (no host call)
COARSENED = ("clock_time_get", "clock_res_get", "fd_filestat_get", "path_filestat_get")
#: imports the guard always wraps (the descriptor calls only in fine runs)
GUARDED = frozenset(PATH_CALLS + COARSENED)
#: real WASI functions the guard itself calls in fine runs (to check what path_open opened)
_HELPERS = ("fd_filestat_get", "fd_close", "fd_filestat_set_size")
FN_IDS = {name: number for number, name in enumerate(SIGNATURES)}

# the check/done protocol (module docstring)
HANDLED, VERIFY, STRIP_TRUNC, STRIP_CREAT, NOFOLLOW = 0x10000, 0x20000, 0x40000, 0x80000, 0x100000
CLOSE, TRUNCATE, WIPE = 0x10000, 0x20000, 0x40000
_ERRNO_MASK = 0xFFFF
_O_CREAT, _O_EXCL, _O_TRUNC = 1, 4, 8

WASI = "wasi_snapshot_preview1"
#: the two modules' names (their name section): a trap's backtrace names their frames
#: ``workbench_forwarder!...``, so they are told apart from the guest's own (traps.backtrace_of)
HELPER_NAMES = ("workbench_forwarder", "workbench_guard")
# filestat: atim, mtim, ctim at byte offsets 40, 48, 56; ino at 8
_FILESTAT_TIMES = (40, 48, 56)


@dataclass(frozen=True)
class GuardLayout:
    """Which guarded functions one guest imports, in a fixed order (the table slots).

    ``fine``: the run has mounts with rules finer than a folder, so descriptor calls are
    checked and ``path_open`` is verified after the fact."""

    names: tuple[str, ...]
    coarse_ns: int  # clock granularity in ns; 0 = precise clocks
    fine: bool = False

    @classmethod
    def for_imports(cls, imported: set[str], coarse_ns: int, fine: bool) -> "GuardLayout":
        fine = fine and "path_open" in imported  # without opening files, descriptor calls reach nothing new
        wrapped = GUARDED | (frozenset(FD_CALLS) if fine else frozenset())
        if "path_open" in imported:
            wrapped |= {"fd_close"}  # the guard counts the descriptors a guest holds (MAX_DESCRIPTORS)
        return cls(tuple(n for n in SIGNATURES if n in imported and n in wrapped), coarse_ns, fine)

    @property
    def checked(self) -> tuple[str, ...]:
        """The wrapped functions that ask the host (descriptor calls only in fine runs: elsewhere
        ``fd_close`` is only counted, in wasm)."""
        return tuple(n for n in self.names if n in PATH_CALLS or (self.fine and n in FD_CALLS))

    @property
    def reals(self) -> tuple[str, ...]:
        """The real WASI functions the guard imports, in import order (``fd_close`` wherever
        ``path_open`` is guarded: the host may withdraw a descriptor it just saw opened)."""
        wanted = _HELPERS if self.fine else ("fd_close",) if "path_open" in self.names else ()
        return self.names + tuple(h for h in wanted if h not in self.names)

    @property
    def has_done(self) -> bool:
        return any(n in PATH_CALLS for n in self.names)


def _sig(name: str) -> str:
    params, results = SIGNATURES[name]
    return f"(param {' '.join(params)}) (result {' '.join(results)})"


def _args(name: str) -> str:
    return " ".join(f"(local.get {i})" for i in range(len(SIGNATURES[name][0])))


def forwarder_wat(layout: GuardLayout) -> str:
    types = "\n".join(f'  (type $t_{n} (func {_sig(n)}))' for n in layout.names)
    funcs = "\n".join(
        f'  (func (export "{n}") (type $t_{n}) {_args(n)} (call_indirect (type $t_{n}) (i32.const {slot})))'
        for slot, n in enumerate(layout.names)
    )
    return f'(module ${HELPER_NAMES[0]}\n{types}\n  (table (export "slots") {len(layout.names)} funcref)\n{funcs})\n'


def _round_i64_at(address: str, grain: int) -> str:
    """WAT that rounds the u64 nanoseconds at ``address`` down to ``grain``."""
    return (
        f"(i64.store {address} (i64.sub (i64.load {address}) (i64.rem_u (i64.load {address}) (i64.const {grain}))))"
    )


def _verify_open(fd_out: int) -> list[str]:
    """After a successful path_open: the new descriptor's inode, read with fd_filestat_get into
    64 bytes at address 0, which are saved and restored around it (the guest is paused)."""
    saves = [f"(local.set $s{i} (i64.load offset={8 * i} (i32.const 0)))" for i in range(8)]
    restores = [f"(i64.store offset={8 * i} (i32.const 0) (local.get $s{i}))" for i in range(8)]
    return [
        f"(if (i32.and (i32.eqz (local.get $e)) (i32.ne (i32.and (local.get $c) (i32.const {VERIFY})) (i32.const 0)))",
        "  (then",
        f"    (local.set $nfd (i32.load (local.get {fd_out})))",
        *("    " + s for s in saves),
        "    (local.set $t (call $real_fd_filestat_get (local.get $nfd) (i32.const 0)))",
        "    (if (i32.eqz (local.get $t)) (then (local.set $ino (i64.load offset=8 (i32.const 0)))))",
        *("    " + r for r in restores),
        "  ))",
    ]


def _guard_body(name: str, layout: GuardLayout) -> str:
    grain = layout.coarse_ns
    locals_ = "(local $e i32) (local $c i32) (local $r i32) (local $t i32) (local $nfd i32) (local $ino i64)"
    if name == "path_open" and layout.fine:
        locals_ += " " + " ".join(f"(local $s{i} i64)" for i in range(8))
    lines: list[str] = []
    if name == "fd_close" and name not in layout.checked:  # counted in wasm, no host call (MAX_DESCRIPTORS)
        return (
            f'  (func (export "{name}") (type $t_{name}) {locals_}\n'
            f"      (local.set $e (call $real_fd_close (local.get 0)))\n"
            "      (if (i32.and (i32.eqz (local.get $e)) (i32.ge_u (local.get 0) (global.get $first)))\n"
            "        (then (global.set $closed (i32.add (global.get $closed) (i32.const 1)))))\n"
            "      (local.get $e))"
        )
    if name in layout.checked:
        if name in FD_CALLS:  # standard streams never reach the host
            fd = param_index(name, "fd")
            lines.append(f"(if (i32.le_u (local.get {fd}) (i32.const 2)) (then (return (call $real_{name} {_args(name)}))))")
        lines.append(f"(local.set $c (call $check_{name} {_args(name)}))")
        lines.append(
            f"(if (i32.and (local.get $c) (i32.const {HANDLED | _ERRNO_MASK})) "
            f"(then (return (i32.and (local.get $c) (i32.const {_ERRNO_MASK})))))"
        )
        if name in ("path_open", "path_filestat_get"):
            follow = param_index(name, "lookup" if name == "path_open" else "flags")
            lines.append(
                f"(if (i32.and (local.get $c) (i32.const {NOFOLLOW})) "
                f"(then (local.set {follow} (i32.and (local.get {follow}) (i32.const -2)))))"
            )
        if name == "path_open":
            oflags = param_index(name, "oflags")
            lines.append(
                f"(if (i32.and (local.get $c) (i32.const {STRIP_TRUNC})) "
                f"(then (local.set {oflags} (i32.and (local.get {oflags}) (i32.const {~_O_TRUNC})))))"
            )
            lines.append(
                f"(if (i32.and (local.get $c) (i32.const {STRIP_CREAT})) "
                f"(then (local.set {oflags} (i32.and (local.get {oflags}) (i32.const {~(_O_CREAT | _O_EXCL)})))))"
            )
    lines.append(f"(local.set $e (call $real_{name} {_args(name)}))")
    if name in PATH_CALLS:
        if name == "path_open" and layout.fine:
            lines.extend(_verify_open(param_index(name, "fd_out")))
        elif name == "path_open":  # the new descriptor, so the host may still withdraw it (CLOSE)
            lines.append(
                f"(if (i32.eqz (local.get $e)) (then (local.set $nfd (i32.load (local.get {param_index(name, 'fd_out')})))))"
            )
        elif name == "path_filestat_get":
            lines.append(
                f"(if (i32.and (i32.eqz (local.get $e)) (i32.ne (i32.and (local.get $c) (i32.const {VERIFY})) (i32.const 0))) "
                f"(then (local.set $ino (i64.load offset=8 (local.get {param_index(name, 'buf')})))))"
            )
        lines.append(f"(local.set $r (call $done (i32.const {FN_IDS[name]}) (local.get $e) (local.get $ino)))")
        if name == "path_open" and layout.fine:
            lines.append(
                f"(if (i32.and (local.get $r) (i32.const {TRUNCATE})) (then "
                "(local.set $t (call $real_fd_filestat_set_size (local.get $nfd) (i64.const 0))) "
                f"(if (local.get $t) (then (local.set $r (i32.or (i32.const {CLOSE}) (local.get $t)))))))"
            )
        if name == "path_open":
            lines.append(
                f"(if (i32.and (local.get $r) (i32.const {CLOSE})) (then (drop (call $real_fd_close (local.get $nfd)))))"
            )
        if name == "path_filestat_get":
            lines.append(
                f"(if (i32.and (local.get $r) (i32.const {WIPE})) "
                f"(then (memory.fill (local.get {param_index(name, 'buf')}) (i32.const 0) (i32.const 64))))"
            )
        lines.append(f"(local.set $e (i32.and (local.get $r) (i32.const {_ERRNO_MASK})))")
    if grain and name in COARSENED:
        if name == "clock_time_get":
            ptr = f"(local.get {param_index(name, 'time_out')})"
            lines.append(f"(if (i32.eqz (local.get $e)) (then {_round_i64_at(ptr, grain)}))")
        elif name == "clock_res_get":
            ptr = f"(local.get {param_index(name, 'resolution_out')})"
            lines.append(
                f"(if (i32.eqz (local.get $e)) (then (if (i64.lt_u (i64.load {ptr}) (i64.const {grain})) "
                f"(then (i64.store {ptr} (i64.const {grain}))))))"
            )
        else:  # filestat buffers
            base = f"(local.get {param_index(name, 'buf')})"
            rounds = " ".join(_round_i64_at(f"(i32.add {base} (i32.const {o}))", grain) for o in _FILESTAT_TIMES)
            lines.append(f"(if (i32.eqz (local.get $e)) (then {rounds}))")
    lines.append("(local.get $e)")
    body = "\n      ".join(lines)
    return f'  (func (export "{name}") (type $t_{name}) {locals_}\n      {body})'


def guard_wat(layout: GuardLayout) -> str:
    typed = dict.fromkeys(layout.names + layout.reals)
    types = "\n".join(f"  (type $t_{n} (func {_sig(n)}))" for n in typed)
    imports = ['  (import "env" "memory" (memory 0))']
    imports += [f'  (import "{WASI}" "{n}" (func $real_{n} (type $t_{n})))' for n in layout.reals]
    imports += [f'  (import "workbench" "check_{n}" (func $check_{n} (type $t_{n})))' for n in layout.checked]
    if layout.has_done:
        imports.append('  (import "workbench" "done" (func $done (param i32 i32 i64) (result i32)))')
    funcs = "\n".join(_guard_body(n, layout) for n in layout.names)
    # descriptors closed (numbered from ``first``, the first after the preopens), counted where the
    # host does not see closes; the host reads ``closed`` when it must know how many are open
    counters = (
        '  (global $first (export "first") (mut i32) (i32.const 3))\n'
        '  (global $closed (export "closed") (mut i32) (i32.const 0))\n'
    )
    return f'(module ${HELPER_NAMES[1]}\n{types}\n' + "\n".join(imports) + f'\n  (export "memory" (memory 0))\n{counters}{funcs})\n'
