"""The ``timing`` marker's promise: a failed real-time test is retried once only on a visibly busy
machine, and the run says so (tests/conftest.py, with pytest-rerunfailures)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py").read_text()
FAILS_ONCE = '''
import os, pytest
os.getloadavg = lambda: ({load}, {load}, {load})
@pytest.mark.timing
def test_fails_once(tmp_path_factory):
    mark = tmp_path_factory.getbasetemp().parent / "tried"
    if not mark.exists():
        mark.write_text("")
        assert False, "the first attempt fails"
'''


@pytest.mark.parametrize("load, retried", [(99.0, True), (0.0, False)])
def test_a_failed_timing_test_is_retried_once_only_on_a_busy_machine_and_said_so(
    pytester: pytest.Pytester, load: float, retried: bool
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    timing: real-time checks\n")
    pytester.makepyfile(test_demo=FAILS_ONCE.format(load=load))
    result = pytester.runpytest_subprocess("-q", "-m", "timing", "-p", "no:cacheprovider")
    if retried:
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*1 passed*1 rerun*"])
        result.stdout.fnmatch_lines(["timing: retried once on a busy machine (load 99.0 on * cores): *test_fails_once"])
    else:
        result.assert_outcomes(failed=1)
        assert "retried once" not in result.stdout.str()
