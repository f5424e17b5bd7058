"""The audit log fails closed (issue 10, point 3).

A sandbox asked to audit never runs unaudited: a log that cannot be written
refuses the sandbox before anything runs, a write that fails during a run stops
the run, and no subscriber's failure is ever silent.  These tests import only
names that exist before the fix too, so on the old code they fail by their
assertions, not by an import.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import workbench.audit.log as log_module
from workbench import AuditLog, Sandbox, SandboxError, probes
from workbench.cli import main
from workbench.events import Event, EventBus, Sample


def _looping_open(path: str = "../secret.txt") -> str:
    """WAT: open ``path`` (refused: it leaves the grant) from fd 3 forever; every attempt is an event."""
    return f"""(module
 (import "wasi_snapshot_preview1" "path_open"
   (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (data (i32.const 128) "{path}")
 (func (export "_start")
   (loop $again
     (drop (call $path_open (i32.const 3) (i32.const 1) (i32.const 128) (i32.const {len(path)})
                (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
     (br $again))))
"""


# -- a log that cannot be written: refused before anything runs ----------------------------------------

def unwritable_paths(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "a-folder").mkdir()
    return {
        "folder cannot be created": tmp_path / "a-file" / "logs" / "audit.jsonl",
        "path is a folder": tmp_path / "a-folder",
    }


@pytest.mark.parametrize("case", ["folder cannot be created", "path is a folder"])
def test_a_log_that_cannot_be_written_refuses_the_sandbox(tmp_path: Path, case: str) -> None:
    path = unwritable_paths(tmp_path)[case]
    with pytest.raises(SandboxError) as raised:
        Sandbox(audit=AuditLog(path))
    error = raised.value
    assert type(error).__name__ == "AuditError"
    assert str(path) in error.message and error.hint  # names what and how to fix it
    assert "cannot write the audit log" in error.message


@pytest.mark.parametrize("case", ["folder cannot be created", "path is a folder"])
def test_the_cli_refuses_a_log_it_cannot_write_with_one_message(
    tmp_path: Path, case: str, capfd: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "hello.wat"
    module.write_text(probes.hello())
    path = unwritable_paths(tmp_path)[case]
    assert main(["run", str(module), "--audit", str(path)]) == 2
    captured = capfd.readouterr()
    assert "hello from the sandbox" not in captured.out  # nothing ran
    assert captured.err.startswith(f"workbench: error: cannot write the audit log {path}")
    assert "Traceback" not in captured.err


# -- a write that fails during a run stops the run -------------------------------------------------------

@pytest.fixture
def full_disk_log(tmp_path: Path) -> Path:
    """An audit path whose every write fails with ENOSPC (a link to /dev/full): it opens, it never writes."""
    path = tmp_path / "audit.jsonl"
    os.symlink("/dev/full", path)
    return path


def test_a_log_that_fails_to_write_stops_a_spinning_guest(full_disk_log: Path) -> None:
    sandbox = Sandbox(["time:limit:30s"], audit=AuditLog(full_disk_log))
    result = sandbox.run(probes.infinite_loop())
    assert not result.ok
    assert result.exit_code is None  # stopped, never finished
    kinds = [(e.category, e.action, e.decision) for e in result.events]
    assert ("lifecycle", "audit-failed", "kill") in kinds
    assert not any(e.category == "time" for e in result.events)  # the audit failure stopped it, not the deadline
    failure = result.audit_failure
    assert failure is not None and failure.critical and "No space left on device" in failure.error
    assert result.outcome == "stopped (audit log failed)"
    assert "No space left on device" in result.to_dict()["audit_failure"]


def test_a_failure_in_the_middle_of_a_run_stops_it_and_is_recorded_where_it_can_be(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    real_write = log_module._write_all
    writes = {"n": 0}

    def fail_the_third(fd: int, data: bytes) -> None:  # a passing failure (a full disk that was freed)
        writes["n"] += 1
        if writes["n"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(fd, data)

    monkeypatch.setattr(log_module, "_write_all", fail_the_third)
    log = AuditLog(path)
    result = Sandbox(["filesystem:read:/docs", "time:limit:30s"], root=workspace, audit=log).run(_looping_open())
    assert not result.ok and result.audit_failure is not None
    assert result.audit_failure.count == 1
    assert not any(e.category == "time" for e in result.events)  # the guest loops forever: only the failure stopped it
    # the third event was the guest's first refused open: its write failed, in the middle of the run
    assert (result.events[2].category, result.events[2].decision) == ("filesystem", "deny")
    # the log lost exactly that record, and says why in the chain, right where it was lost
    records = list(log.records())
    assert [r["action"] for r in records[:3]] == ["start", "mount", "audit-failed"]
    stop = records[2]
    assert stop["decision"] == "kill" and "No space left on device" in stop["reason"]
    assert records[-1]["action"] == "exit"
    assert log.verify().ok


def test_the_cli_exits_non_zero_with_one_line_when_the_log_fails(
    tmp_path: Path, full_disk_log: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "spin.wat"
    module.write_text(probes.infinite_loop())
    code = main(["run", str(module), "--audit", str(full_disk_log), "--cap", "time:limit:30s"])
    err = capfd.readouterr().err
    assert code == 5
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("workbench: error: the run was stopped: the audit log")
    assert "No space left on device" in lines[0]


def test_the_cli_json_says_why(tmp_path: Path, full_disk_log: Path, capfd: pytest.CaptureFixture[str]) -> None:
    module = tmp_path / "hello.wat"
    module.write_text(probes.hello())
    assert main(["run", str(module), "--audit", str(full_disk_log), "--json"]) == 5
    data = json.loads(capfd.readouterr().out)
    assert data["ok"] is False and "No space left on device" in data["audit_failure"]


def test_the_cli_in_a_fresh_process_exits_non_zero(tmp_path: Path, full_disk_log: Path) -> None:
    module = tmp_path / "hello.wat"
    module.write_text(probes.hello())
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "run", str(module), "--audit", str(full_disk_log)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.count("\n") == 1 and "audit log" in proc.stderr


# -- no subscriber's failure is silent ---------------------------------------------------------------------

def test_publish_reports_every_failure_to_its_caller() -> None:
    bus = EventBus()
    seen: list[object] = []

    def view(item: object) -> None:
        raise ValueError("view bug")

    bus.subscribe(view)
    bus.subscribe(seen.append)
    failures = bus.publish(Event(run_id="r", category="lifecycle", action="start"))
    assert len(seen) == 1  # the others still got it
    assert [(f.critical, f.error) for f in failures] == [(False, "ValueError: view bug")]
    assert "view" in failures[0].subscriber
    assert bus.publish(Sample(run_id="r", wall_seconds=0, memory_bytes=0))  # samples too


def test_an_audit_log_is_critical_by_itself(tmp_path: Path, full_disk_log: Path) -> None:
    bus = EventBus()
    bus.subscribe(AuditLog(full_disk_log))  # no flag: the log says it keeps the record
    [failure] = bus.publish(Event(run_id="r", category="lifecycle", action="start"))
    assert failure.critical and "No space left" in failure.error


def test_any_subscriber_given_as_audit_is_critical() -> None:
    def broken_store(item: object) -> None:
        raise RuntimeError("database gone")

    result = Sandbox(audit=broken_store).run(probes.hello())
    assert not result.ok and result.audit_failure is not None
    assert result.audit_failure.error == "RuntimeError: database gone"


def test_a_critical_subscriber_passed_to_subscribe_stops_the_run() -> None:
    sandbox = Sandbox(["time:limit:30s"])

    def recorder(item: object) -> None:
        if isinstance(item, Event) and item.action == "start":
            raise OSError(errno.EIO, "I/O error")

    sandbox.subscribe(recorder, critical=True)  # type: ignore[call-arg]
    result = sandbox.run(probes.infinite_loop())
    assert result.audit_failure is not None and not result.ok
    assert not any(e.category == "time" for e in result.events)


def test_errors_kept_on_the_bus_are_bounded() -> None:
    from workbench.events import MAX_KEPT_ERRORS  # type: ignore[attr-defined]

    bus = EventBus()

    def broken(item: object) -> None:
        raise ValueError("x")

    bus.subscribe(broken)
    for _ in range(MAX_KEPT_ERRORS + 50):
        bus.publish(Sample(run_id="r", wall_seconds=0, memory_bytes=0))
    assert len(bus.errors) == MAX_KEPT_ERRORS
