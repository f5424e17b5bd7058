"""Shared fixtures.  The compile cache goes to a per-session temporary folder so
tests never read or write the user's real cache."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

# Installed runtimes (``workbench runtimes``) stay where the user installed them, before the cache moves:
# ``make test-scientific`` installs the scientific runtime there once (a minute of compiling, 2.3 GB of
# memory), and tests that install or remove runtimes point WORKBENCH_RUNTIMES_DIR at a folder of their own.
if not os.environ.get("WORKBENCH_RUNTIMES_DIR"):
    _USER_CACHE = os.environ.get("WORKBENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "sandbox-workbench")
    os.environ["WORKBENCH_RUNTIMES_DIR"] = os.path.join(_USER_CACHE, "runtimes")

_CACHE = tempfile.mkdtemp(prefix="workbench-test-cache-")
os.environ["WORKBENCH_CACHE_DIR"] = _CACHE

# Ctrl-C is a tested feature (batches, the magic, compiles, the CLI): a suite started as a background job
# (``make test &``, nohup, CI runners that detach) inherits SIGINT *ignored*, and then Python installs no
# KeyboardInterrupt handler and children keep ignoring it, so those tests would fail for the launcher's sake.
# Install Python's own handler for the session; children started from here then get SIGINT's default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# -- real-time checks (marker ``timing``; ``make test-timing``, which CI runs on its own) ----------
#: timing tests retried because the machine was busy when they failed: (test, load, cores)
_RETRIED: list[tuple[str, float, int]] = []


def _busy(_error: object = None) -> bool:
    """A rerun condition: retry a failed timing test once, only on a machine visibly busy
    (its 1-minute load above its cores); the run says so at its end."""
    return os.getloadavg()[0] > (os.cpu_count() or 1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timing") is not None:
            item.add_marker(pytest.mark.flaky(reruns=1, condition=_busy))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.outcome == "rerun":  # pytest-rerunfailures' word for a failure it runs again
        _RETRIED.append((report.nodeid, os.getloadavg()[0], os.cpu_count() or 1))


def pytest_terminal_summary(terminalreporter: object) -> None:
    for nodeid, load, cores in _RETRIED:
        terminalreporter.write_line(  # type: ignore[attr-defined]
            f"timing: retried once on a busy machine (load {load:.1f} on {cores} cores): {nodeid}")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace root with a granted-to-be ``docs/`` folder and bait outside it.

    - ``docs/readme.txt``: the file a grant should make readable;
    - ``secret.txt``: outside every grant;
    - ``docs/escape`` → ``../secret.txt`` (relative symlink leaving the grant);
    - ``docs/abs-escape`` → absolute path of ``secret.txt``;
    - ``docs/hardlink``: a hard link (made by the host) to ``outside/linked.txt``.
    """
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "out").mkdir()
    (root / "outside").mkdir()
    (root / "docs" / "readme.txt").write_text("public notes\n")
    (root / "secret.txt").write_text("TOP-SECRET\n")
    (root / "outside" / "linked.txt").write_text("LINKED-SECRET\n")
    os.symlink("../secret.txt", root / "docs" / "escape")
    os.symlink(str(root / "secret.txt"), root / "docs" / "abs-escape")
    os.link(root / "outside" / "linked.txt", root / "docs" / "hardlink")
    return root
