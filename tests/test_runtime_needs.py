"""What ``runtime=`` changes, checked without the scientific runtime installed: the clear error when
it is missing, the engine kept apart from the default guests', ``host::call`` offered to nothing
else, and the guest thread with a deep native stack.  (The runtime itself: tests/test_scientific.py.)"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from workbench import Sandbox, probes
from workbench.cli import main
from workbench.errors import LinkError, ModuleError, RuntimeMissingError, UnknownRuntimeError
from workbench.languages import Needs, Program
from workbench.policy import Limits
from workbench.runtime import host_call
from workbench.runtime.engine import NATIVE_STACK_HEADROOM, EngineSettings, native_stack_bytes
from workbench.runtime.needs import engine_settings, entry_export, needs_own_thread, on_thread_with_stack
from workbench.runtime.wasi import check_declared_imports
from workbench.languages import compile_to_wasm

HOST_CALL_WAT = """(module
  (import "host" "call" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")))"""


@pytest.fixture
def no_runtimes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "runtimes"
    monkeypatch.setenv("WORKBENCH_RUNTIMES_DIR", str(folder))
    return folder


def test_a_missing_runtime_is_a_clear_error_with_the_install_command(no_runtimes: Path) -> None:
    with pytest.raises(RuntimeMissingError) as caught:
        Sandbox().run("print(1)", lang="python", runtime="scientific")
    assert "the scientific runtime is not installed" in str(caught.value)
    assert caught.value.hint == "install it once with: workbench runtimes install scientific"
    assert isinstance(caught.value, ModuleError)
    assert not no_runtimes.exists() or list(no_runtimes.iterdir()) == []  # asking never installs anything


def test_runtime_names_and_languages_are_checked(no_runtimes: Path) -> None:
    with pytest.raises(UnknownRuntimeError, match="no runtime called 'numpy'"):
        Sandbox().run("print(1)", runtime="numpy")
    with pytest.raises(ModuleError, match="is for lang='python' only"):
        Sandbox().run(probes.hello(), lang="wat", runtime="scientific")
    assert Sandbox().run("print('hi')", lang="python", runtime="default").stdout == "hi\n"


def test_cli_run_with_a_missing_runtime_exits_2_with_the_hint(no_runtimes: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "x.py"
    script.write_text("print(1)\n")
    assert main(["run", str(script), "--runtime", "scientific"]) == 2
    err = capsys.readouterr().err
    assert "not installed" in err and "hint: install it once with: workbench runtimes install scientific" in err


def test_guest_modules_cannot_import_host_call() -> None:
    with pytest.raises(LinkError, match=r"host::call \(func\)"):
        Sandbox().run(HOST_CALL_WAT, lang="wat")
    wasm = compile_to_wasm("wat", HOST_CALL_WAT)
    with pytest.raises(LinkError):
        check_declared_imports(wasm)
    check_declared_imports(wasm, {(host_call.MODULE, host_call.NAME): host_call.SIGNATURE})  # only when given
    with pytest.raises(LinkError, match="host::call"):
        check_declared_imports(wasm, {(host_call.MODULE, host_call.NAME): (("i32",), ("i32",))})


def test_the_host_call_stub_refuses_and_reports_each_call() -> None:
    seen: list[int] = []
    with host_call.serving(seen.append):
        assert host_call._call(16, 0xFFFF_FFFF, 0, 0) == host_call.REFUSED == -1
    assert seen == [0xFFFF_FFFF]
    assert host_call._call(16, 5, 0, 0) == -1 and seen == [0xFFFF_FFFF]  # outside a run: refused all the same


def _program(needs: Needs | None) -> Program:
    return Program(lang="python", name="p", sha256="0" * 64, wasm=lambda: b"", needs=needs)


def test_the_scientific_engine_is_keyed_apart_and_the_default_is_unchanged() -> None:
    limits = Limits(stack_bytes=512 * 1024)
    plain = engine_settings(_program(None), limits, stack_from_policy=False)
    assert plain == EngineSettings(fuel=False, max_wasm_stack=512 * 1024, debug_info=False)
    assert "exceptions" not in plain.artifact_fingerprint()
    needs = Needs(entry="run", wasm_stack=8 << 20, exceptions=True)
    own = engine_settings(_program(needs), limits, stack_from_policy=False)
    assert own.max_wasm_stack == 8 << 20 and own.exceptions
    assert own.artifact_fingerprint() != plain.artifact_fingerprint()
    # a policy's own stack:limit wins, even when smaller than the runtime's
    assert engine_settings(_program(needs), limits, stack_from_policy=True).max_wasm_stack == 512 * 1024
    assert entry_export(_program(needs), "_start") == "run" and entry_export(_program(None), "_start") == "_start"


def test_a_deep_stack_run_goes_to_a_thread_that_can_hold_it() -> None:
    needs = Needs(wasm_stack=64 << 20)
    assert needs_own_thread(_program(needs), 64 << 20)
    assert not needs_own_thread(_program(None), 64 << 20)  # a policy's stack is refused as before instead
    seen: dict[str, object] = {}

    def work() -> int:
        seen["thread"] = threading.current_thread().name
        seen["stack"] = native_stack_bytes()
        return 7

    assert on_thread_with_stack(work, 64 << 20, lambda: None) == 7
    assert seen["thread"] == "workbench-guest" and int(seen["stack"]) >= (64 << 20) + NATIVE_STACK_HEADROOM  # type: ignore[call-overload]

    def fails() -> int:
        raise ValueError("from the guest thread")

    with pytest.raises(ValueError, match="from the guest thread"):
        on_thread_with_stack(fails, 1 << 20, lambda: None)
