"""Batch throughput: a plain ``Sandbox.run`` loop against ``run_many`` on Dask workers (issue 15).

Run: ``.venv/bin/python benchmarks/bench_batch.py [--jobs 1000 --rounds 3 --memory-jobs 10000]``

The jobs are generated: small Python programs, each checked against its own test (an
``assert`` on its inputs; every ninth is wrong and exits 1), the shape of a class's
submissions.  Every configuration runs the same jobs, after a warm-up batch on the same
workers (the interpreter is loaded once per worker, and cluster start-up is not counted).
Rounds are interleaved and medians reported (this machine is shared and noisy):

- ``loop``: a plain ``Sandbox.run`` loop in this process (the baseline);
- ``threads x1``, ``threads x2``: a ``LocalCluster`` whose workers are threads of this process;
- ``processes x1``, ``processes x2``: a ``LocalCluster`` with one or two worker processes
  (what ``run_many`` starts by default).

Reported: jobs/s each; the scaling ratio from 1 to 2 workers (target >= 1.7x on an idle 2-core
machine); the per-job overhead of the Dask path, ``processes x1`` time per job over ``loop``
time per job (target <= 1.3x); and each worker's resident memory after ``--memory-jobs`` jobs
against after the warm-up (target: flat, <= 50 MB growth).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import Policy, Sandbox  # noqa: E402
from workbench.batch import run_many  # noqa: E402

CAPS = ["time:limit:10s", "memory:limit:64MiB"]


def programs(n: int, offset: int = 0) -> list[dict[str, Any]]:
    """``n`` small graded programs: a function, and a test of it against the expected answer."""
    jobs = []
    for i in range(offset, offset + n):
        k, c = i % 17 + 1, i % 5
        want = k * i + c + (1 if i % 9 == 0 else 0)
        source = (f"def solve(x):\n    total = 0\n    for _ in range({k}):\n        total += x\n"
                  f"    return total + {c}\n"
                  "got = solve(inputs['x'])\n"
                  "assert got == inputs['want'], f'expected {inputs[\"want\"]}, got {got}'\n"
                  "print('passed')\nresult = got\n")
        jobs.append({"id": f"p{i}", "source": source, "lang": "python", "inputs": {"x": i, "want": want}})
    return jobs


def plain_loop(jobs: list[dict[str, Any]]) -> float:
    sandbox = Sandbox(Policy.parse(CAPS))
    start = time.perf_counter()
    for job in jobs:
        sandbox.run(job["source"], job["lang"], inputs=job["inputs"])
    return time.perf_counter() - start


class Cluster:
    def __init__(self, workers: int, processes: bool) -> None:
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                                    dashboard_address=":0", silence_logs=logging.ERROR)
        self.client = Client(self.cluster, set_as_default=False)
        run_many(programs(20, offset=10**6), CAPS, client=self.client, progress=False).wait()  # warm-up

    def run(self, jobs: list[dict[str, Any]], **options: Any) -> float:
        start = time.perf_counter()
        batch = run_many(jobs, CAPS, client=self.client, progress=False, **options)
        results = batch.wait()
        elapsed = time.perf_counter() - start
        bad = [r for r in results.values() if r.result is None]
        assert not bad, bad[:3]
        return elapsed

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


def memory(jobs_total: int) -> list[tuple[str, float, float]]:
    """Each worker's RSS (MB) after a warm-up and after ``jobs_total`` more jobs (2 worker processes)."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    client = Client(cluster, set_as_default=False)
    try:
        warm = run_many(programs(200, offset=10**6), CAPS, client=client, progress=False)
        warm.wait()
        before = {s["pid"]: s["rss_bytes"] for s in warm.worker_stats.values()}
        done = 0
        after: dict[int, int] = {}
        while done < jobs_total:  # in batches of 2,000, as a long-lived cluster would see them
            n = min(2000, jobs_total - done)
            batch = run_many(programs(n, offset=done), CAPS, client=client, progress=False)
            batch.wait()
            after = {s["pid"]: s["rss_bytes"] for s in batch.worker_stats.values()}
            done += n
        return [(str(pid), before[pid] / 1e6, after[pid] / 1e6) for pid in sorted(before) if pid in after]
    finally:
        client.close()
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-jobs", type=int, default=10_000, help="0 skips the memory run")
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # closing clusters logs lost comms
    jobs = programs(args.jobs)
    print(f"{args.jobs} jobs, {args.rounds} rounds, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")

    plain_loop(programs(20, offset=10**6))  # the interpreter into this process's cache
    configs = {"threads x1": (1, False), "threads x2": (2, False), "processes x1": (1, True),
               "processes x2": (2, True)}
    clusters = {name: Cluster(*spec) for name, spec in configs.items()}
    times: dict[str, list[float]] = {name: [] for name in ["loop", *configs]}
    try:
        for _ in range(args.rounds):
            times["loop"].append(plain_loop(jobs))
            for name, cluster in clusters.items():
                times[name].append(cluster.run(jobs))
        # for docs/scaling.md: what one Dask task costs (chunks of 1 against the default chunks, one
        # worker), and how many audit bytes a job leaves in its worker's segment
        single = clusters["processes x1"]
        sample = jobs[: min(len(jobs), 300)]
        per_task = []
        for _ in range(args.rounds):
            chunked = single.run(sample)
            alone = single.run(sample, chunk_size=1)
            per_task.append((alone - chunked) / (len(sample) - len(sample) / 16))
        with tempfile.TemporaryDirectory() as folder:
            single.run(sample, audit=folder)
            audit_bytes = sum(p.stat().st_size for p in Path(folder).iterdir() if p.name.startswith("worker-"))
    finally:
        for cluster in clusters.values():
            cluster.close()

    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in median.items():
        print(f"  {name:13s} {args.jobs / t:7.1f} jobs/s   {1000 * t / args.jobs:6.2f} ms/job   "
              f"(rounds: {', '.join(f'{x:.2f}s' for x in times[name])})")
    print(f"scaling 1 -> 2 worker processes: {median['processes x1'] / median['processes x2']:.2f}x (target >= 1.7x)")
    print(f"scaling 1 -> 2 worker threads:   {median['threads x1'] / median['threads x2']:.2f}x")
    print(f"Dask per-job overhead, processes x1 / loop: {median['processes x1'] / median['loop']:.2f}x (target <= 1.3x)")
    print(f"2 processes / 2 threads (time): {median['processes x2'] / median['threads x2']:.2f}x")
    print(f"one Dask task costs {1000 * statistics.median(per_task):.2f} ms more than a job inside a chunk "
          f"(chunks of 1 against chunks of 16, 1 worker process)")
    print(f"audit segment bytes per job: {audit_bytes / len(sample):.0f}")
    if args.memory_jobs:
        for pid, before, after in memory(args.memory_jobs):
            print(f"worker pid {pid}: RSS {before:.1f} MB after warm-up, {after:.1f} MB after "
                  f"{args.memory_jobs} more jobs: {after - before:+.1f} MB (target <= +50 MB)")


if __name__ == "__main__":
    main()
