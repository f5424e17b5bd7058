"""The magics in an in-process IPython shell (no kernel: the text-only path), fast.

The same magics on a real kernel, with widgets, are in test_jupyter_notebooks.py
and test_jupyter_kernel.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from workbench import Policy, RunResult, probes
from workbench.errors import CapabilityError, CompileError, ModuleError, SandboxViolation

SPIN = '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'


@pytest.fixture
def ip(workspace: Path) -> Iterator[Any]:
    old = os.getcwd()
    os.chdir(workspace)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "workbench")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "workbench")
        shell.user_ns.clear()
        InteractiveShell.clear_instance()
        os.chdir(old)


def cell(ip: Any, line: str, body: str) -> Any:
    return ip.run_cell_magic("sandbox", line, body)


def test_load_ext_is_silent_and_registers_everything(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("unload_ext", "workbench")
    capsys.readouterr()
    ip.run_line_magic("load_ext", "workbench")
    assert capsys.readouterr() == ("", "")
    ip.run_line_magic("reload_ext", "workbench")  # loading again is harmless
    magics = ip.magics_manager.magics
    assert "sandbox" in magics["cell"] and "sandbox" in magics["line"]
    assert {"sandbox_policy", "sandbox_audit"} <= set(magics["line"])


def test_help_has_option_groups_and_examples(ip: Any) -> None:
    doc = ip.magics_manager.magics["cell"]["sandbox"].__doc__
    for heading in ("capabilities:", "limits (shortcuts", "the module:", "results and violations:", "display:", "examples:"):
        assert heading in doc, heading
    assert "--timeout T" in doc and "%%sandbox reader --cap filesystem:read:/docs" in doc
    assert doc.startswith("usage: %%sandbox ["), doc[:80]  # not reStructuredText's "::"
    for name in ("sandbox_policy", "sandbox_audit"):
        assert ip.magics_manager.magics["line"][name].__doc__.startswith(f"usage: %{name} ")


def test_language_guess_warning_is_one_line_without_paths(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A weak guess says which language was chosen, in one line: no host path, no line of our source."""
    import warnings

    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = ip._workbench_previous_showwarning  # pytest's own hook, then ours on top
        from workbench.jupyter import _short_warnings

        del ip._workbench_previous_showwarning
        _short_warnings(ip)
        ip.run_cell("%%sandbox --no-widgets\n# nothing here\n")
    err = "".join(line for line in capsys.readouterr().err.splitlines(True) if not line.startswith("workbench: compiling"))
    assert err.startswith("LanguageGuessWarning: guessed lang='python'"), err
    assert len(err.strip().splitlines()) == 1 and "/" not in err.split("because")[0] and ".py:" not in err


