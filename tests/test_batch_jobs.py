"""workbench.batch without a cluster: jobs and their policies, the results frame, one worker's
state run in this process (its segment and records), and reading a folder of segments."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from workbench import AuditLog, Policy, Sandbox, probes
from workbench.audit import AuditTrail
from workbench.batch import Job, as_jobs, results_frame
from workbench.batch.worker import WorkerState
from workbench.errors import AuditError, BatchError, CapabilityError, EscalationError

BATCH = Policy.parse(["filesystem:read:/docs", "time:limit:5s", "memory:limit:64MB"])


def test_a_job_without_caps_runs_under_the_batch_policy() -> None:
    [job] = as_jobs(["print(1)"], BATCH)
    assert job.id == "0"
    assert Policy.parse(list(job.policy)) == BATCH


def test_a_job_may_narrow_the_batch_policy() -> None:
    [job] = as_jobs([{"id": "a", "source": "x", "caps": ["filesystem:read:/docs/public", "time:limit:1s"]}], BATCH)
    effective = Policy.parse(list(job.policy))
    assert effective == BATCH.attenuate(Policy.parse(["filesystem:read:/docs/public", "time:limit:1s"]))
    assert effective.limits.wall_seconds == 1.0
    assert effective.limits.memory_bytes == 64 * 10**6  # the batch's limit travels down
    assert effective.check_path("/docs/public/a").allowed and not effective.check_path("/docs/other").allowed


def test_a_larger_limit_in_a_job_does_not_widen_the_batch() -> None:
    [job] = as_jobs([{"id": "a", "source": "x", "caps": "time:limit:1h memory:limit:1GB"}], BATCH)
    limits = Policy.parse(list(job.policy)).limits
    assert limits.wall_seconds == 5.0 and limits.memory_bytes == 64 * 10**6


@pytest.mark.parametrize("caps", [["filesystem:read:/"], ["filesystem:write:/docs"], ["env:set:A=1"],
                                  ["filesystem:read:/docs;host=/etc"]])
def test_a_job_that_would_widen_the_batch_policy_is_refused_before_anything_runs(caps: list[str]) -> None:
    jobs = [{"id": "fine", "source": "x"}, {"id": "greedy", "source": "x", "caps": caps}]
    with pytest.raises(EscalationError, match="job 'greedy'") as info:
        as_jobs(jobs, BATCH)
    assert "narrow the batch policy" in str(info.value)
    assert isinstance(info.value, PermissionError)


def test_a_job_with_a_capability_that_does_not_parse_names_the_job() -> None:
    with pytest.raises(CapabilityError, match="job 'typo'"):
        as_jobs([{"id": "typo", "source": "x", "caps": ["filesytem:read:/docs"]}], BATCH)


def test_bad_job_lists_are_refused_with_our_error(tmp_path: Path) -> None:
    with pytest.raises(BatchError, match="two jobs have the id 'a'"):
        as_jobs([{"id": "a", "source": "x"}, {"id": "a", "source": "y"}], BATCH)
    with pytest.raises(BatchError, match="exactly one of 'source', 'path' and 'module'"):
        as_jobs([{"id": "a"}], BATCH)
    with pytest.raises(BatchError, match="unknown key"):
        as_jobs([{"id": "a", "source": "x", "capz": []}], BATCH)
    with pytest.raises(BatchError, match="cannot read"):
        as_jobs([{"id": "a", "path": str(tmp_path / "missing.py")}], BATCH)
    with pytest.raises(BatchError, match="reserved"):  # a guest's records must not pass for the batch's own
        as_jobs([{"id": "a", "source": "x", "name": "workbench.batch"}], BATCH)
    with pytest.raises(BatchError, match="not one source"):
        as_jobs("print(1)", BATCH)  # type: ignore[arg-type]
    with pytest.raises(BatchError, match="not int"):
        as_jobs([42], BATCH)  # type: ignore[list-item]


def test_paths_are_read_on_the_client_with_their_language(tmp_path: Path) -> None:
    (tmp_path / "grade.py").write_text("print('hi')\n")
    [a, b] = as_jobs([tmp_path / "grade.py", {"id": "w", "path": str(tmp_path / "grade.py"), "lang": "python"}], BATCH)
    assert (a.source, a.lang, a.name) == (b"print('hi')\n", "python", "grade")
    assert b.id == "w" and b.source == a.source


def _state(tmp_path: Path, name: str = "w0") -> WorkerState:
    (tmp_path / "docs").mkdir(exist_ok=True)
    return WorkerState("b1", name, str(tmp_path), str(tmp_path / "audit"), "deny")


def test_a_worker_turns_every_job_into_a_result(tmp_path: Path) -> None:
    state = _state(tmp_path)
    jobs = as_jobs([
        {"id": "hello", "source": probes.hello(), "lang": "wat"},
        {"id": "trap", "source": probes.unreachable(), "lang": "wat"},
        {"id": "spin", "source": probes.infinite_loop(), "lang": "wat", "caps": ["time:limit:0.2s"]},
        {"id": "broken", "source": "(module (func", "lang": "wat"},
        {"id": "py", "source": "result = inputs['x'] + 1", "lang": "python", "inputs": {"x": 41}},
    ], Policy.parse(["time:limit:5s"]))
    results = {r.job_id: r for r in (state.run(job, 1) for job in jobs)}
    assert results["hello"].ok and results["hello"].result is not None
    assert results["trap"].outcome.startswith("fault")
    assert results["spin"].outcome == "stopped (time)"
    assert results["broken"].outcome == "error (CompileError)" and results["broken"].bad_input
    assert "not a valid" in (results["broken"].error or "") or "WAT" in (results["broken"].error or "")
    assert results["py"].result is not None and results["py"].result.value == 42

    frame = results_frame(results.values())
    assert list(frame.job_id) == ["hello", "trap", "spin", "broken", "py"]
    assert frame.loc[frame.job_id == "py", "value"].item() == 42
    assert frame.loc[frame.job_id == "spin", "violations"].item() == 1
    assert pd.isna(frame.loc[frame.job_id == "broken", "exit_code"].item())
    assert frame["value"].dtype == object and frame["exit_code"].dtype == "Int64"
    for column in ("wall_seconds", "cpu_seconds", "memory_peak_bytes", "output_bytes"):
        assert column in frame
    assert frame.loc[frame.job_id == "hello", "stdout"].item() == "hello from the sandbox\n"

    # its segment holds a start and an end record around each job, chained, beside the runs' own records
    log = AuditLog(tmp_path / "audit" / f"{state.label}.jsonl")
    assert log.verify().ok
    records = list(log.records())
    starts = [r["target"] for r in records if r["action"] == "job-start"]
    ends = {r["target"]: r for r in records if r["action"] == "job-end"}
    assert starts == ["hello", "trap", "spin", "broken", "py"] and set(ends) == set(starts)
    assert ends["py"]["run_id"] == results["py"].result.run_id
    assert ends["py"]["detail"]["outcome"] == "ok"
    assert results["py"].audit_hash == ends["py"]["hash"]
    assert {r["run_id"] for r in records if r["module"] != "workbench.batch"} == {
        r.result.run_id for r in results.values() if r.result is not None}


def test_a_worker_keeps_one_prepared_sandbox_per_policy(tmp_path: Path) -> None:
    state = _state(tmp_path)
    jobs = as_jobs([{"id": str(i), "source": probes.hello(), "lang": "wat",
                     "caps": ["time:limit:1s"] if i % 2 else None} for i in range(6)], BATCH)
    for job in jobs:
        assert state.run(job, 1).ok
    assert len(state._sandboxes) == 2


def test_a_cancelled_worker_refuses_the_jobs_not_started(tmp_path: Path) -> None:
    state = _state(tmp_path)
    state.cancel()
    [job] = as_jobs([probes.hello()], BATCH)
    result = state.run(job, 1)
    assert result.outcome == "cancelled" and result.result is None and not result.ok


def _trail(tmp_path: Path) -> Path:
    """Two workers' real segments (no client manifest)."""
    for name in ("w0", "w1"):
        state = _state(tmp_path, name)
        for job in as_jobs([{"id": f"{name}-{i}", "source": probes.hello(), "lang": "wat"} for i in range(3)], BATCH):
            state.run(job, 1)
        state.close()
    return tmp_path / "audit"


