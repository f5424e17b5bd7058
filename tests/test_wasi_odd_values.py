"""A hostile guest passing odd numbers to WASI calls: the guard refuses undefined flag bits with
EINVAL (recorded, kill mode kills), nothing on the host traps or raises on any bit pattern, and a
value wasmtime's WASI itself traps on ends the run with a fault told in our words.

The defined bits below are written from the WASI preview 1 spec (wasi_snapshot_preview1.witx),
not imported from the code under test: they are the oracle.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from workbench import Sandbox
from workbench.runtime import RunResult

EINVAL = 28
# wasi_snapshot_preview1.witx: lookupflags (u32) symlink_follow; oflags (u16) creat directory excl trunc;
# fdflags (u16) append dsync nonblock rsync sync; fstflags (u16) atim atim_now mtim mtim_now;
# rights (u64) fd_datasync ... sock_accept: 30 flags
LOOKUP_OK, OFLAGS_OK, FDFLAGS_OK, FST_OK = 0b1, 0b1111, 0b11111, 0b1111
RIGHTS_OK = sum(1 << bit for bit in range(30))
U32, U64 = (1 << 32) - 1, (1 << 64) - 1

SIGS = {
    "path_open": "i32 i32 i32 i32 i32 i64 i64 i32 i32",
    "path_link": "i32 i32 i32 i32 i32 i32 i32",
    "path_filestat_get": "i32 i32 i32 i32 i32",
    "path_filestat_set_times": "i32 i32 i32 i32 i64 i64 i32",
    "fd_filestat_set_times": "i32 i64 i64 i32",
    "fd_fdstat_set_flags": "i32 i32",
    "fd_seek": "i32 i64 i32 i32",
    "fd_advise": "i32 i64 i64 i32",
    "fd_fdstat_set_rights": "i32 i64 i64",
    "clock_time_get": "i32 i64 i32",
    "fd_readdir": "i32 i32 i32 i64 i32",
}


def _const(kind: str, value: int) -> str:
    bits = 32 if kind == "i32" else 64
    value &= (1 << bits) - 1
    signed = value - (1 << bits) if value >> (bits - 1) else value
    return f"({kind}.const {signed})"


def call_probe(fn: str, *args: int) -> str:
    """``fn(*args)``, then ``proc_exit(errno)``: the run's exit code is the errno the guest saw.
    Memory: "a.txt" at 128, "b.txt" at 160; out-pointers at 16 and 512.  ``path_open`` is always
    imported: a run checks descriptor calls only when its guest can open files."""
    kinds = SIGS[fn].split()
    consts = " ".join(_const(k, v) for k, v in zip(kinds, args))
    return f"""(module
 (import "wasi_snapshot_preview1" "{fn}" (func $f (param {SIGS[fn]}) (result i32)))
 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
 {"" if fn == "path_open" else '(import "wasi_snapshot_preview1" "path_open" (func (param ' + SIGS["path_open"] + ') (result i32)))'}
 (memory (export "memory") 1)
 (data (i32.const 128) "a.txt")
 (data (i32.const 160) "b.txt")
 (func (export "_start") (call $exit (call $f {consts}))))