def test_cell_runs_stores_and_returns_the_result(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result = cell(ip, "hello -o res", probes.hello())
    assert isinstance(result, RunResult) and result is ip.user_ns["res"]
    assert result.ok and result.module == "hello"
    assert capsys.readouterr().out == "hello from the sandbox\n"  # streamed into the cell


def test_shortcut_options_become_capabilities(ip: Any) -> None:
    result = cell(ip, "--timeout 5s --memory 2MB --cpu 50% --fuel 1e9", probes.hello())
    assert Policy.parse(result.policy) == Policy.parse(
        ["time:limit:5s", "memory:limit:2MB", "cpu:limit:50%", "fuel:limit:1e9"]
    )


def test_violation_is_a_result_and_strict_raises(ip: Any) -> None:
    result = cell(ip, "--memory 1MB", probes.memory_bomb())
    assert [v.capability for v in result.violations] == ["memory:limit:1MB"]
    with pytest.raises(SandboxViolation) as info:
        cell(ip, "--memory 1MB --strict -o kept", probes.memory_bomb())
    assert info.value.result is ip.user_ns["kept"]
    assert info.value._render_traceback_()[0].startswith("SandboxViolation: run of 'cell' ended with 1 violation")


def test_strict_from_config(ip: Any) -> None:
    ip.run_line_magic("config", "SandboxMagics.strict = True")
    with pytest.raises(SandboxViolation):
        cell(ip, "--timeout 100ms", SPIN)


def test_configured_defaults_apply_only_where_nothing_is_set(ip: Any) -> None:
    ip.run_line_magic("config", "SandboxMagics.default_memory = '2MB'")
    assert cell(ip, "", probes.memory_bomb()).usage.memory_limit_bytes == 2_000_000
    assert cell(ip, "--memory 4MB", probes.memory_bomb()).usage.memory_limit_bytes == 4_000_000


def test_bad_config_value_is_refused(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("config", "SandboxMagics.default_timeout = '2 parsecs'")
    assert ip._workbench_magics.default_timeout == ""
    with pytest.raises(Exception):
        ip._workbench_magics.updates_per_second = 50


def test_named_policies(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    Path("reader.wat").write_text(probes.read_file("readme.txt"))
    ip.run_line_magic("sandbox_policy", "docs filesystem:read:/docs time:limit:5s")
    result = ip.run_line_magic("sandbox", "run reader.wat --policy docs")
    assert result.ok and result.stdout.startswith("ok: public notes")
    ip.run_line_magic("sandbox_policy", "")
    assert "docs: filesystem:read:/docs time:limit:5s" in capsys.readouterr().out
    with pytest.raises(UsageError, match="did you mean 'docs'"):
        cell(ip, "--policy dosc", probes.hello())
    ip.user_ns["mine"] = Policy.parse(["filesystem:read:/docs"])
    assert ip.run_line_magic("sandbox", "run reader.wat --policy mine").ok


def test_module_arguments_after_double_dash(ip: Any) -> None:
    result = cell(ip, "args -- one 'two words'", probes.print_args())
    assert result.stdout.splitlines()[1:] == ["one", "two words"]


def test_stdin_from_a_variable(ip: Any) -> None:
    ip.user_ns["text"] = "through stdin\n"
    assert cell(ip, "--stdin text", probes.echo_stdin()).stdout == "through stdin\n"
    ip.user_ns["number"] = 3
    with pytest.raises(UsageError, match="must be str or bytes"):
        cell(ip, "--stdin number", probes.echo_stdin())


def test_input_is_passed_through_or_refused_clearly(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.languages import known_languages

    ip.user_ns["data"] = [1, 2, 3]
    with pytest.raises(UsageError, match="NAME=VARIABLE"):
        cell(ip, "--input nonsense", probes.hello())
    if "python" not in known_languages():
        pytest.skip("inputs= without a Python guest")
    capsys.readouterr()
    result = cell(ip, "py --lang python --input numbers=data --timeout 60s", 'print(sum(inputs["numbers"]))\nresult = len(inputs["numbers"])\n')
    assert result.ok and result.value == 3 and result.stdout == "6\n"
    assert capsys.readouterr().out == "6\n"  # streamed, without the driver's hand-back line
    with pytest.raises(UsageError, match="no variable 'dta'.*did you mean 'data'"):
        cell(ip, "--lang python --input numbers=dta", "pass\n")


@pytest.mark.parametrize(
    "line, body, error",
    [
        ("--cap filesytem:read:/docs", "(module)", CapabilityError),
        ("", '(module (func (export "_start") (bogus)))', CompileError),
        ("--no-such-option", "(module)", UsageError),
        ("one two", "(module)", UsageError),
        ("", "   ", UsageError),
        ("--root no-such-folder", "(module)", Exception),
    ],
)
def test_mistakes_raise_the_right_error(ip: Any, line: str, body: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        cell(ip, line, body)


def test_run_of_a_missing_file_is_a_short_module_error(ip: Any) -> None:
    with pytest.raises(ModuleError) as info:
        ip.run_line_magic("sandbox", "run missing.wat")
    assert info.value._render_traceback_() == [
        "ModuleError: module file not found: missing.wat\n  hint: check the path, or pass the source text itself"
    ]
    with pytest.raises(UsageError, match="usage: %sandbox run FILE"):
        ip.run_line_magic("sandbox", "missing.wat")


def test_text_summary_in_terminal_ipython_is_verbose(ip: Any) -> None:
    result = cell(ip, "--timeout 100ms", SPIN)
    text = ip.display_formatter.format(result)[0]["text/plain"]
    assert text.startswith("RunResult cell: stopped (time) (exit code none)")
    assert "wall-clock limit" in text and "wall " in text  # reasons and timings: nothing compares here


def test_quiet_returns_nothing(ip: Any) -> None:
    assert cell(ip, "-q -o r", probes.hello()) is None
    assert ip.user_ns["r"].ok


def test_audit_log(ip: Any, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    cell(ip, f"--audit {log}", probes.hello())
    view = ip.run_line_magic("sandbox_audit", "-o frame --last")
    frame = ip.user_ns["frame"]
    assert len(frame) > 0 and set(frame["run_id"].astype(str)) == {ip._workbench_magics.last_result.run_id}
    assert list(view.runs["run"]) == [ip._workbench_magics.last_result.run_id[:8]]


def test_audit_without_a_log_is_a_usage_error(ip: Any) -> None:
    with pytest.raises(UsageError, match="no audit log yet"):
        ip.run_line_magic("sandbox_audit", "")


def test_unload_removes_the_magics(ip: Any) -> None:
    ip.run_line_magic("unload_ext", "workbench")
    assert "sandbox" not in ip.magics_manager.magics["cell"]
    ip.run_line_magic("load_ext", "workbench")
    assert "sandbox" in ip.magics_manager.magics["cell"]


def test_core_imports_no_notebook_libraries() -> None:
    import subprocess

    code = (
        "import sys, workbench, workbench.jupyter, workbench.runtime.interrupt\n"
        "print(sorted(m for m in ('IPython', 'ipywidgets', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