def test_open_many_verifies_and_loads_every_segment_with_a_worker_column(tmp_path: Path) -> None:
    folder = _trail(tmp_path)
    frame = AuditLog.open_many(folder)
    trail = AuditTrail(folder)
    assert len(trail.labels()) == 2 and all(label.startswith(("worker-w0-", "worker-w1-")) for label in trail.labels())
    assert isinstance(frame["worker"].dtype, pd.CategoricalDtype)
    assert set(frame["worker"]) == set(trail.labels())
    for label, log in trail.segments().items():
        mine = frame[frame.worker == label]
        assert list(mine.seq) == list(range(len(mine)))  # each segment is its own chain
        assert list(mine.hash) == [r["hash"] for r in log.records()]
    assert frame.decision.dtype == "category" and list(frame.decision.cat.categories) == ["allow", "deny", "kill", "audit"]
    lazy = trail.dask_frame()
    assert lazy.npartitions == 2
    computed = lazy.compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(computed.astype({"worker": str}), frame.astype({"worker": str}), check_categorical=False)
    assert int(lazy[lazy.action == "job-end"].shape[0].compute()) == 6


def test_open_many_refuses_a_trail_with_one_altered_segment(tmp_path: Path) -> None:
    folder = _trail(tmp_path)
    victim = sorted(folder.glob("worker-w1-*.jsonl"))[0]
    lines = victim.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"allow"', b'"deny"', 1) if b'"allow"' in lines[2] else lines[2].replace(b"job", b"jab", 1)
    victim.write_bytes(b"\n".join(lines))
    result = AuditTrail(folder).verify()
    assert not result.ok and len(result.problems) == 1 and victim.stem in result.problems[0]
    with pytest.raises(AuditError, match=victim.stem):
        AuditLog.open_many(folder)


