"""workbench.batch on a real LocalCluster with 2 worker processes (issue 15's "must hold").

Marked ``slow``: each test waits on real worker processes (a cluster starts in a few seconds,
a killed worker restarts in about as long).  The bounds on time are generous: the machine is
shared, and what is asserted is behaviour, never speed.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import cloudpickle
import dask
import pandas as pd
import pytest
from distributed import Client, LocalCluster, WorkerPlugin

import workbench.batch.worker as batch_worker
from workbench import AuditLog, Policy, Sandbox, probes
from workbench.audit import AuditTrail
from workbench.batch import Job, run_many
from workbench.errors import CompileError, EscalationError, SandboxError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    # allowed-failures 0, as run_many sets on its own LocalCluster: every retry is the batch's own, and recorded
    # and worker-saturation 1.0, as run_many sets too: a worker holds only the chunk it runs
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR)
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "docs").mkdir(parents=True)
    (tmp_path / "root" / "docs" / "readme.txt").write_text("public notes\n")
    (tmp_path / "root" / "secret.txt").write_text("TOP-SECRET\n")
    return tmp_path / "root"


BATCH_CAPS = ["filesystem:read:/docs", "time:limit:10s", "memory:limit:64MiB"]


def _program(i: int) -> dict[str, Any]:
    """Job ``i`` of a mixed batch: small Python programs checked against their own test, and
    guests that trap, spin, read what they may not, or do not compile."""
    kind = i % 10
    if kind in (0, 1, 2, 3):  # a program and its test: every seventh is wrong
        want = i * i if i % 7 else i * i + 1
        source = ("def square(x):\n    return x * x\n"
                  f"assert square(inputs['x']) == inputs['want'], 'wrong answer'\n"
                  "print('passed', inputs['x'])\nresult = square(inputs['x'])\n")
        return {"id": f"square-{i}", "source": source, "lang": "python", "inputs": {"x": i, "want": want}}
    if kind == 4:
        return {"id": f"exit-{i}", "source": f"import sys\nprint('bye')\nsys.exit({i % 5 + 1})\n", "lang": "python"}
    if kind == 5:  # reads a granted file; every other one narrows its policy so the same read is refused
        caps = ["time:limit:5s"] if i % 20 == 5 else None
        return {"id": f"read-{i}", "source": "print(open('/docs/readme.txt').read())\n", "lang": "python",
                "caps": caps}
    if kind == 6:
        return {"id": f"peek-{i}", "source": probes.read_file("secret.txt"), "lang": "wat"}
    if kind == 7:
        return {"id": f"trap-{i}", "source": probes.unreachable() if i % 20 == 7 else probes.divide_by_zero(),
                "lang": "wat"}
    if kind == 8:
        if i % 40 == 8:  # a few that spin until their (narrowed) deadline
            return {"id": f"spin-{i}", "source": probes.infinite_loop(), "lang": "wat", "caps": ["time:limit:0.3s"]}
        return {"id": f"hello-{i}", "source": probes.hello(f"job {i}\n"), "lang": "wat"}
    if i % 50 == 9:
        return {"id": f"broken-{i}", "source": "(module (func $f (unknown_instruction)))", "lang": "wat"}
    return {"id": f"value-{i}", "source": "result = {'n': inputs['n'], 'items': list(range(inputs['n']))}\n",
            "lang": "python", "inputs": {"n": i % 13}}


def _one_by_one(job: dict[str, Any], root: Path) -> tuple[Any, ...]:
    """The oracle: the same job as a plain Sandbox.run in this process."""
    policy = Policy.parse(BATCH_CAPS)
    if job.get("caps") is not None:
        policy = policy.attenuate(Policy.parse(job["caps"]))
    try:
        r = Sandbox(policy, root=root).run(job["source"], job["lang"], inputs=job.get("inputs"))
    except SandboxError as exc:
        return (f"error ({type(exc).__name__})", None, "", None, 0)
    return (r.outcome, r.exit_code, r.stdout, r.value, len(r.violations))


def test_200_jobs_give_the_same_outcomes_as_running_them_one_by_one(client: Client, root: Path,
                                                                    tmp_path: Path) -> None:
    jobs = [_program(i) for i in range(200)]
    expected = {job["id"]: _one_by_one(job, root) for job in jobs}  # first: it also fills the disk cache
    before = client.run(_cache_counters)
    batch = run_many(jobs, BATCH_CAPS, client=client, root=root, audit=tmp_path / "audit")
    seen = []
    for result in batch:  # results arrive while the batch runs, each job once
        seen.append(result.job_id)
    assert sorted(seen) == sorted(j["id"] for j in jobs)
    frame = batch.frame()
    assert list(frame.job_id) == [j["id"] for j in jobs]  # the frame keeps the order given

    for row in frame.itertuples():
        got = (row.outcome, None if pd.isna(row.exit_code) else int(row.exit_code), row.stdout, row.value,
               row.violations)
        assert got == expected[row.job_id], row.job_id

    outcomes = set(frame.outcome)
    assert {"ok", "exit 1", "violation", "stopped (time)", "error (CompileError)"} <= outcomes
    assert any(o.startswith("fault") for o in outcomes)
    assert frame.loc[frame.job_id == "read-5", "outcome"].item() == "violation"   # narrowed: refused
    assert frame.loc[frame.job_id == "read-15", "outcome"].item() == "ok"         # batch policy: allowed
    assert set(frame.worker.dropna()) and len(set(frame.worker.dropna())) == 2   # both workers took jobs
    assert (frame.attempts == 1).all()

    # one audit trail: every segment verifies, each job's records are in the segment its result names
    trail = AuditLog.open_many(tmp_path / "audit")
    assert len(set(trail.worker)) == 3  # two workers and the client
    ends = trail[(trail.module == "workbench.batch") & (trail.action == "job-end")]
    assert sorted(ends.target) == sorted(seen)
    for row in frame.itertuples():
        end = ends[ends.target == row.job_id]
        assert list(end.worker) == [row.worker]
        if not pd.isna(row.run_id):
            runs = trail[trail.run_id == row.run_id]
            assert set(runs.worker) == {row.worker} and "start" in set(runs.action)
    # the jobs that tried something they should not, found from the trail alone
    denied = trail[(trail.decision == "deny") & (trail.category == "filesystem")]
    job_of_run = dict(zip(ends.run_id, ends.target))
    assert {job_of_run[r] for r in denied.run_id} == set(frame.job_id[frame.outcome == "violation"])

    # compile once per worker: each worker process compiled or loaded each distinct module at most once (the
    # interpreter of every Python job included), then found it in memory; one prepared sandbox per policy
    after = client.run(_cache_counters)
    modules = 1 + len({j["source"] for j in jobs if j["lang"] == "wat"})
    stats = batch.worker_stats
    assert len(stats) == 2 and set(after) == set(before) == set(stats)
    for address, numbers in stats.items():
        loaded = after[address]["compiles"] + after[address]["disk_hits"] - before[address]["compiles"] - \
            before[address]["disk_hits"]
        python_jobs = sum(1 for r in batch.results.values()
                          if r.worker == numbers["segment"] and r.result is not None and
                          r.job_id.startswith(("square", "exit", "read", "value")))
        assert python_jobs >= 20
        assert loaded <= modules < numbers["jobs"]
        assert after[address]["hits"] - before[address]["hits"] >= python_jobs - 1
        assert numbers["sandboxes"] == 3  # the batch policy and the two narrowed ones


def _cache_counters() -> dict[str, int]:
    from workbench.runtime.sandbox import shared_cache

    cache = shared_cache()
    return {"compiles": cache.compiles, "disk_hits": cache.disk_hits, "hits": cache.hits}


def test_the_manifest_catches_a_segment_that_was_deleted_or_cut(client: Client, root: Path, tmp_path: Path) -> None:
    jobs = [{"id": str(i), "source": probes.hello(), "lang": "wat"} for i in range(12)]
    run_many(jobs, None, client=client, root=root, audit=tmp_path / "audit", chunk_size=2).wait()
    trail = AuditTrail(tmp_path / "audit")
    assert trail.verify().ok
    workers = [label for label in trail.labels() if label.startswith("worker-")]
    assert len(workers) == 2

    deleted = tmp_path / "deleted"
    shutil.copytree(tmp_path / "audit", deleted)
    for path in deleted.glob(f"{workers[0]}.jsonl*"):
        path.unlink()
    result = AuditTrail(deleted).verify()
    assert not result.ok and any(workers[0] in p and "missing" in p for p in result.problems)

    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "audit", cut)
    (cut / f"{workers[1]}.jsonl.head").unlink()  # no head file: the chain alone cannot see the cut
    live = cut / f"{workers[1]}.jsonl"
    lines = live.read_bytes().splitlines(keepends=True)
    live.write_bytes(b"".join(lines[:-2]))
    assert AuditLog(live).verify().ok  # a clean cut at a record boundary
    result = AuditTrail(cut).verify()
    assert not result.ok and any(workers[1] in p and "cut" in p for p in result.problems)
    with pytest.raises(SandboxError, match="does not verify"):
        AuditLog.open_many(cut)


def test_a_job_that_widens_the_batch_policy_stops_the_batch_before_it_starts(client: Client, root: Path,
                                                                            tmp_path: Path) -> None:
    jobs = [{"id": "ok", "source": probes.hello(), "lang": "wat"},
            {"id": "greedy", "source": probes.read_file("secret.txt"), "lang": "wat", "caps": ["filesystem:read:/"]}]
    before = set(client.who_has())
    with pytest.raises(EscalationError, match="job 'greedy'"):
        run_many(jobs, BATCH_CAPS, client=client, root=root, audit=tmp_path / "audit")
    assert not (tmp_path / "audit").exists()
    assert set(client.who_has()) == before


def test_cancel_stops_running_guests_and_keeps_the_results_in(client: Client, root: Path, tmp_path: Path) -> None:
    jobs = [{"id": f"quick-{i}", "source": probes.hello(), "lang": "wat"} for i in range(4)]
    jobs += [{"id": f"spin-{i}", "source": probes.infinite_loop(), "lang": "wat"} for i in range(6)]
    batch = run_many(jobs, ["time:limit:60s"], client=client, root=root, audit=tmp_path / "audit", chunk_size=1)
    quick = []
    for result in batch:
        quick.append(result)
        if len(quick) == 4:
            break
    assert all(r.ok for r in quick)
    time.sleep(0.5)  # the spinners are running now
    started = time.monotonic()
    batch.cancel()
    frame = batch.frame()
    waited = time.monotonic() - started
    assert waited < 15  # not the 60 s the spinners were allowed (generous: a busy machine)
    assert list(frame.outcome[:4]) == ["ok"] * 4
    assert set(frame.outcome[4:]) == {"cancelled"}
    stopped = [r for r in batch.results.values() if r.result is not None and r.job_id.startswith("spin")]
    assert stopped, "the running spinners come back with their runs"
    for r in stopped:
        assert r.result is not None and r.result.usage.wall_seconds < waited + 2
    records = AuditTrail(tmp_path / "audit").frame()
    assert "cancel" in set(records.action)


def test_ctrl_c_while_iterating_cancels_and_keeps_the_results_in(client: Client, root: Path) -> None:
    jobs = [{"id": f"quick-{i}", "source": probes.hello(), "lang": "wat"} for i in range(2)]
    jobs += [{"id": f"spin-{i}", "source": probes.infinite_loop(), "lang": "wat"} for i in range(4)]
    batch = run_many(jobs, ["time:limit:60s"], client=client, root=root, chunk_size=1)
    main = threading.get_ident()
    got = []
    timer = None
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for result in batch:
            got.append(result.job_id)
            if len(got) == 2:
                timer = threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT))
                timer.start()
    assert time.monotonic() - started < 20
    assert sorted(got) == ["quick-0", "quick-1"]
    frame = batch.frame()
    assert list(frame.outcome[:2]) == ["ok", "ok"] and set(frame.outcome[2:]) == {"cancelled"}


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def test_killing_a_worker_mid_batch_loses_no_result(root: Path, tmp_path: Path) -> None:
    # run_many's own LocalCluster (no client): the embedded default
    spin = ("import time\nstart = time.time()\nwhile time.time() - start < 0.15:\n    pass\n"
            "result = inputs['i']\n")
    jobs = [{"id": f"job-{i}", "source": spin, "lang": "python", "inputs": {"i": i}} for i in range(24)]
    batch = run_many(jobs, ["time:limit:20s"], workers=2, root=root, audit=tmp_path / "audit", chunk_size=3)
    try:
        got = []
        killed = False
        # jobs wait a bounded time when no worker is left, rather than for ever
        assert batch.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.no_workers_timeout) == 300
        assert batch.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.WORKER_SATURATION) == 1.0
        for result in batch:
            got.append(result)
            if len(got) >= 3 and not killed:
                busy = [address for address, keys in batch.client.processing().items() if keys]
                pids = batch.client.run(os.getpid, workers=busy[:1])
                _kill(next(iter(pids.values())))
                killed = True
        assert killed
    finally:
        batch.close()
    frame = batch.frame()
    assert list(frame.outcome) == ["ok"] * 24
    assert list(frame.value) == list(range(24))
    retried = set(frame.job_id[frame.attempts == 2])
    assert retried, "the jobs of the killed worker's chunk ran again"
    trail = AuditTrail(tmp_path / "audit")
    assert trail.verify().ok
    records = trail.frame()
    retries = records[(records.module == "workbench.batch") & (records.action == "retry")]
    assert set(retries.target) == retried  # each retry is recorded, by the client
    # every retried job started again; the one the worker was running when killed started in two
    # worker processes' segments (the killed one's, and the survivor's or the restarted worker's,
    # as the load decides); jobs still queued behind it had not started before the kill
    starts = records[(records.action == "job-start") & records.target.isin(retried)]
    per_job = starts.groupby("target").worker.nunique()
    assert set(per_job.index) == retried and per_job.max() == 2, starts[["target", "worker"]]


class _Crash(WorkerPlugin):
    """Test-only: a guest module named ``crash-me`` kills its worker process in the middle of its run,
    as a native crash inside wasmtime would."""

    name = "test-crash"

    def setup(self, worker: Any) -> None:
        import workbench.runtime.sandbox as sandbox_module

        original = sandbox_module.Sandbox.run
        self._original = original

        def run(sandbox: Any, source: Any, lang: Any = None, **kwargs: Any) -> Any:
            if kwargs.get("name") == "crash-me":
                os.kill(os.getpid(), signal.SIGKILL)
            return original(sandbox, source, lang, **kwargs)

        sandbox_module.Sandbox.run = run  # type: ignore[method-assign]

    def teardown(self, worker: Any) -> None:
        """Unregistering undoes the patch in the worker (no restart: restarting every worker while a
        nanny is still bringing back the one the crash killed can leave the cluster with none)."""
        import workbench.runtime.sandbox as sandbox_module

        sandbox_module.Sandbox.run = self._original  # type: ignore[method-assign]


def test_a_native_crash_costs_one_job_not_the_batch(client: Client, root: Path, tmp_path: Path) -> None:
    me = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(me)
    try:
        client.register_plugin(_Crash(), name=_Crash.name)
        jobs = [{"id": f"ok-{i}", "source": probes.hello(), "lang": "wat"} for i in range(8)]
        jobs.insert(3, {"id": "crash", "source": probes.hello(), "lang": "wat", "name": "crash-me"})
        frame = run_many(jobs, None, client=client, root=root, audit=tmp_path / "audit", chunk_size=4).frame()
    finally:
        client.unregister_worker_plugin(_Crash.name)
        cloudpickle.unregister_pickle_by_value(me)
        client.wait_for_workers(2, timeout=600)  # the nanny brings the killed ones back (slowly on a busy machine)
    crash = frame[frame.job_id == "crash"]
    assert crash.outcome.item() == "lost (worker died)" and crash.attempts.item() == 2
    others = frame[frame.job_id != "crash"]
    assert set(others.outcome) == {"ok"} and len(others) == 8
    assert set(others.attempts[others.job_id.isin(["ok-0", "ok-1", "ok-2"])]) == {2}  # its chunk ran again, alone
    records = AuditTrail(tmp_path / "audit").frame()
    lost = records[(records.module == "workbench.batch") & (records.action == "lost")]
    assert list(lost.target) == ["crash"]
    starts = records[(records.action == "job-start") & (records.target == "crash")]
    assert len(starts) == 2 and starts.worker.nunique() == 2  # both deaths are in the dead workers' segments


def test_bad_input_is_a_result_not_an_error(client: Client, root: Path) -> None:
    jobs = [{"id": "bad-wat", "source": "(module (func (i32.bogus)))", "lang": "wat"},
            {"id": "not-wasm", "source": b"\0asm\x01\0\0\0garbage", "lang": "wasm"},
            {"id": "good", "source": probes.hello(), "lang": "wat"}]
    frame = run_many(jobs, None, client=client, root=root).frame()
    assert list(frame.outcome) == ["error (CompileError)", "error (CompileError)", "ok"]
    with pytest.raises(CompileError) as info:
        Sandbox(None, root=root).run(jobs[0]["source"], "wat")
    assert frame.error[0] == str(info.value)


def test_the_batch_command_writes_every_row_and_exits_2_on_bad_input(root: Path, tmp_path: Path) -> None:
    import subprocess

    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "good.py").write_text("print('hi')\nresult = 7\n")
    (jobs / "peek.wat").write_text(probes.read_file("secret.txt"))
    (jobs / "broken.wat").write_text("(module (func (bogus)))\n")
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}  # a native abort at exit must show
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "batch", str(jobs), "--cap", "time:limit:5s",
                           "--workers", "1", "--root", str(root), "--audit", str(tmp_path / "audit"),
                           "--no-progress", "-o", str(tmp_path / "results.parquet")],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "bad input: job broken.wat" in proc.stderr and "Traceback" not in proc.stderr
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert dict(zip(frame.job_id, frame.outcome)) == {"broken.wat": "error (CompileError)", "good.py": "ok",
                                                      "peek.wat": "violation"}
    assert frame.loc[frame.job_id == "good.py", "value"].item() == "7"
    assert AuditTrail(tmp_path / "audit").verify().ok
