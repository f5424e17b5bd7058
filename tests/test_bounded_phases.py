"""Every phase a guest controls is bounded: compiling, instantiating, start functions (issue 10, point 5).

A module used to hold the host before its run began: wasmtime-py enumerates an
instance's exports, each lookup itself linear, so 25,000 exports took ~10 s and
100,000 took minutes, outside every deadline.  And a 36 kB module can take Cranelift
minutes to compile.  These tests pin the fixes: exports by name, start functions under
the deadline, compiling under shape and time bounds.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from pathlib import Path


import pytest
import wasmtime

import workbench.runtime.compiler as compiler
from workbench import probes
from workbench.errors import CompileError
from workbench.languages.wasm_binary import uleb
from workbench.runtime import CompileCache, Sandbox

PATH_OPEN = '(import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))'


def many_exports(count: int, *, guarded: bool) -> bytes:
    """A ~214 kB module (for 25,000) exporting one function ``count`` times; ``guarded``: it also
    imports path_open, so it runs behind the filesystem guard (the other instantiation path)."""
    lines = ["(module", PATH_OPEN if guarded else "", '(memory (export "memory") 1)', "(func $f)",
             '(func (export "_start"))', *(f'(export "e{i}" (func $f))' for i in range(count)), ")"]
    return wasmtime.wat2wasm("\n".join(lines))


@pytest.fixture(scope="module")
def exports_25k() -> dict[bool, bytes]:
    return {guarded: many_exports(25_000, guarded=guarded) for guarded in (False, True)}


@pytest.mark.parametrize("guarded", [False, True], ids=["plain", "guarded"])
def test_exports_are_looked_up_by_name_never_enumerated(
    exports_25k: dict[bool, bytes], guarded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = Sandbox(["time:limit:10s"])
    sandbox.run(exports_25k[guarded], lang="wasm")  # compiled and checked once, outside the count
    calls = []
    original = wasmtime._ffi.wasmtime_instance_export_nth
    monkeypatch.setattr(wasmtime._ffi, "wasmtime_instance_export_nth", lambda *a: calls.append(1) or original(*a))
    result = sandbox.run(exports_25k[guarded], lang="wasm")
    assert result.ok, result.violations
    assert calls == []  # main walked all 25,002 exports, each lookup linear: ~10 s


@pytest.mark.parametrize("guarded", [False, True], ids=["plain", "guarded"])
def test_a_module_with_25000_exports_runs_within_its_deadline(exports_25k: dict[bool, bytes], guarded: bool) -> None:
    result = Sandbox(["time:limit:2s"]).run(exports_25k[guarded], lang="wasm")
    assert result.ok and not result.violations, result.violations  # was stopped (time) after ~10 s
    assert result.usage.memory_peak_bytes == 65536  # the monitor found the memory by name


def test_a_memory_exported_under_another_name_is_still_measured() -> None:
    source = '(module (memory (export "heap") 3) (func (export "_start")))'
    assert Sandbox().run(source).usage.memory_peak_bytes == 3 * 65536


SPIN_IN_START = """(module {imports}
  (func $spin (loop $l (br $l)))
  (start $spin)
  (memory (export "memory") 1)
  (func (export "_start")))"""


@pytest.mark.parametrize("guarded", [False, True], ids=["plain", "guarded"])
def test_a_start_function_that_never_returns_is_stopped_at_the_deadline(guarded: bool) -> None:
    source = SPIN_IN_START.format(imports=PATH_OPEN if guarded else "")
    result = Sandbox(["time:limit:300ms"]).run(source)
    assert [(v.kind, v.decision) for v in result.violations] == [("time", "kill")]
    assert result.outcome == "stopped (time)"


def test_cancel_stops_a_start_function() -> None:
    sandbox = Sandbox(["time:limit:30s"])
    threading.Timer(0.5, sandbox.cancel).start()
    started = time.monotonic()
    result = sandbox.run(SPIN_IN_START.format(imports=""))
    assert time.monotonic() - started < 20  # generous: the point is that it stops, not how fast
    assert not result.ok and result.violations


# -- compiling ---------------------------------------------------------------------------------


def nested_loops(depth: int, n_locals: int) -> bytes:
    """One function: ``depth`` nested loops around a body that updates ``n_locals`` i64 locals.
    Cranelift's work grows with depth × locals: (3000, 3000) is 36 kB and compiled for 37 s here."""
    inner = b"".join(b"\x20" + uleb(i) + b"\x42\x01\x7c\x21" + uleb(i) for i in range(n_locals))
    body = b"\x01" + uleb(n_locals) + b"\x7e" + b"\x03\x40" * depth + inner + b"\x0b" * depth + b"\x0b"

    def section(number: int, payload: bytes) -> bytes:
        return bytes([number]) + uleb(len(payload)) + payload

    return (b"\0asm\1\0\0\0" + section(1, b"\x01\x60\x00\x00") + section(3, b"\x01\x00")
            + section(7, b"\x01\x06_start\x00\x00") + section(10, b"\x01" + uleb(len(body)) + body))


