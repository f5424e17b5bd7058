"""The validation commands: ``workbench modules test-limits | test-capabilities | test-violations``."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from workbench import probes
from workbench.cli import main
from workbench.validation import Report
from workbench.validation.limits import check_samples
from workbench.validation.capabilities import CapabilityCase, make_workspace, run_capabilities
from workbench.validation.violations import ViolationCase, run_violations


# test-limits measures real time (CPU shares, deadline overshoot, live samples against their tolerances): a
# busy machine can upset it, so it is a `timing` check (make test-timing, which CI runs on its own; retried
# once on a visibly busy machine, and the run says so). The other two count rights and records only.
@pytest.mark.parametrize("command", [pytest.param("test-limits", marks=pytest.mark.timing), "test-capabilities",
                                     "test-violations"])
def test_validation_command_exits_zero_on_a_clean_checkout(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["modules", command])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "checks within tolerance" in out
    assert "NO" not in out.split()
    assert out.count("yes") >= 10  # a real table, not an empty one


def test_limits_table_names_the_measured_values(capsys: pytest.CaptureFixture[str]) -> None:
    # run through the CLI above; here only the shape of a row, on a tiny suite
    report = Report("t")
    report.add("memory-cap-10MB", "memory:limit:10MB", "peak 95-100% of cap", "99.6%", True)
    out = io.StringIO()
    report.print(out)
    assert "memory-cap-10MB" in out.getvalue() and "99.6%" in out.getvalue()
    assert report.exit_code == 0


def test_a_row_outside_its_tolerance_fails_the_suite() -> None:
    report = Report("t")
    report.add("ok-row", "", "x", "x", True)
    report.add("bad-row", "", "50% ±5%", "61%", False)
    out = io.StringIO()
    report.print(out)
    assert report.exit_code == 1
    assert "1 of 2 checks outside tolerance: bad-row" in out.getvalue()
    assert Report("empty").exit_code == 1  # no rows proves nothing


def test_capability_suite_catches_a_wrong_expectation() -> None:
    wrong = CapabilityCase("secret-readable", ("filesystem:read:/docs",), lambda: probes.guest_read("/secret.txt"),
                           "allowed")
    right = CapabilityCase("secret-denied", ("filesystem:read:/docs",), lambda: probes.guest_read("/secret.txt"),
                           "denied")
    report = run_capabilities([wrong, right])
    assert [row.passed for row in report.rows] == [False, True]
    assert report.rows[0].measured.startswith("denied")
    assert report.exit_code == 1


def test_violation_suite_catches_a_misclassification() -> None:
    cases = [
        ViolationCase("called-a-fault", ("time:limit:0.1s",), probes.infinite_loop, "fault:unreachable"),
        ViolationCase("wrong-rule", ("memory:limit:2MB",), probes.memory_bomb, "memory/deny", "memory:limit:3MB"),
        ViolationCase("right", ("memory:limit:2MB",), probes.memory_bomb, "memory/deny", "memory:limit:2MB"),
    ]
    report = run_violations(cases)
    assert [row.passed for row in report.rows] == [False, False, True]
    assert report.rows[0].measured.startswith("time/kill")


def test_workspace_bait_is_in_place(tmp_path: Path) -> None:
    make_workspace(tmp_path)
    assert (tmp_path / "docs" / "escape").is_symlink()
    assert (tmp_path / "docs" / "escape").resolve() == (tmp_path / "secret.txt").resolve()
    assert (tmp_path / "tmp").is_dir()


def test_bad_seconds_is_one_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["modules", "test-limits", "--seconds", "soon"])
    assert info.value.code == 2
    assert "not a number of seconds" in capsys.readouterr().err


def _sampled_run(times: list[float], wall: float, cpu: float, throttled: float, ids: str = "r") -> Any:
    """A stand-in RunResult with the fields check_samples reads (a 1.5 s run, samples at ``times``)."""
    samples = [SimpleNamespace(wall_seconds=t, run_id=ids[i % len(ids)]) for i, t in enumerate(times)]
    usage = SimpleNamespace(wall_seconds=wall, cpu_seconds=cpu, throttled_seconds=throttled)
    return SimpleNamespace(samples=samples, usage=usage, run_id="r")


def _samples_row(result: Any) -> Any:
    report = Report("t")
    check_samples(report, result, 1.5)
    return report.rows[0]


def test_live_samples_hold_their_count_on_a_machine_that_gave_the_run_its_time() -> None:
    quiet = dict(wall=1.5, cpu=0.75, throttled=0.74)  # a 50% guest: off-CPU only while paused
    assert _samples_row(_sampled_run([0.1 * i for i in range(1, 15)], **quiet)).passed
    row = _samples_row(_sampled_run([0.55 + 0.12 * i for i in range(8)], **quiet))
    assert not row.passed and "busy" not in row.measured  # late and few, with no excuse


def test_live_samples_on_a_busy_machine_are_expected_of_the_time_it_gave() -> None:
    busy = dict(wall=1.5, cpu=0.42, throttled=0.0)  # 1.08 s withheld: neither CPU nor pauses
    row = _samples_row(_sampled_run([0.55 + 0.13 * i for i in range(8)], **busy))  # seen under load
    assert row.passed and "1.08s withheld by a busy machine" in row.measured
    assert not _samples_row(_sampled_run([0.55 + 0.13 * i for i in range(8)], **busy, ids="rx")).passed
    assert not _samples_row(_sampled_run([], **busy)).passed  # none live: never excused
    assert not _samples_row(_sampled_run([0.55, 0.9], **busy)).passed  # fewer than the time given allows
    assert not _samples_row(_sampled_run([0.55 + 0.05 * i for i in range(19)], **busy)).passed  # too many