def test_open_many_refuses_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="no audit segments"):
        AuditLog.open_many(tmp_path)
    shutil.rmtree(tmp_path)
    with pytest.raises(AuditError, match="no audit segments"):
        AuditLog.open_many(tmp_path)


def test_segment_labels_cannot_leave_the_folder_or_pose_as_rotated_files(tmp_path: Path) -> None:
    state = WorkerState("b1", "../../etc/passwd.1", str(tmp_path), str(tmp_path / "audit"), "deny")
    [job] = as_jobs([Job("a", probes.hello(), "wat")], BATCH)
    state.run(job, 1)
    files = [p.name for p in (tmp_path / "audit").iterdir()]
    assert all("/" not in name and name.count(".") in (1, 2) for name in files)
    assert AuditTrail(tmp_path / "audit").labels() == [state.label]
    assert "." not in state.label and state.label.startswith("worker-etc_passwd_1-")


def test_the_sandbox_and_the_results_frame_agree_on_usage(tmp_path: Path) -> None:
    state = _state(tmp_path)
    [job] = as_jobs([{"id": "m", "source": probes.memory_bomb(), "lang": "wat", "caps": ["memory:limit:1MiB"]}],
                    BATCH)
    result = state.run(job, 1)
    frame = results_frame([result])
    assert result.result is not None
    assert frame.memory_peak_bytes.item() == result.result.usage.memory_peak_bytes <= 2**20
    assert frame.violations.item() == len(result.result.violations) >= 1
    direct = Sandbox(Policy.parse(list(job.policy)), root=tmp_path).run(probes.memory_bomb(), "wat")
    assert direct.outcome == result.outcome


def test_the_cli_refuses_bad_job_files_before_starting_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    bad_json = tmp_path / "jobs.jsonl"
    bad_json.write_text('{"id": "a", "source": "print(1)", "lang": "python"}\n{"id": "b", "source": \n')
    assert main(["batch", str(bad_json), "-o", str(tmp_path / "r.csv")]) == 2
    assert "jobs.jsonl:2: not JSON" in capsys.readouterr().err

    greedy = tmp_path / "greedy.jsonl"
    greedy.write_text('{"id": "g", "source": "print(1)", "lang": "python", "caps": ["filesystem:read:/"]}\n')
    assert main(["batch", str(greedy), "--cap", "time:limit:1s", "-o", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "job 'g'" in err and "hint:" in err and "Traceback" not in err

    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "r.txt")]) == 2
    assert ".parquet or .csv" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["batch", str(empty), "-o", str(tmp_path / "r.csv")]) == 2
    assert "no source files" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_job_files_name_their_paths_relative_to_themselves(tmp_path: Path) -> None:
    from workbench.batch.commands import read_jobs

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "one.py").write_text("print(1)\n")
    (tmp_path / "jobs.jsonl").write_text('{"id": "x", "path": "src/one.py", "inputs": {"a": 1}}\n\n')
    [job] = read_jobs(tmp_path / "jobs.jsonl")
    [parsed] = as_jobs([job], BATCH)
    assert parsed.source == b"print(1)\n" and parsed.lang == "python" and parsed.inputs == {"a": 1}
    assert [j["id"] for j in read_jobs(tmp_path / "src")] == ["one.py"]