def test_a_module_that_compiles_too_long_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiler, "COMPILE_BOUNDS", dataclasses.replace(compiler.COMPILE_BOUNDS, seconds=1.0))
    module = nested_loops(3000, 3000)
    assert len(module) < 40_000
    started = time.monotonic()
    with pytest.raises(CompileError, match="took longer than 1 s, so it was stopped") as caught:
        Sandbox(cache=CompileCache(tmp_path)).run(module, lang="wasm")
    assert caught.value.hint and "simplify" in caught.value.hint
    assert time.monotonic() - started < 30  # it would have taken 37 s or more; generous under load
    # the next compile gets a new helper
    monkeypatch.undo()
    assert Sandbox(cache=CompileCache(tmp_path)).run(probes.hello("after\n")).stdout == "after\n"


def test_a_compile_error_from_the_helper_is_explained_as_before(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match="not a valid WebAssembly module"):
        Sandbox(cache=CompileCache(tmp_path)).run(b"\x00asm\x01\x00\x00\x00\x01\x05\x01\x60\x00\x00", lang="wasm")


@pytest.mark.parametrize("field, value, message", [
    ("max_exports", 100, "number of exports 25,002 (the most is 100)"),
    ("max_functions", 1, "number of functions 2 (the most is 1)"),
    ("max_bytes", 1000, "size in bytes"),
    ("max_code_bytes", 5, "code section in bytes"),
])
def test_a_module_past_the_shape_bounds_is_refused_before_compiling(
    exports_25k: dict[bool, bytes], field: str, value: int, message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(compiler, "COMPILE_BOUNDS", dataclasses.replace(compiler.COMPILE_BOUNDS, **{field: value}))
    with pytest.raises(CompileError, match=re.escape(message)):
        Sandbox(cache=CompileCache(tmp_path)).run(exports_25k[False], lang="wasm")


def test_too_many_imports_are_refused_before_compiling(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    imports = "".join(f'(import "wasi_snapshot_preview1" "sched_yield" (func $y{i} (result i32)))' for i in range(1001))
    with pytest.raises(CompileError, match="number of imports 1,001 .the most is 1,000"):
        Sandbox(cache=CompileCache(tmp_path)).run(f'(module {imports} (func (export "_start")))')


def test_the_cpython_interpreter_is_inside_the_bounds() -> None:
    from workbench.languages.pyruntime import interpreter

    data = interpreter().module_bytes()
    assert len(data) > 25_000_000
    compiler.check_shape(data)  # the shape check accepts it (compiling it is every Python test's fixture)
    assert compiler.COMPILE_BOUNDS.time_limit(len(data)) > 200


def test_the_cli_reports_a_compile_bound_as_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from workbench.cli import main

    monkeypatch.setattr(compiler, "COMPILE_BOUNDS", dataclasses.replace(compiler.COMPILE_BOUNDS, max_exports=10))
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    module = tmp_path / "many.wasm"
    module.write_bytes(many_exports(20, guarded=False))
    assert main(["run", str(module)]) == 2
    err = capfd.readouterr().err
    assert err.startswith("workbench: error: module is too large to compile here: number of exports 22")
    assert "Traceback" not in err




def test_the_compile_helper_survives_interrupts_and_is_replaced_when_it_dies(tmp_path: Path) -> None:
    import os
    import signal

    Sandbox(cache=CompileCache(tmp_path)).run(probes.hello("one\n"))
    helper = compiler._helper
    assert helper is not None
    # a Jupyter kernel interrupt (or Ctrl-C) signals the whole process group: the helper ignores it
    os.kill(helper.proc.pid, signal.SIGINT)
    time.sleep(0.2)
    assert Sandbox(cache=CompileCache(tmp_path)).run(probes.hello("two\n")).stdout == "two\n"
    assert compiler._helper is helper and helper.proc.poll() is None
    os.kill(helper.proc.pid, signal.SIGKILL)  # killed between compiles: a new one takes over
    helper.proc.wait()
    assert Sandbox(cache=CompileCache(tmp_path)).run(probes.hello("three\n")).stdout == "three\n"
    assert compiler._helper is not helper


def test_ctrl_c_while_compiling_stops_the_helper(tmp_path: Path) -> None:
    import os
    import signal

    Sandbox(cache=CompileCache(tmp_path)).run(probes.hello())  # a helper is running
    helper = compiler._helper
    assert helper is not None
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        Sandbox(cache=CompileCache(tmp_path)).run(nested_loops(3000, 3000), lang="wasm")  # would take 37 s
    assert helper.proc.poll() is not None and compiler._helper is None


def test_without_an_interpreter_to_start_modules_compile_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiler.sys, "executable", "")
    helper = compiler._helper
    assert Sandbox(cache=CompileCache(tmp_path)).run(probes.hello("here\n")).stdout == "here\n"
    assert compiler._helper is helper  # no helper was started or used
    with pytest.raises(CompileError, match="number of exports"):  # the shape check still holds
        monkeypatch.setattr(compiler, "COMPILE_BOUNDS", dataclasses.replace(compiler.COMPILE_BOUNDS, max_exports=1))
        Sandbox(cache=CompileCache(tmp_path)).run(many_exports(5, guarded=False), lang="wasm")
