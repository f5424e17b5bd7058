"""The terminal view: ``workbench run`` and ``workbench demo``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings

from strategies import hostile_capability_texts
from workbench import probes
from workbench.cli import main


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_run_prints_guest_output(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    module = write(tmp_path, "hello.wat", probes.hello("from the guest\n"))
    assert main(["run", str(module)]) == 0
    assert "from the guest" in capfd.readouterr().out


def test_run_passes_args_after_double_dash(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    module = write(tmp_path, "args.wat", probes.print_args())
    assert main(["run", str(module), "--", "a", "--b"]) == 0
    assert capfd.readouterr().out.splitlines() == ["args", "a", "--b"]


def test_run_exit_code_is_nonzero_on_violation(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    module = write(tmp_path, "bomb.wat", probes.memory_bomb())
    assert main(["run", str(module), "--cap", "memory:limit:2MB"]) == 3
    assert "! deny memory grow" in capfd.readouterr().err


def test_run_exit_code_on_fault(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    module = write(tmp_path, "trap.wat", probes.unreachable())
    assert main(["run", str(module)]) == 4
    assert "fault (unreachable)" in capfd.readouterr().err


def test_run_json(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    module = write(tmp_path, "spin.wat", probes.infinite_loop())
    assert main(["run", str(module), "--cap", "time:limit:0.2s", "--json"]) == 3
    data = json.loads(capfd.readouterr().out)
    assert data["violations"][0]["kind"] == "time"
    assert data["outcome"] == "stopped (time)"


def test_bad_capability_is_one_message_with_hint(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    module = write(tmp_path, "hello.wat", probes.hello())
    assert main(["run", str(module), "--cap", "filesytem:read:/docs"]) == 2
    err = capfd.readouterr().err
    assert "did you mean 'filesystem'" in err
    assert "Traceback" not in err


def test_missing_file_is_one_message(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "nope.wat")]) == 2
    assert "not found" in capfd.readouterr().err


def test_console_script_and_demo() -> None:
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "demo"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("allowed-read", "read-outside", "symlink-escape", "memory-bomb", "infinite-loop"):
        assert name in proc.stdout
    assert "every attempt was decided as expected" in proc.stdout
    assert "writing needs a filesystem:write grant" in proc.stdout  # decisions are printed whole, never cut


def test_learn_mode_prints_the_suggested_policy(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("hello")
    module = write(tmp_path, "reader.wat", probes.read_file("docs/a.txt"))
    assert main(["run", str(module), "--root", str(tmp_path), "--on-violation", "audit"]) == 0
    captured = capfd.readouterr()
    assert "ok: hello" in captured.out
    assert "--cap filesystem:read:/docs/a.txt" in captured.err


SPIN_WHEN_READY = """(module (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1) (data (i32.const 16) "spinning\\n")
  (func (export "_start") (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 9))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (loop br 0)))"""


def _interrupt_spinning_guest(tmp_path: Path) -> tuple[subprocess.Popen[str], float]:
    """Start a guest that says "spinning" and spins; Ctrl-C it once it has said so."""
    import signal
    import time

    module = write(tmp_path, "spin.wat", SPIN_WHEN_READY)
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "run", str(module), "--cap", "time:limit:30s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "spinning\n"  # running, however busy the machine
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    return proc, sent


def test_ctrl_c_stops_a_spinning_guest(tmp_path: Path) -> None:
    proc, _ = _interrupt_spinning_guest(tmp_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert "interrupted (Ctrl-C)" in err


@pytest.mark.timing
def test_ctrl_c_stops_a_spinning_guest_at_once(tmp_path: Path) -> None:
    import time

    proc, sent = _interrupt_spinning_guest(tmp_path)
    proc.communicate(timeout=30)
    assert time.monotonic() - sent < 2.0


def test_warnings_are_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "root").mkdir()
    module = write(tmp_path, "m.wat", probes.write_file("odd name.txt"))  # a name no capability can state
    assert main(["run", str(module), "--root", str(tmp_path / "root"), "--on-violation", "audit"]) == 0
    err = capfd.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("workbench: warning")]
    assert warning == ["workbench: warning: suggested policy: 1 path(s) left out, since no capability names them "
                       "exactly: '/odd name.txt'"], err
    assert ".py:" not in err  # no source file and line of ours


# -- bad input: exit 2, one message, never a traceback (issue 10, point 6) -------------------------


def assert_one_message(err: str) -> None:
    """``workbench: error: ...`` on one line, then at most its hint.  ``str.splitlines`` also
    splits at U+2028 and friends, so a raw one in the message fails this too."""
    lines = err.splitlines()
    assert lines and lines[0].startswith("workbench: error: "), err
    assert len(lines) <= 2 and all(line.startswith("  hint: ") for line in lines[1:]), err
    assert "Traceback" not in err and "\x1b" not in err


BAD_CAPABILITIES = [
    "memory:limit:" + "9" * 5000 + "MB",
    "time:limit:" + "9" * 5000,
    "time:limit:inf",
    "filesystem:read:/docs\u2028",
    "filesystem:read:/docs;host=relative",
    "filesystem:read:/d\udcff",  # invalid UTF-8 in argv arrives as a lone surrogate
    "filesystem:read:/\x1b]0;title\x07",
    "network:http:a.com:\u00b2",
]


@pytest.mark.parametrize("cap", BAD_CAPABILITIES, ids=range(len(BAD_CAPABILITIES)))
def test_bad_capabilities_exit_2_with_one_message(tmp_path: Path, capfd: pytest.CaptureFixture[str], cap: str) -> None:
    module = write(tmp_path, "hello.wat", probes.hello())
    assert main(["run", str(module), f"--cap={cap}"]) == 2
    captured = capfd.readouterr()
    assert captured.out == ""
    assert_one_message(captured.err)


def test_a_module_that_cannot_link_is_bad_input(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # a WASI import with the wrong signature used to be the guest's fault (exit 4)
    module = write(tmp_path, "exit.wat", """(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i64)))
      (memory (export "memory") 1)
      (func (export "_start") (call $exit (i64.const 3))))""")
    assert main(["run", str(module)]) == 2
    err = capfd.readouterr().err
    assert_one_message(err)
    assert "proc_exit (i64) -> (), preview1 has (i32) -> ()" in err


def test_huge_numbers_exit_2_from_a_fresh_process(tmp_path: Path) -> None:
    """The console, as a user sees it: it used to print a traceback and exit 1."""
    module = write(tmp_path, "hello.wat", probes.hello())
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "run", str(module), "--cap",
                           "memory:limit:" + "9" * 5000 + "MB"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert_one_message(proc.stderr)


_EMPTY = Path(tempfile.mkdtemp(prefix="workbench-cli-fuzz-"))
(_EMPTY / "empty.wat").write_text('(module (func (export "_start")))')


@settings(max_examples=150, deadline=None)
@given(hostile_capability_texts())
def test_fuzzed_capabilities_run_or_exit_2_with_one_message(cap: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", str(_EMPTY / "empty.wat"), "--root", str(_EMPTY), f"--cap={cap}"])
    assert code in (0, 2, 3, 4), err.getvalue()
    if code == 2:
        assert_one_message(err.getvalue())
    else:
        assert "Traceback" not in err.getvalue()


def test_guest_text_in_messages_cannot_restyle_the_terminal(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    module = write(tmp_path, "esc.wat", probes.read_file("\x1b[2J\x1b]0;pwned\x07"))
    assert main(["run", str(module), "--root", str(tmp_path)]) == 3
    err = capfd.readouterr().err
    assert "! deny filesystem open" in err
    assert "\x1b" not in err and "\x07" not in err
    assert "\\x1b[2J" in err  # written as an escape
