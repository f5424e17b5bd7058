"""The validation commands: ``workbench modules test-limits | test-capabilities | test-violations``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from workbench import probes
from workbench.cli import main
from workbench.validation import Report
from workbench.validation.capabilities import CapabilityCase, make_workspace, run_capabilities
from workbench.validation.violations import ViolationCase, run_violations


@pytest.mark.parametrize("command", ["test-limits", "test-capabilities", "test-violations"])
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
