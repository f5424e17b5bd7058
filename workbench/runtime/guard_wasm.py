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
  host's raw ``check_*``/``done`` hooks.  Its functions ask ``check_*`` (a raw
  C-API callback, ~1 µs), return the refusal's errno or call the real WASI
  function, and report the outcome to ``done``.  The forwarder's table is then
  filled with the guard's functions.

Clocks are coarsened inside the guard, in wasm, with no host call at all.
A guest's start section runs before the table is filled; a path call from it
traps (fails closed).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "SIGNATURES",
    "CHECKED",
    "COARSENED",
    "GUARDED",
    "GuardLayout",
    "forwarder_wat",
    "guard_wat",
    "FN_IDS",
]

#: WASI preview1 signatures of every function the guard wraps: (params, results)
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "path_open": (("i32", "i32", "i32", "i32", "i32", "i64", "i64", "i32", "i32"), ("i32",)),
    "path_create_directory": (("i32", "i32", "i32"), ("i32",)),
    "path_remove_directory": (("i32", "i32", "i32"), ("i32",)),
    "path_unlink_file": (("i32", "i32", "i32"), ("i32",)),
    "path_rename": (("i32", "i32", "i32", "i32", "i32", "i32"), ("i32",)),
    "path_link": (("i32", "i32", "i32", "i32", "i32", "i32", "i32"), ("i32",)),
    "path_symlink": (("i32", "i32", "i32", "i32", "i32"), ("i32",)),
    "path_readlink": (("i32", "i32", "i32", "i32", "i32", "i32"), ("i32",)),
    "path_filestat_get": (("i32", "i32", "i32", "i32", "i32"), ("i32",)),
    "path_filestat_set_times": (("i32", "i32", "i32", "i32", "i64", "i64", "i32"), ("i32",)),
    "fd_renumber": (("i32", "i32"), ("i32",)),
    "clock_time_get": (("i32", "i64", "i32"), ("i32",)),
    "clock_res_get": (("i32", "i32"), ("i32",)),
    "fd_filestat_get": (("i32", "i32"), ("i32",)),
    "poll_oneoff": (("i32", "i32", "i32", "i32"), ("i32",)),
}

#: functions the host checks (path-resolving; fd_renumber to follow descriptors; poll_oneoff so a
#: sleep never outlasts the run's deadline, which an epoch check cannot interrupt)
CHECKED = (
    "path_open", "path_create_directory", "path_remove_directory", "path_unlink_file", "path_rename",
    "path_link", "path_symlink", "path_readlink", "path_filestat_get", "path_filestat_set_times",
    "fd_renumber", "poll_oneoff",
)
#: functions whose time values the guard rounds (no host call)
COARSENED = ("clock_time_get", "clock_res_get", "fd_filestat_get", "path_filestat_get")
GUARDED = frozenset(SIGNATURES)
FN_IDS = {name: number for number, name in enumerate(SIGNATURES)}

WASI = "wasi_snapshot_preview1"
# filestat: atim, mtim, ctim at byte offsets 40, 48, 56
_FILESTAT_TIMES = (40, 48, 56)


@dataclass(frozen=True)
class GuardLayout:
    """Which guarded functions one guest imports, in a fixed order (the table slots)."""

    names: tuple[str, ...]
    coarse_ns: int  # clock granularity in ns; 0 = precise clocks

    @property
    def checked(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if n in CHECKED)


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
    return f'(module\n{types}\n  (table (export "slots") {len(layout.names)} funcref)\n{funcs})\n'


def _round_i64_at(address: str, grain: int) -> str:
    """WAT that rounds the u64 nanoseconds at ``address`` down to ``grain``."""
    return (
        f"(i64.store {address} (i64.sub (i64.load {address}) (i64.rem_u (i64.load {address}) (i64.const {grain}))))"
    )


def _guard_body(name: str, layout: GuardLayout) -> str:
    n_params = len(SIGNATURES[name][0])
    call_real = f"(local.set $e (call $real_{name} {_args(name)}))"
    grain = layout.coarse_ns
    lines = []
    if name in CHECKED:
        lines.append(f"(local.set $e (call $check_{name} {_args(name)}))")
        lines.append("(if (local.get $e) (then (return (local.get $e))))")
    lines.append(call_real)
    if name in CHECKED:
        lines.append(f"(call $done (i32.const {FN_IDS[name]}) (local.get $e))")
    if grain and name in COARSENED:
        if name == "clock_time_get":
            ptr = f"(local.get {n_params - 1})"
            lines.append(f"(if (i32.eqz (local.get $e)) (then {_round_i64_at(ptr, grain)}))")
        elif name == "clock_res_get":
            ptr = "(local.get 1)"
            lines.append(
                f"(if (i32.eqz (local.get $e)) (then (if (i64.lt_u (i64.load {ptr}) (i64.const {grain})) "
                f"(then (i64.store {ptr} (i64.const {grain}))))))"
            )
        else:  # filestat buffers: the last parameter points at the struct
            base = f"(local.get {n_params - 1})"
            rounds = " ".join(_round_i64_at(f"(i32.add {base} (i32.const {o}))", grain) for o in _FILESTAT_TIMES)
            lines.append(f"(if (i32.eqz (local.get $e)) (then {rounds}))")
    lines.append("(local.get $e)")
    body = "\n      ".join(lines)
    return f'  (func (export "{name}") (type $t_{name}) (local $e i32)\n      {body})'


def guard_wat(layout: GuardLayout) -> str:
    types = "\n".join(f"  (type $t_{n} (func {_sig(n)}))" for n in layout.names)
    imports = ['  (import "env" "memory" (memory 0))']
    imports += [f'  (import "{WASI}" "{n}" (func $real_{n} (type $t_{n})))' for n in layout.names]
    imports += [f'  (import "workbench" "check_{n}" (func $check_{n} (type $t_{n})))' for n in layout.checked]
    if layout.checked:
        imports.append('  (import "workbench" "done" (func $done (param i32 i32)))')
    funcs = "\n".join(_guard_body(n, layout) for n in layout.names)
    return f'(module\n{types}\n' + "\n".join(imports) + f'\n  (export "memory" (memory 0))\n{funcs})\n'