def test_progress_counts_jobs_and_shows_the_dashboard_link_in_a_notebook(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import IPython.display

    from workbench.batch import JobResult, progress

    shown: list[object] = []
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    bar = progress.Progress(3, None, "http://127.0.0.1:8787/status")
    assert bar._bar is not None  # on by default in a notebook
    for result in (JobResult("a", error="x", error_type="CompileError"), JobResult("b", error_type="cancelled"),
                   JobResult("c", error_type="lost")):
        bar.update(result)
    assert bar.not_ok == 3 and bar._bar.n == 3
    bar.close()
    assert len(shown) == 1 and 'href="http://127.0.0.1:8787/status"' in shown[0].data  # type: ignore[attr-defined]

    monkeypatch.setattr(progress, "in_notebook", lambda: False)
    quiet = progress.Progress(3, None, "http://127.0.0.1:8787/status")  # pytest's stderr is not a terminal
    assert quiet._bar is None and len(shown) == 1
    capsys.readouterr()


def test_a_worker_logs_its_first_compile_instead_of_writing_to_stderr(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A worker started from a notebook shares the kernel's stderr, which ipykernel copies into the running
    cell: a cold compile on a worker must not print there (it would change a notebook's outputs)."""
    import logging
    from types import SimpleNamespace

    from workbench.batch.worker import BatchPlugin
    from workbench.languages.progress import get_progress_hook, set_progress_hook

    previous = get_progress_hook()
    capsys.readouterr()
    try:
        plugin = BatchPlugin("p", "b", str(tmp_path), None, "deny")
        plugin.setup(SimpleNamespace(name="w"))  # a worker thread of this process (processes=False)
        assert get_progress_hook() is previous
        plugin.teardown(SimpleNamespace(name="w"))
        plugin.client_pid = -1  # as in a worker process of its own
        plugin.setup(SimpleNamespace(name="w"))
        with caplog.at_level(logging.INFO, logger="workbench.batch"):
            with get_progress_hook()("compiling the CPython interpreter (26 MB)", 8.0):
                pass
        plugin.teardown(SimpleNamespace(name="w"))
        assert get_progress_hook() is previous  # restored when the batch leaves the worker
    finally:
        set_progress_hook(previous)
    assert capsys.readouterr().err == ""
    assert "compiling the CPython interpreter (26 MB) (about 8 s, once per worker)" in caplog.text


def test_run_many_and_batch_take_one_list_of_keywords() -> None:
    """The keywords are listed once (BatchOptions), with their defaults once (DEFAULTS); a misspelt one is
    refused as in any Python call, with the nearest name, before anything starts."""
    import inspect
    import typing

    from workbench.batch import runner

    keys = set(runner.BatchOptions.__annotations__)
    assert keys == set(runner.DEFAULTS) == {"workers", "client", "root", "audit", "on_violation", "chunk_size",
                                            "progress", "processes"}
    for key in keys:
        assert f"``{key}``" in (runner.BatchOptions.__doc__ or ""), key
    for callable_ in (runner.run_many, runner.Batch.__init__):
        options = inspect.signature(callable_).parameters["options"]
        assert options.kind is inspect.Parameter.VAR_KEYWORD and options.annotation == "Unpack[BatchOptions]"
    assert typing.get_type_hints(runner.run_many, vars(runner))["options"] == typing.Unpack[runner.BatchOptions]
    with pytest.raises(TypeError, match="unexpected keyword argument 'worker'; did you mean 'workers'"):
        runner.run_many(["(module)"], None, worker=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'; it takes workers, client"):
        runner.Batch(["(module)"], None, colour="red")  # type: ignore[call-arg]


# -- a job's path is read below the jobs file's folder only (review mend: it was read from any host path) --

@pytest.fixture
def jobs_folder(tmp_path: Path) -> Path:
    """``jobs/`` with a source of its own, and bait outside it: ``outside/secret.py``."""
    import os

    (tmp_path / "jobs" / "src").mkdir(parents=True)
    (tmp_path / "jobs" / "src" / "one.py").write_text("print(1)\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.py").write_text("TOKEN = 'host secret'\n")
    os.symlink(tmp_path / "outside" / "secret.py", tmp_path / "jobs" / "link.py")           # a file symlink out
    os.symlink("../outside", tmp_path / "jobs" / "linked")                                   # a folder symlink out
    os.symlink("src/one.py", tmp_path / "jobs" / "inside.py")                                # a symlink that stays in
    return tmp_path / "jobs"


def _jobs_file(folder: Path, path: object) -> Path:
    import json

    file = folder / "jobs.jsonl"
    file.write_text(json.dumps({"id": "j1", "path": path}) + "\n")
    return file


@pytest.mark.parametrize("path, why", [
    ("link.py", "goes through a symlink ('link.py')"),
    ("linked/secret.py", "goes through a symlink ('linked')"),
    ("inside.py", "goes through a symlink ('inside.py')"),
    ("../outside/secret.py", "climbs out with '..'"),
    ("src/../../outside/secret.py", "climbs out with '..'"),
    ("ABSOLUTE", "is absolute"),
    ("/etc/passwd", "is absolute"),
    ("src/one.py\0.txt", "holds a NUL byte"),
    ("", "is not a relative file path"),
    (7, "is not a relative file path"),
    ("src", "is not a regular file"),
    ("src/", "is not a regular file"),
    ("nothere.py", "does not exist"),
])
def test_a_job_path_that_leaves_the_jobs_folder_is_refused_naming_the_job(jobs_folder: Path, path: object,
                                                                           why: str) -> None:
    from workbench.batch.commands import read_jobs

    if path == "ABSOLUTE":
        path = str(jobs_folder.parent / "outside" / "secret.py")
    with pytest.raises(BatchError) as info:
        read_jobs(_jobs_file(jobs_folder, path))
    assert str(info.value).startswith(f"job 'j1': the path {path!r} {why}"), str(info.value)
    assert info.value.hint and "no symlink" in info.value.hint


def test_a_fifo_is_refused_without_hanging(jobs_folder: Path) -> None:
    import os

    from workbench.batch.commands import read_jobs

    os.mkfifo(jobs_folder / "pipe.py")
    with pytest.raises(BatchError, match="is not a regular file"):
        read_jobs(_jobs_file(jobs_folder, "pipe.py"))


def test_a_symlink_swapped_in_for_a_folder_is_not_followed(jobs_folder: Path) -> None:
    """The walk opens each folder with O_NOFOLLOW relative to the one before: there is no check to race."""
    import os
    import shutil

    from workbench.batch.commands import read_jobs

    file = _jobs_file(jobs_folder, "src/one.py")
    assert read_jobs(file)[0]["source"] == b"print(1)\n"
    shutil.rmtree(jobs_folder / "src")
    os.symlink("../outside", jobs_folder / "src")
    (jobs_folder.parent / "outside" / "one.py").write_text("TOKEN = 'host secret'\n")
    with pytest.raises(BatchError, match="goes through a symlink \\('src'\\)"):
        read_jobs(file)


def test_jobs_root_widens_the_folder_paths_are_read_below(jobs_folder: Path) -> None:
    from workbench.batch.commands import read_jobs

    (jobs_folder / "manifests").mkdir()
    file = _jobs_file(jobs_folder / "manifests", "src/one.py")
    with pytest.raises(BatchError, match="does not exist below"):
        read_jobs(file)  # relative to manifests/, where there is no src/
    [job] = read_jobs(file, root=jobs_folder)
    assert job["source"] == b"print(1)\n" and job["lang"] == "python" and job["name"] == "one"
    with pytest.raises(BatchError, match="climbs out"):
        read_jobs(_jobs_file(jobs_folder / "manifests", "../../outside/secret.py"), root=jobs_folder)


def test_a_folder_of_sources_refuses_a_symlink_in_it(jobs_folder: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.batch.commands import read_jobs
    from workbench.cli import main

    with pytest.raises(BatchError, match="job 'inside.py': the path 'inside.py' goes through a symlink"):
        read_jobs(jobs_folder)
    assert main(["batch", str(jobs_folder), "-o", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "symlink" in err and "hint:" in err and "Traceback" not in err and not (tmp_path / "r.csv").exists()
    assert main(["batch", str(_jobs_file(jobs_folder, "../outside/secret.py")), "-o", str(tmp_path / "r.csv")]) == 2
    assert "job 'j1': the path '../outside/secret.py' climbs out with '..'" in capsys.readouterr().err


def test_no_path_a_jobs_file_can_write_reads_the_host_secret(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Property: whatever path a job names (built from '..', '.', '', symlinks out and in, real names), it
    is read only if it names a regular file below the folder without a symlink on the way (the oracle:
    ``os.path.realpath`` of it lies inside and no prefix is a link), and the secret's bytes never come back."""
    import os

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from workbench.batch.paths import read_below

    base = tmp_path_factory.mktemp("walk")
    folder = base / "jobs"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "one.py").write_text("print(1)\n")
    (base / "outside").mkdir()
    (base / "outside" / "secret.py").write_text("SECRET\n")
    os.symlink(base / "outside" / "secret.py", folder / "link.py")
    os.symlink("../outside", folder / "linked")
    os.symlink("src", folder / "alias")
    parts = st.sampled_from(["..", ".", "", "src", "one.py", "link.py", "linked", "alias", "secret.py", "jobs",
                             "outside"])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(parts, min_size=1, max_size=6), st.booleans())
    def check(pieces: list[str], absolute: bool) -> None:
        path = ("/" if absolute else "") + "/".join(pieces)
        walked = [p for p in path.split("/") if p not in ("", ".")]
        prefixes = [folder.joinpath(*walked[: i + 1]) for i in range(len(walked))]
        allowed = (not absolute and bool(walked) and ".." not in walked
                   and not any(p.is_symlink() for p in prefixes) and prefixes[-1].is_file())
        try:
            content = read_below(folder, path, "j")
        except BatchError:
            assert not allowed, path
            return
        assert allowed and content == prefixes[-1].read_bytes() != b"SECRET\n", path
        assert os.path.realpath(prefixes[-1]).startswith(str(folder.resolve()) + os.sep)

    check()


def test_a_guest_that_starts_after_the_cancel_is_stopped_too(tmp_path: Path) -> None:
    """The race: a job past the cancel flag's check, still being prepared when the cancel came (no run in
    progress to stop), ran to its own limit.  Here the cancel lands before the run is registered."""
    import threading
    import time

    state = _state(tmp_path)
    [job] = as_jobs([{"id": "spin", "source": probes.infinite_loop(), "lang": "wat", "caps": ["time:limit:30s"]}],
                    Policy.parse(["time:limit:30s"]))
    sandbox = state.sandbox(job.policy)
    original = sandbox.run

    def run_after_the_cancel(*args: Any, **kwargs: Any) -> Any:
        state.cancel()  # the cancel arrives now: nothing is running yet, so it stops nothing
        return original(*args, **kwargs)

    sandbox.run = run_after_the_cancel  # type: ignore[method-assign]
    finished = threading.Event()
    results: list[Any] = []
    worker = threading.Thread(target=lambda: (results.append(state.run(job, 1)), finished.set()))
    worker.start()
    assert finished.wait(20), "the guest ran on after the cancel"
    [result] = results
    assert result.outcome == "cancelled" and result.result is not None
    assert result.result.usage.wall_seconds < 20
    assert any(e.action == "cancel" for e in result.result.events)


def test_a_job_may_name_a_catalog_module(tmp_path: Path) -> None:
    """Issue 15: a job names an extensions/ module; it runs under its manifest's request ∩ the job's
    policy, and a module asking for more than the batch grants is that job's result, not the batch's end."""
    state = _state(tmp_path)
    jobs = as_jobs([
        {"id": "count", "module": "wordcount", "inputs": {"text": "to be or not to be", "top": 1}},
        {"id": "fetch", "module": "fetcher", "inputs": {"url": "http://127.0.0.1:9/"}},  # no network granted
    ], Policy.parse(["time:limit:20s"]))
    assert [job.module for job in jobs] == ["wordcount", "fetcher"]
    results = {r.job_id: r for r in (state.run(job, 1) for job in jobs)}
    assert results["count"].ok and results["count"].result is not None
    assert results["count"].result.value == {"words": 6, "top": [["to", 2]]}
    assert results["fetch"].outcome == "error (EscalationError)" and results["fetch"].bad_input


@pytest.mark.parametrize("item, message", [
    ({"id": "a", "module": "no-such-module"}, "no-such-module"),
    ({"id": "b", "module": "wordcount", "source": "x"}, "exactly one of"),
    ({"id": "c", "module": "wordcount", "lang": "python"}, "takes no 'lang'"),
    ({"id": "d", "module": ""}, "catalog module"),
    ({"id": "e", "module": 7}, "catalog module"),
])
def test_a_bad_module_job_is_refused_before_anything_runs(item: dict[str, Any], message: str) -> None:
    with pytest.raises(BatchError, match=message) as info:
        as_jobs([item], BATCH)
    assert f"job {item['id']!r}" in str(info.value)
