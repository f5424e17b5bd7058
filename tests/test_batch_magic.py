"""``%sandbox_batch`` in an in-process IPython shell, on a real LocalCluster with 2 worker processes.

Bad input is refused before any cluster starts (those tests are quick); the rest run real batches
(marked ``slow``).  The same magic in a real notebook, with its progress bar, is notebook 08.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import dask
import pandas as pd
import psutil
import pytest
from distributed import Client, LocalCluster

from workbench import AuditLog, Sandbox, probes
from workbench.batch import runner
from workbench.errors import BatchError, CapabilityError, SandboxError
from workbench.jupyter.errors import RunInterrupted


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    main = sys.modules["__main__"]
    if not hasattr(main, "__spec__"):  # an IPython shell of another test module cleared its namespace there:
        main.__spec__ = None           # multiprocessing's spawn reads it when it starts the worker processes
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR)
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def ip(workspace: Path) -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell

    old = os.getcwd()
    main = sys.modules["__main__"]  # the shell puts its own namespace there; worker processes spawned later
    os.chdir(workspace)             # (multiprocessing) read __main__.__spec__, which clearing user_ns removes
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "workbench")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "workbench")
        shell.user_ns.clear()
        InteractiveShell.clear_instance()
        sys.modules["__main__"] = main
        os.chdir(old)


@pytest.fixture
def no_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input must be refused before a cluster starts."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cluster was started for bad input")

    monkeypatch.setattr(runner.Batch, "_start_cluster", refuse)


def batch(ip: Any, line: str) -> Any:
    return ip.run_line_magic("sandbox_batch", line)


def test_the_magic_is_registered_with_its_help_and_unloads(ip: Any) -> None:
    doc = ip.magics_manager.magics["line"]["sandbox_batch"].__doc__
    assert doc.startswith("usage: %sandbox_batch ") and "--column COL" in doc and "examples:" in doc
    ip.run_line_magic("unload_ext", "workbench")
    assert "sandbox_batch" not in ip.magics_manager.magics["line"]
    ip.run_line_magic("load_ext", "workbench")
    assert "sandbox_batch" in ip.magics_manager.magics["line"]


@pytest.mark.parametrize("setup, line, match", [
    ({"programs": ["print(1)"]}, "progams", r"no variable 'progams'.*did you mean 'programs'"),
    ({"df": pd.DataFrame({"source": ["print(1)", 7]})}, "df --column source", r"df\['source'\]: item 1 is int"),
    ({"df": pd.DataFrame({"source": ["print(1)"]})}, "df --column sorce", r"no column 'sorce'.*did you mean 'source'"),
    ({"df": pd.DataFrame({"source": ["print(1)"]})}, "df", r"DataFrame: say which column"),
    ({"s": pd.Series([b"\0asm", None])}, "s", r"s: item 1 is NoneType"),
    ({"one": "print(1)"}, "one", r"holds one source"),
    ({"n": 3}, "n", r"holds a int"),
    ({"empty": []}, "empty", r"empty: there is nothing to run"),
    ({"programs": ["print(1)"]}, "programs --column source", r"--column source: programs is a list"),
    ({"programs": ["print(1)"], "c": object()}, "programs --client c", r"--client c: the variable holds a object"),
    ({"programs": ["print(1)"]}, "programs --policy nope", r"unknown policy 'nope'"),
    ({"programs": ["print(1)", "print(2)"]}, "programs --workers 0", r"workers must be a whole number"),
])
def test_bad_input_is_our_error_with_a_hint_before_anything_starts(ip: Any, no_cluster: None, setup: dict[str, Any],
                                                                   line: str, match: str) -> None:
    ip.user_ns.update(setup)
    with pytest.raises(BatchError, match=match) as info:
        batch(ip, line)
    assert info.value.hint
    assert info.value._render_traceback_()[0].startswith("BatchError: ")


def test_a_bad_capability_is_a_capability_error_with_a_suggestion(ip: Any, no_cluster: None) -> None:
    ip.user_ns["programs"] = ["print(1)"]
    with pytest.raises(CapabilityError, match="filesystem") as info:
        batch(ip, "programs --cap filesytem:read:/docs")
    assert info.value.suggestion == "filesystem"
    with pytest.raises(CapabilityError):
        batch(ip, "programs --timeout 2parsecs")


def test_duplicate_index_values_are_refused_as_duplicate_job_ids(ip: Any, no_cluster: None) -> None:
    ip.user_ns["df"] = pd.DataFrame({"source": ["print(1)", "print(2)"]}, index=["a", "a"])
    with pytest.raises(BatchError, match="two jobs have the id 'a'"):
        batch(ip, "df --column source")


GRADED = ("def square(x):\n    return x * x{bug}\n"
          "assert square({n}) == {want}, 'wrong answer'\nprint('passed')\nresult = square({n})\n")


@pytest.mark.slow
def test_a_list_runs_as_one_batch_with_the_same_outcomes_as_one_by_one(ip: Any, client: Client,
                                                                       workspace: Path) -> None:
    programs = [GRADED.format(n=n, want=n * n, bug=" + 1" if n % 4 == 3 else "") for n in range(10)]
    programs += ["print(open('/secret.txt').read())\n", "(module (func (bogus)))"]
    ip.user_ns.update(programs=programs, client=client)
    ip.run_line_magic("sandbox_policy", "docs filesystem:read:/docs")
    frame = batch(ip, "programs --client client --policy docs --timeout 20s -o results")
    assert frame is ip.user_ns["results"]
    assert list(frame.job_id) == [str(i) for i in range(12)]
    sandbox = Sandbox(["filesystem:read:/docs", "time:limit:20s"], root=workspace)
    for source, row in zip(programs, frame.itertuples()):
        try:
            one = sandbox.run(source)
            expected = (one.outcome, one.value, one.stdout)
        except SandboxError as exc:
            expected = (f"error ({type(exc).__name__})", None, "")
        assert (row.outcome, row.value, row.stdout) == expected, row.job_id
    assert list(frame.ok[:10]) == [n % 4 != 3 for n in range(10)]
    assert frame.outcome[10] == "violation" and frame.outcome[11] == "error (CompileError)"


@pytest.mark.slow
def test_a_dataframe_column_keeps_its_index_as_job_ids(ip: Any, client: Client) -> None:
    df = pd.DataFrame({"student": ["ann", "bob", "cy"],
                       "code": [GRADED.format(n=2, want=4, bug=""), GRADED.format(n=3, want=9, bug=" + 1"),
                                "print('no test')\n"]}).set_index("student")
    ip.user_ns.update(df=df, client=client, series=df["code"])
    frame = batch(ip, "df --column code --lang python --client client --no-progress")
    assert list(frame.job_id) == ["ann", "bob", "cy"]
    assert list(frame.outcome) == ["ok", "exit 1", "ok"]
    graded = df.join(frame.set_index("job_id")[["outcome", "value"]])
    assert graded.loc["ann", "value"] == 4 and graded.loc["bob", "outcome"] == "exit 1"
    assert list(batch(ip, "series --lang python --client client").job_id) == ["ann", "bob", "cy"]
    ip.user_ns["readers"] = ["print(open('/docs/readme.txt').read(), end='')\n"]
    assert list(batch(ip, "readers --client client").outcome) == ["violation"]
    ip.run_line_magic("config", "SandboxMagics.default_caps = ['filesystem:read:/docs']")  # as for %%sandbox
    read = batch(ip, "readers --client client")
    assert list(read.outcome) == ["ok"] and list(read.stdout) == ["public notes\n"]


@pytest.mark.slow
def test_its_own_cluster_shows_the_dashboard_link_and_leaves_no_process(ip: Any, monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    import IPython.display

    from workbench.batch import progress

    shown: list[Any] = []
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    ip.user_ns["programs"] = [probes.hello(f"job {i}\n") for i in range(4)]
    frame = batch(ip, f"programs --workers 1 --audit {tmp_path / 'audit'}")
    assert list(frame.outcome) == ["ok"] * 4 and list(frame.stdout) == [f"job {i}\n" for i in range(4)]
    links = [o.data for o in shown if "Dask dashboard" in getattr(o, "data", "")]
    assert len(links) == 1 and 'href="http://127.0.0.1:' in links[0] and "/status" in links[0]
    deadline = time.monotonic() + 30
    while {p.pid for p in me.children(recursive=True) if not _is_resource_tracker(p)} - before and time.monotonic() < deadline:
        time.sleep(0.2)  # worker processes end a moment after the cluster is closed
    # multiprocessing's resource tracker is started once, by whatever spawns first, and lives as long as this
    # process: it is not the cluster's (and in a lone run of this test it is started by it)
    left = [p for p in me.children(recursive=True) if p.pid not in before and not _is_resource_tracker(p)]
    assert left == [], [" ".join(p.cmdline()) for p in left]
    assert AuditLog.open_many(tmp_path / "audit").worker.nunique() == 2  # its one worker and the client


def _is_resource_tracker(process: psutil.Process) -> bool:
    try:
        return "multiprocessing.resource_tracker" in " ".join(process.cmdline())
    except psutil.Error:  # it ended while we looked
        return True


def _interrupt_when(folder: Path, ended: int) -> tuple[threading.Thread, list[float]]:
    """SIGINT to the main thread (what ■ sends to the kernel) once ``ended`` jobs have a job-end record."""
    main = threading.get_ident()
    sent: list[float] = []

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = "".join(p.read_text() for p in folder.glob("worker-*.jsonl")) if folder.exists() else ""
            if text.count('"job-end"') >= ended:
                time.sleep(0.5)  # the spinners are running now
                sent.append(time.time())
                signal.pthread_kill(main, signal.SIGINT)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, sent


def _interrupted_batch(ip: Any, client: Client, audit: Path) -> tuple[pd.DataFrame, float, list[float], RunInterrupted]:
    ip.user_ns["jobs"] = [probes.hello()] * 4 + [probes.infinite_loop()] * 6
    ip.user_ns["client"] = client
    thread, sent = _interrupt_when(audit, 4)
    started = time.monotonic()
    with pytest.raises(RunInterrupted) as info:
        batch(ip, f"jobs --client client --timeout 60s --chunk-size 1 --audit {audit} -o partial")
    waited = time.monotonic() - started
    thread.join()
    return ip.user_ns["partial"], waited, sent, info.value


@pytest.mark.slow
def test_the_stop_button_cancels_the_batch_and_keeps_the_results_in(ip: Any, client: Client, tmp_path: Path) -> None:
    frame, waited, sent, error = _interrupted_batch(ip, client, tmp_path / "audit")
    assert sent and waited < 45  # not the 60 s the spinners were allowed (generous: a busy machine)
    assert error.result is frame and error._render_traceback_() == [
        "KeyboardInterrupt: stopped the batch: 4 of 10 jobs done; the results frame is in partial"]
    assert list(frame.outcome[:4]) == ["ok"] * 4
    assert set(frame.outcome[4:]) == {"cancelled"}
    stopped = frame[frame.outcome == "cancelled"].wall_seconds.dropna()
    assert len(stopped) >= 1  # the spinners that were running came back with their runs
    records = AuditLog.open_many(tmp_path / "audit")
    assert "cancel" in set(records.action)


@pytest.mark.timing
def test_the_stop_button_stops_running_guests_within_a_second(ip: Any, client: Client, tmp_path: Path) -> None:
    frame, waited, sent, error = _interrupted_batch(ip, client, tmp_path / "audit")
    records = AuditLog.open_many(tmp_path / "audit")
    ends = records[(records.action == "job-end") & records.target.isin([str(i) for i in range(4, 10)])]
    ran = ends[ends.run_id != ""]
    assert len(ran) >= 1
    latest = ran.ts.max().timestamp()
    assert latest - sent[0] < 1.0, latest - sent[0]
