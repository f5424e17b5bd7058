"""The terminal view: ``workbench run`` and ``workbench demo``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert "violation: memory" in capfd.readouterr().err


def test_run_exit_code_on_fault(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    module = write(tmp_path, "trap.wat", probes.unreachable())
    assert main(["run", str(module)]) == 4
    assert "fault: unreachable" in capfd.readouterr().err


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


def test_ctrl_c_stops_a_spinning_guest(tmp_path: Path) -> None:
    import signal
    import time

    module = write(tmp_path, "spin.wat", probes.infinite_loop())
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "run", str(module), "--cap", "time:limit:30s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # let it start spinning
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert time.monotonic() - sent < 2.0
    assert proc.returncode == 3, err
    assert "interrupted (Ctrl-C)" in err


def test_warnings_are_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    module = write(tmp_path, "m.wat", probes.hello())
    assert main(["run", str(module), "--cap", "network:http:localhost"]) == 0
    err = capfd.readouterr().err
    assert err.startswith("workbench: warning: network:http:localhost: granted, but guests get no network")
    assert ".py:" not in err  # no source file and line of ours
