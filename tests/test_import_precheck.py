"""A module's imports are read from its bytes and checked before it is compiled (issue 16, point 4),
and the compile cache does not key on settings that leave the compiled code alone (the stack cap)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import wasmtime
from hypothesis import HealthCheck, example, given, settings, strategies as st

from workbench.errors import LinkError
from workbench.runtime import CompileCache, Sandbox
from workbench.runtime.wasi import WASI_SIGNATURES, check_declared_imports, check_imports
from workbench.runtime.wasm_imports import DeclaredImport, declared_imports

_VALUE = st.sampled_from(["i32", "i64", "f32", "f64"])
_NAME = st.one_of(st.sampled_from(["wasi_snapshot_preview1", "env", "wasi_unstable", ""]), st.text(max_size=12))
_FIELD = st.one_of(st.sampled_from(sorted(WASI_SIGNATURES)), st.text(max_size=12))


def _wat_string(text: str) -> str:
    return '"' + "".join(f"\\{b:02x}" for b in text.encode("utf-8")) + '"'


@st.composite
def import_lines(draw: st.DrawFn) -> str:
    module, field = _wat_string(draw(_NAME)), _wat_string(draw(_FIELD))
    kind = draw(st.sampled_from(["func", "func", "func", "memory", "table", "global", "mutglobal"]))
    if kind == "func":
        params = " ".join(draw(st.lists(_VALUE, max_size=5)))
        results = " ".join(draw(st.lists(_VALUE, max_size=2)))
        return f"(import {module} {field} (func (param {params}) (result {results})))"
    if kind == "memory":
        return f"(import {module} {field} (memory {draw(st.integers(0, 3))}))"
    if kind == "table":
        return f"(import {module} {field} (table {draw(st.integers(0, 9))} funcref))"
    mutable = kind == "mutglobal"
    value = draw(_VALUE)
    return f"(import {module} {field} (global {'(mut ' + value + ')' if mutable else value}))"


def imports_by_wasmtime(wasm: bytes) -> list[DeclaredImport]:
    """The oracle: what wasmtime itself reads from the compiled module."""
    module = wasmtime.Module(wasmtime.Engine(), wasm)
    found = []
    for imp in module.imports:
        kind = type(imp.type).__name__.replace("Type", "").lower()
        if isinstance(imp.type, wasmtime.FuncType):
            params = tuple(str(p) for p in imp.type.params)
            results = tuple(str(r) for r in imp.type.results)
            found.append(DeclaredImport(imp.module, imp.name or "", kind, params, results))
        else:
            found.append(DeclaredImport(imp.module, imp.name or "", kind))
    return found


@given(st.lists(import_lines(), max_size=6), st.booleans())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(['(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))'], True)
def test_the_imports_read_from_the_bytes_are_the_ones_wasmtime_reads(lines: list[str], code: bool) -> None:
    body = '(func (export "_start"))' if code else ""
    wasm = wasmtime.wat2wasm(f"(module {' '.join(lines)} {body})")
    assert declared_imports(bytes(wasm)) == imports_by_wasmtime(bytes(wasm))


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_bytes_give_an_answer_or_none_and_never_an_exception(tail: bytes) -> None:
    answer = declared_imports(b"\0asm\x01\0\0\0" + tail)
    assert answer is None or all(isinstance(item, DeclaredImport) for item in answer)


@given(st.lists(import_lines(), min_size=1, max_size=4), st.integers(1, 40))
@settings(max_examples=100, deadline=None)
def test_a_cut_module_is_read_as_wasmtime_reads_it_or_not_at_all(lines: list[str], cut: int) -> None:
    """Cut anywhere: where the rest is still a module (a cut at a section's end), the reader
    names its imports as wasmtime does; otherwise compiling fails anyway, and the reader may only
    give up (None) or name imports the original really declared."""
    wasm = bytes(wasmtime.wat2wasm(f"(module {' '.join(lines)})"))
    cut_wasm = wasm[: max(8, len(wasm) - cut)]
    answer = declared_imports(cut_wasm)
    try:
        truth = imports_by_wasmtime(cut_wasm)
    except wasmtime.WasmtimeError:
        assert answer is None or answer == imports_by_wasmtime(wasm)[: len(answer)]
    else:
        assert answer == truth


def test_the_precheck_and_the_check_on_the_compiled_module_say_the_same() -> None:
    wasm = bytes(wasmtime.wat2wasm(
        '(module (import "env" "secret" (func (param i32))) (import "env" "mem" (memory 1))'
        ' (import "wasi_snapshot_preview1" "proc_exit" (func (param i64))))'
    ))
    with pytest.raises(LinkError) as early:
        check_declared_imports(wasm)
    with pytest.raises(LinkError) as late:
        check_imports(wasmtime.Module(wasmtime.Engine(), wasm))
    assert str(early.value) == str(late.value)
    assert "env::secret (func)" in str(early.value) and "proc_exit (i64) -> ()" in str(early.value)


def _big_refused_module(functions: int) -> str:
    body = " ".join(f'(func (export "f{n}") (result i32) (i32.add (i32.const {n}) (i32.const 1)))' for n in range(functions))
    return f'(module (import "env" "host_secret" (func)) {body} (func (export "_start")))'


def test_a_module_that_will_be_refused_is_not_compiled_first(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "cache")
    with pytest.raises(LinkError, match="env::host_secret"):
        Sandbox(cache=cache).run(_big_refused_module(2000), lang="wat")
    assert cache.compiles == 0
    assert not list((tmp_path / "cache").glob("*.cwasm")) if (tmp_path / "cache").exists() else True


RECURSE_20000 = """(module (memory (export "memory") 1)
 (func $r (param $n i32)
   (if (i32.gt_u (local.get $n) (i32.const 0)) (then (call $r (i32.sub (local.get $n) (i32.const 1))))))
 (func (export "_start") (call $r (i32.const 20000))))"""


def test_each_stack_limit_shares_one_compiled_artifact_and_keeps_its_own_cap(tmp_path: Path) -> None:
    """A recursion that fits a 4 MiB stack and not a 256 KiB one: both runs load one artifact,
    and each engine still enforces its own cap, whichever ran first."""
    cache = CompileCache(tmp_path / "cache")
    source = RECURSE_20000
    small = Sandbox(["stack:limit:256KiB"], cache=cache).run(source, lang="wat")
    big = Sandbox(["stack:limit:4MiB"], cache=cache).run(source, lang="wat")
    again_small = Sandbox(["stack:limit:256KiB"], cache=cache).run(source, lang="wat")
    assert cache.compiles == 1, (cache.compiles, cache.disk_hits)
    assert len(list((tmp_path / "cache").glob("*.cwasm"))) == 1
    assert [v.kind for v in small.violations] == ["stack"]
    assert [v.kind for v in again_small.violations] == ["stack"]
    assert big.violations == [] and big.exit_code == 0, json.dumps(str(big))