"""


def open_args(lookup: int = 0, oflags: int = 0, rights: int = 2, inheriting: int = 0, fdflags: int = 0) -> tuple[int, ...]:
    return (3, lookup, 128, 5, oflags, rights, inheriting, fdflags, 16)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "docs" / "private").mkdir(parents=True)
    (tmp_path / "docs" / "a.txt").write_text("public")
    return tmp_path


WRITE = ["filesystem:write:/docs"]
FINE = ["filesystem:write:/docs", "!filesystem:read:/docs/private"]


def refused(result: RunResult, argument: str) -> None:
    """The guest saw EINVAL, and the guard recorded a deny naming the argument and the bits."""
    assert result.fault is None, result.fault
    assert result.exit_code == EINVAL, (result.exit_code, result.events)
    denies = [e for e in result.events if e.decision == "deny" and e.errno == EINVAL]
    assert len(denies) == 1, result.events
    deny = denies[0]
    assert deny.detail["argument"] == argument
    assert deny.reason is not None and f"argument {argument}" in deny.reason
    assert deny.detail["value"] in deny.reason and deny.detail["defined"] in deny.reason
    assert "not defined by WASI" in deny.reason


# -- the guard: each flag word of each checked call, at -1, 2**31 / 2**63 and one undefined bit -------
GUARDED = [
    ("path_open", "lookup", lambda v: open_args(lookup=v), (2,)),
    ("path_open", "oflags", lambda v: open_args(oflags=v), (0x10, 0x10000)),
    ("path_open", "rights", lambda v: open_args(rights=v), (1 << 30, 1 << 40, 1 << 63)),
    ("path_open", "inheriting", lambda v: open_args(inheriting=v), (1 << 30, 1 << 63)),
    ("path_open", "fdflags", lambda v: open_args(fdflags=v), (0x20, 0x10000)),
    ("path_link", "old_flags", lambda v: (3, v, 128, 5, 3, 160, 5), (2,)),
    ("path_filestat_get", "flags", lambda v: (3, v, 128, 5, 512), (2,)),
    ("path_filestat_set_times", "flags", lambda v: (3, v, 128, 5, 0, 0, 0), (2,)),
    ("path_filestat_set_times", "fst_flags", lambda v: (3, 0, 128, 5, 0, 0, v), (0x10, 0x10000)),
]
CASES = [
    pytest.param(fn, arg, make, value, id=f"{fn}-{arg}-{value:#x}")
    for fn, arg, make, odd in GUARDED
    for value in (U32 if fn != "path_open" or arg not in ("rights", "inheriting") else U64, 1 << 31, *odd)
]


@pytest.mark.parametrize(("fn", "argument", "make", "value"), CASES)
@pytest.mark.parametrize("policy", [WRITE, FINE], ids=["folder", "fine"])
def test_undefined_flag_bits_are_refused_with_einval_and_recorded(
    root: Path, policy: list[str], fn: str, argument: str, make: object, value: int
) -> None:
    result = Sandbox(policy, root=root).run(call_probe(fn, *make(value)))  # type: ignore[operator]
    refused(result, argument)
    assert (root / "docs" / "a.txt").read_text() == "public"


def test_fd_filestat_set_times_is_checked_in_a_fine_run(root: Path) -> None:
    refused(Sandbox(FINE, root=root).run(call_probe("fd_filestat_set_times", 3, 0, 0, 0x30)), "fst_flags")


@pytest.mark.parametrize("fn,args", [
    ("path_open", open_args(oflags=-1)),
    ("path_filestat_set_times", (3, 0, 128, 5, 0, 0, 0x10)),
])
def test_kill_mode_kills_on_undefined_bits(root: Path, fn: str, args: tuple[int, ...]) -> None:
    result = Sandbox(WRITE, root=root, on_violation="kill").run(call_probe(fn, *args))
    assert result.exit_code is None and result.fault is None
    assert result.outcome == "stopped (filesystem)"
    assert [v.decision for v in result.violations] == ["kill"]
    assert "not defined by WASI" in result.violations[0].message


def test_defined_but_unusual_rights_are_not_refused(root: Path) -> None:
    every = RIGHTS_OK  # every defined right, sock_accept included
    result = Sandbox(WRITE, root=root).run(call_probe("path_open", *open_args(rights=every, inheriting=every)))
    assert result.fault is None and result.exit_code == 0, result.events
    assert not result.violations


def test_huge_timestamps_are_set_not_raised_on(root: Path) -> None:
    """A u64 timestamp past what the host's utime takes (the guard performs the call in a fine mount)."""
    for policy in (WRITE, FINE):
        result = Sandbox(policy, root=root).run(call_probe("path_filestat_set_times", 3, 0, 128, 5, U64, U64, 0b0101))
        assert result.fault is None and result.exit_code == 0, (policy, result.events)
        assert not [e for e in result.events if e.category == "filesystem" and e.action == "check"]


@pytest.mark.parametrize("field", ["dirfd", "path", "path_len", "fd_out"])
@pytest.mark.parametrize("value", [U32, 1 << 31])
def test_odd_non_flag_arguments_never_raise_in_the_guard(root: Path, field: str, value: int) -> None:
    args = list(open_args())
    args[{"dirfd": 0, "path": 2, "path_len": 3, "fd_out": 8}[field]] = value
    result = Sandbox(FINE, root=root).run(call_probe("path_open", *args))
    assert not [e for e in result.events if e.reason and "guard error" in e.reason], result.events
    if result.fault is not None:  # wasmtime's WASI traps on a pointer outside memory: told in our words
        assert result.fault.message.startswith("the guest passed"), result.fault
        assert "<wasm function" not in " ".join(result.fault.backtrace)


