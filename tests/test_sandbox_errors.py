"""Malformed input: one clear error each, and the process stays healthy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import probes
from workbench.errors import CapabilityError, CompileError, LinkError, ModuleError, PolicyError
from workbench.runtime import Sandbox


def still_healthy() -> None:
    assert Sandbox().run(probes.hello("alive\n")).stdout == "alive\n"


def test_invalid_wat_gives_line_and_column() -> None:
    source = "(module\n  (func $main (export \"_start\")\n    (i32.bogus)))"
    with pytest.raises(CompileError) as caught:
        Sandbox().run(source, lang="wat")
    assert (caught.value.line, caught.value.column) == (3, 6)
    assert "line 3, column 6" in str(caught.value)
    still_healthy()


@pytest.mark.parametrize("data", [b"MZ\x90\x00 not wasm", b"\x00asm\x01\x00\x00\x00garbage", b"\x00asm"])
def test_bytes_that_are_not_wasm(data: bytes) -> None:
    with pytest.raises(CompileError) as caught:
        Sandbox().run(data, lang="wasm")
    assert "WebAssembly" in str(caught.value)
    still_healthy()


def test_undetectable_source_says_how_to_choose() -> None:
    with pytest.raises(ModuleError) as caught:  # not wasm, not text: nothing to detect
        Sandbox().run(b"\x01\x02\xff\xfe binary")
    assert "lang=" in str(caught.value)


def test_module_importing_ungranted_functions() -> None:
    source = """(module
      (import "env" "open_socket" (func $s (result i32)))
      (import "env" "memory" (memory 1))
      (func (export "_start") (drop (call $s))))"""
    with pytest.raises(LinkError) as caught:
        Sandbox().run(source)
    assert caught.value.imports == ["env::open_socket (func)", "env::memory (memory)"]
    assert "not granted" in str(caught.value)
    still_healthy()


def test_missing_entry_point_lists_exports() -> None:
    with pytest.raises(ModuleError) as caught:
        Sandbox().run('(module (func (export "main")))')
    assert "main" in str(caught.value) and "_start" in str(caught.value)


def test_unknown_capability_suggests_the_nearest() -> None:
    with pytest.raises(CapabilityError) as caught:
        Sandbox(["filesytem:read:/docs"])
    assert caught.value.suggestion == "filesystem"
    assert "did you mean" in str(caught.value)
    still_healthy()


def test_granted_folder_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        Sandbox(["filesystem:read:/nope"], root=tmp_path)
    assert "/nope" in str(caught.value) and "does not exist" in str(caught.value)
    still_healthy()


def test_errors_are_builtin_subclasses() -> None:
    assert issubclass(CapabilityError, ValueError)
    assert issubclass(CompileError, ValueError)


def test_no_native_backtraces_even_with_rust_backtrace(tmp_path: Path) -> None:
    """Run the CLI with RUST_BACKTRACE=1 on a trapping module and on a broken one."""
    trap = tmp_path / "trap.wat"
    trap.write_text(probes.unreachable())
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(b"\x00asm\x01\x00\x00\x00\x01\xff")
    env = dict(os.environ, RUST_BACKTRACE="full")
    for path in (trap, broken):
        proc = subprocess.run([sys.executable, "-m", "workbench.cli", "run", str(path)],
                              capture_output=True, text=True, env=env, timeout=60)
        text = proc.stdout + proc.stderr
        assert proc.returncode in (2, 4), text
        for marker in ("stack backtrace", "Stack backtrace", ".rs:", "rust_begin_unwind", "Traceback"):
            assert marker not in text, text


def test_processes_exit_without_native_panics() -> None:
    """wasmtime's worker threads release output callbacks just after a run; a process that
    exits at once must wait for them, or Rust prints a panic on the way out (it did, about
    one exit in three, before runtime/shutdown.py)."""
    script = "from workbench import probes\nfrom workbench.runtime import Sandbox\nSandbox().run(probes.hello())\n"
    for _ in range(10):
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0
        assert "panicked" not in proc.stderr and "stack backtrace" not in proc.stderr, proc.stderr


def test_network_and_module_call_grants_are_enforced_and_give_no_warning() -> None:
    """network: and module:call: reach the guest through /dev/workbench now (issue 12): granting them
    warns of nothing, and the guest sees exactly the nodes they grant."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sandbox = Sandbox(["network:http:localhost", "module:call:parser", "time:limit:2s"])
    result = sandbox.run("import os\nprint(sorted(os.listdir('/dev/workbench')), os.listdir('/dev/workbench/call'))",
                         "python")
    assert result.stdout.strip() == "['call', 'http', 'workbench_guest.py'] ['parser']", result.stderr


# -- a module that can never be linked is bad input, not a guest fault (issue 10, point 6) ------


def test_the_wasi_signature_table_is_wasmtimes_own() -> None:
    """The table the import check uses, against the definitions wasmtime's linker provides."""
    import wasmtime

    from workbench.runtime.wasi import WASI_MODULE, WASI_SIGNATURES

    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    for name, (params, results) in WASI_SIGNATURES.items():
        func = linker.get(store, WASI_MODULE, name)
        assert isinstance(func, wasmtime.Func), name
        ty = func.type(store)
        assert (tuple(map(str, ty.params)), tuple(map(str, ty.results))) == (params, results), name


def test_a_wasi_import_with_the_wrong_signature_is_a_link_error() -> None:
    # proc_exit(i64) used to instantiate-fail inside the run, reported as the guest's fault
    source = """(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i64)))
      (memory (export "memory") 1)
      (func (export "_start") (call $exit (i64.const 3))))"""
    with pytest.raises(LinkError) as caught:
        Sandbox().run(source)
    assert caught.value.imports == ["wasi_snapshot_preview1::proc_exit (i64) -> (), preview1 has (i32) -> ()"]
    assert "wrong signature" in str(caught.value) and caught.value.hint
    still_healthy()


def test_every_wasi_function_is_checked_for_its_signature() -> None:
    from workbench.runtime.wasi import WASI_SIGNATURES

    for name, (params, results) in WASI_SIGNATURES.items():
        wrong = (*params, "i64")  # one parameter too many
        source = (
            f'(module (import "wasi_snapshot_preview1" "{name}" (func (param {" ".join(wrong)})'
            f' {"(result " + " ".join(results) + ")" if results else ""}))'
            ' (memory (export "memory") 1) (func (export "_start")))'
        )
        with pytest.raises(LinkError, match="wrong signature"):
            Sandbox().run(source)


def test_a_relative_host_folder_is_refused_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ';host=docs' used to mean <cwd>/docs: another folder for every place the process started in
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CapabilityError, match="not an absolute path") as caught:
        Sandbox(["filesystem:read:/docs;host=docs"], root=tmp_path)
    assert caught.value.hint and "~/path" in caught.value.hint
    sandbox = Sandbox([f"filesystem:read:/docs;host={tmp_path / 'docs'}"], root=tmp_path)
    assert sandbox.mounts[0].host_path == str(tmp_path / "docs")


def test_a_granted_folder_the_host_cannot_look_at_is_a_policy_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from workbench.runtime import plan as plan_module

    def refuse(*_: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", "/root/secret")

    monkeypatch.setattr(plan_module, "plan_mounts", refuse)
    with pytest.raises(PolicyError, match="cannot use a granted folder: Permission denied ./root/secret."):
        Sandbox(["filesystem:read:/docs;host=/root/secret"], root=tmp_path)
