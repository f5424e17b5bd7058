"""Audit log benchmarks: append throughput, and loading a million records into a DataFrame,
each for an unkeyed and a keyed (HMAC-SHA256) log.

    .venv/bin/python benchmarks/bench_audit.py                 # defaults below
    .venv/bin/python benchmarks/bench_audit.py --rows 200000 --rounds 3
    .venv/bin/python benchmarks/bench_audit.py --keep /tmp/audit-bench   # reuse the generated files

Prints medians (and min/max, because this machine is shared and noisy), and the
keyed/unkeyed ratio of the medians, measured in the same process.
Target (the brief): 1,000,000 records into a typed DataFrame in <= 3 s on 2 cores,
keyed and unkeyed.

The big files are generated once per run (or reused with ``--keep``) straight
from :func:`workbench.audit.record.build_record`, so they are real, verifiable
chains of realistic records (~540 bytes each, ~610 keyed), not the writer's speed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from workbench.audit import AuditKey, AuditLog, frame
from workbench.audit.files import encode_head, head_path
from workbench.audit.record import GENESIS_HASH, build_record
from workbench.events import Event

CATEGORIES = [("filesystem", "open"), ("filesystem", "mkdir"), ("network", "connect"), ("env", "get"),
              ("memory", "grow"), ("module", "call"), ("lifecycle", "start"), ("lifecycle", "exit")]
DECISIONS = ["allow"] * 8 + ["deny", "audit"]


def event(rng: random.Random, i: int) -> dict:
    category, action = rng.choice(CATEGORIES)
    decision = rng.choice(DECISIONS)
    return {
        "ts": 1.7e9 + i * 0.001, "run_id": f"run-{i // 1000:06d}", "category": category, "action": action,
        "decision": decision, "target": f"/docs/file-{rng.randrange(5000)}.txt",
        "resolved": f"/home/u/project/docs/file-{rng.randrange(5000)}.txt" if decision == "allow" else None,
        "capability": "filesystem:read:/docs" if decision == "allow" else None,
        "reason": None if decision == "allow" else "not granted", "errno": None if decision == "allow" else 2,
        "module": rng.choice(["main", "parser", "fmt"]), "module_sha256": "ab" * 32,
        "caller_chain": ["main"] if category == "module" else [],
        "detail": {"flags": "r", "bytes": rng.randrange(100_000)},
    }


#: a fixed key, so ``--keep`` files stay verifiable across runs
KEY = AuditKey(b"bench_audit.py: a fixed 32-byte key")


def generate(path: Path, rows: int, key: AuditKey | None) -> None:
    rng = random.Random(1)
    prev = GENESIS_HASH
    with open(path, "wb") as f:
        batch: list[bytes] = []
        for i in range(rows):
            record, line = build_record(event(rng, i), i, prev, key)
            prev = record["hash"]
            batch.append(line)
            if len(batch) == 10_000:
                f.write(b"".join(batch))
                batch.clear()
        f.write(b"".join(batch))
    mac = key.head_mac(rows - 1, prev) if key is not None else None
    head_path(path).write_bytes(encode_head(rows - 1, prev, mac))  # as the writer leaves it


def summary(values: list[float], unit: str, fmt: str = "{:,.0f}") -> str:
    med = statistics.median(values)
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return f"median {fmt.format(med)} {unit}  (min {low}, max {high}, n={len(values)})"


def bench_append(directory: Path, records: int, rounds: int, fsync: bool) -> dict[str, list[float]]:
    """records/s, per mode; the modes alternate round by round so load changes hit both alike."""
    sample = Event(run_id="run-000123", category="filesystem", action="open", decision="allow",
                   target="/docs/report-17.txt", resolved="/home/u/project/docs/report-17.txt",
                   capability="filesystem:read:/docs", module="main", module_sha256="ab" * 32,
                   caller_chain=("main",), detail={"flags": "r", "bytes": 1024})
    rates: dict[str, list[float]] = {"unkeyed": [], "keyed": []}
    for r in range(rounds):
        for mode, key in (("unkeyed", None), ("keyed", KEY)):
            path = directory / f"append-{mode}-{fsync}-{r}.jsonl"
            with AuditLog(path, fsync=fsync, key=key) as log:
                log.open()
                start = time.perf_counter()
                for _ in range(records):
                    log.append(sample)
                rates[mode].append(records / (time.perf_counter() - start))
            result = AuditLog(path).verify(key=key)
            assert result.ok and result.authenticated == (key is not None), result.reason
    return rates


def ratio(keyed: list[float], unkeyed: list[float]) -> str:
    return f"keyed/unkeyed {statistics.median(keyed) / statistics.median(unkeyed):.2f}x"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="records in the load benchmark")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per measurement")
    ap.add_argument("--append", type=int, default=20_000, help="records per append round")
    ap.add_argument("--fsync", action="store_true", help="also measure append with fsync=True")
    ap.add_argument("--verify", action="store_true", help="also time verify() over the big logs (slow: Python)")
    ap.add_argument("--keep", type=Path, help="folder to keep (and reuse) the generated logs in")
    args = ap.parse_args()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        rates = bench_append(tmpdir, args.append, args.rounds, fsync=False)
        for mode in ("unkeyed", "keyed"):
            print(f"append {mode:<8}           {summary(rates[mode], 'records/s')}")
        print(f"append:                   {ratio(rates['keyed'], rates['unkeyed'])} (records/s)")
        if args.fsync:
            rates = bench_append(tmpdir, max(args.append // 20, 100), args.rounds, fsync=True)
            for mode in ("unkeyed", "keyed"):
                print(f"append {mode:<8} (fsync) {summary(rates[mode], 'records/s')}")

        folder = args.keep or tmpdir
        folder.mkdir(parents=True, exist_ok=True)
        bigs = {"unkeyed": folder / f"audit-v2-{args.rows}.jsonl", "keyed": folder / f"audit-v2-keyed-{args.rows}.jsonl"}
        for mode, big in bigs.items():
            if not big.exists():
                start = time.perf_counter()
                generate(big, args.rows, KEY if mode == "keyed" else None)
                print(f"generated {args.rows:,} {mode} records, {big.stat().st_size / 1e6:,.0f} MB "
                      f"in {time.perf_counter() - start:.1f} s")
        times: dict[str, list[float]] = {"unkeyed": [], "keyed": []}
        cpu: dict[str, list[float]] = {"unkeyed": [], "keyed": []}
        for _ in range(args.rounds):
            for mode, big in bigs.items():  # alternating, as above
                start, start_cpu = time.perf_counter(), time.process_time()
                df = frame(big)
                times[mode].append(time.perf_counter() - start)
                cpu[mode].append(time.process_time() - start_cpu)
                assert len(df) == args.rows
                assert (mode == "keyed") == bool(df["mac"].notna().all())
                del df
        for mode, big in bigs.items():
            print(f"frame {args.rows:,} rows {mode:<8} {summary(times[mode], 's', '{:.2f}')}  "
                  f"({big.stat().st_size / 1e6 / statistics.median(times[mode]):,.0f} MB/s)")
            # CPU seconds of this process (both threads): less swayed by other load on a shared machine
            print(f"frame CPU time {mode:<8}      {summary(cpu[mode], 's', '{:.2f}')}")
        print(f"frame:                    {ratio(times['keyed'], times['unkeyed'])} (seconds)")
        if args.verify:
            for mode, big in bigs.items():
                start = time.perf_counter()
                result = AuditLog(big).verify(key=KEY if mode == "keyed" else None)
                elapsed = time.perf_counter() - start
                assert result.ok, result.reason
                print(f"verify {result.records:,} {mode} records: {elapsed:.1f} s "
                      f"({result.records / elapsed:,.0f} records/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