# -- wasmtime's own traps on argument values, outside the guard ---------------------------------------
WASMTIME_TRAPS = [
    pytest.param("fd_fdstat_set_flags", (1, 0xFFFF), "Fdflags", id="fdflags-undefined"),
    pytest.param("fd_fdstat_set_flags", (1, -1), None, id="fdflags-negative"),
    pytest.param("fd_seek", (1, 0, 3, 16), "Whence", id="whence-enum"),
    pytest.param("fd_advise", (1, 0, 0, 1 << 31), None, id="advice-2**31"),
    pytest.param("fd_fdstat_set_rights", (1, -1, 0), None, id="rights-negative"),
    pytest.param("fd_filestat_set_times", (3, 0, 0, 0x10), "Fstflags", id="fstflags-unguarded"),
    pytest.param("clock_time_get", (7, 0, 16), "Clockid", id="clockid-through-the-guard"),
]


@pytest.mark.parametrize(("fn", "args", "kind"), WASMTIME_TRAPS)
def test_a_wasmtime_trap_on_an_argument_is_told_in_our_words(root: Path, fn: str, args: tuple[int, ...],
                                                             kind: str | None) -> None:
    result = Sandbox(WRITE, root=root).run(call_probe(fn, *args))
    fault = result.fault
    assert fault is not None and fault.kind == "trap"
    assert fault.message.startswith("the guest passed a value outside the WASI type"), fault.message
    assert f"{fn}'s argument" in fault.message and "malformed or hostile module" in fault.message
    if kind is not None:
        assert f"WASI type {kind}" in fault.message
    assert fault.hint
    assert f"wasi_snapshot_preview1::{fn}" in fault.detail  # wasmtime's own text, for forensics
    assert not any(f.startswith(("<wasm function", "workbench_")) for f in fault.backtrace), fault.backtrace
    traps = [e for e in result.events if e.category == "trap"]
    assert len(traps) == 1 and traps[0].detail["invalid_argument"] == fn
    assert "wasi_snapshot_preview1" in traps[0].detail["wasmtime"]
    assert "hint:" in str(result)


def test_a_pointer_outside_memory_is_told_in_our_words(root: Path) -> None:
    fault = Sandbox(WRITE, root=root).run(call_probe("fd_readdir", 3, U32, 64, 0, 16)).fault
    assert fault is not None and fault.kind == "trap"
    assert fault.message.startswith("the guest passed") and "outside its memory" in fault.message
    assert "Pointer out of bounds" in fault.detail


def test_the_host_survives_and_runs_on(root: Path) -> None:
    sandbox = Sandbox(WRITE, root=root)
    for fn, args in [("path_open", open_args(rights=-1)), ("fd_fdstat_set_flags", (1, 0xFFFF))]:
        sandbox.run(call_probe(fn, *args))
    assert sandbox.run(call_probe("path_open", *open_args())).exit_code == 0


# -- any i32/i64 in path_open's flag words: refused exactly when a bit is undefined, never a trap -------
i32s = st.one_of(st.integers(0, U32), st.sampled_from([0, 1, 2, 0xF, 0x10, 0x1F, 0x20, 1 << 31, U32]))
i64s = st.one_of(st.integers(0, U64), st.sampled_from([0, 2, RIGHTS_OK, 1 << 29, 1 << 30, 1 << 63, U64]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lookup=i32s, oflags=i32s, rights=i64s, inheriting=i64s, fdflags=i32s)
@example(lookup=0, oflags=0, rights=U64, inheriting=0, fdflags=0)  # the review's case
@example(lookup=1, oflags=0, rights=2, inheriting=0, fdflags=0)
def test_path_open_flag_words_against_the_spec(root: Path, lookup: int, oflags: int, rights: int,
                                               inheriting: int, fdflags: int) -> None:
    bad = {name for name, value, ok in [("lookup", lookup, LOOKUP_OK), ("oflags", oflags, OFLAGS_OK),
                                          ("rights", rights, RIGHTS_OK), ("inheriting", inheriting, RIGHTS_OK),
                                          ("fdflags", fdflags, FDFLAGS_OK)] if value & ~ok}
    (root / "docs" / "a.txt").write_text("public")
    result = Sandbox(WRITE, root=root).run(call_probe("path_open", *open_args(lookup, oflags, rights, inheriting, fdflags)))
    assert result.fault is None, result.fault  # never wasmtime's trap, never the guard's
    assert not [e for e in result.events if e.reason and "guard error" in e.reason]
    einval = [e for e in result.events if e.decision == "deny" and e.errno == EINVAL and e.detail.get("argument")]
    if bad:
        assert result.exit_code == EINVAL
        assert len(einval) == 1 and einval[0].detail["argument"] in bad
    else:
        assert not einval
        assert result.exit_code != EINVAL or oflags & 0b11 == 0b11  # creat|directory: EINVAL from the call itself
