"""A denied network request vs a denied guarded ``open``, measured in the same run (issue 12).

Target: a denied request costs <= 2x a denied guarded open.

- denied open: a WAT guest calls ``path_open`` N times on ``/secret/key.txt`` (outside its only
  grant, ``filesystem:read:/d``); ``Sandbox.run`` guards, denies and records each one.  Its cost per
  call is (run with N opens - run with none) / N, so the run's fixed cost is left out; as in
  bench_guard.py, times are the process's CPU time.
- denied request: ``NetworkService.handle`` on N JSON requests for ``http://example.com/`` under
  ``network:http:localhost`` (read, parsed, decided, recorded, answered), with an ``emit`` that
  builds and keeps an ``Event`` as a run's does.  This is the host side; once the device folder
  (``/dev/workbench/http``) is wired in, the guest's write and read add their own guarded calls.

Interleaved rounds, medians of the per-round ratios.
Run: ``.venv/bin/python benchmarks/bench_network.py [--rounds 11]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.events import Event  # noqa: E402
from workbench.network import NetworkLimits, NetworkService  # noqa: E402
from workbench.policy import Policy  # noqa: E402
from workbench.runtime import Sandbox  # noqa: E402
from workbench.runtime.event_budget import EventBudget  # noqa: E402

CALLS = 2000
PATH = b"secret/key.txt"


def opener(count: int) -> str:
    """A guest that opens ``/secret/key.txt`` ``count`` times (fd 4 is the sandbox's root)."""
    return f"""(module
 (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (data (i32.const 128) "{PATH.decode()}")
 (func (export "_start") (local $i i32)
   (block $done
     (loop $l
       (br_if $done (i32.ge_u (local.get $i) (i32.const {count})))
       (drop (call $open (i32.const 4) (i32.const 1) (i32.const 128) (i32.const {len(PATH)}) (i32.const 0)
                         (i64.const 6) (i64.const 0) (i32.const 0) (i32.const 16)))
       (local.set $i (i32.add (local.get $i) (i32.const 1)))
       (br $l)))))
"""


def denied_opens(sandbox: Sandbox, count: int) -> float:
    start = time.process_time()
    result = sandbox.run(opener(count))
    elapsed = time.process_time() - start
    opens = [e for e in result.events if e.category == "filesystem" and e.action == "open" and e.decision == "deny"]
    # a run keeps the first repeats of an identical event and counts the rest in one aggregate
    denied = sum(1 for e in opens if "repeated" not in e.detail) + sum(
        e.detail["repeated"] for e in opens if "repeated" in e.detail)
    assert denied == count, (denied, count)
    return elapsed


class Keep:
    """An ``emit`` like a run's (``_Run.emit``): builds the Event, passes it through the run's
    event budget (repeats counted) and keeps it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.seen = 0
        self.budget = EventBudget()

    def __call__(self, category: str, action: str, decision: str = "allow", **fields: Any) -> Event:
        event = Event(run_id="bench", category=category, action=action, decision=decision,  # type: ignore[arg-type]
                      module="bench", **fields)
        self.seen += 1
        if self.budget.admit(event):
            self.events.append(event)
        return event


REQUEST = json.dumps({"method": "GET", "url": "http://example.com/data.json",
                      "headers": {"Accept": "application/json"}}).encode()


def denied_requests(count: int) -> float:
    keep = Keep()
    service = NetworkService(Policy.parse(["network:http:localhost"]), keep, limits=NetworkLimits(max_requests=count))
    start = time.process_time()
    for _ in range(count):
        answer = service.handle(REQUEST)
    elapsed = time.process_time() - start
    assert json.loads(answer)["error"] == "denied" and keep.seen == count
    return elapsed


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "d").mkdir()
        sandbox = Sandbox(["filesystem:read:/d"], root=tmp)
        denied_opens(sandbox, 0), denied_opens(sandbox, CALLS), denied_requests(CALLS)  # warm up
        opens: list[float] = []
        requests: list[float] = []
        ratios: list[float] = []
        for _ in range(rounds):
            empty = denied_opens(sandbox, 0)
            full = denied_opens(sandbox, CALLS)
            per_open = (full - empty) / CALLS
            per_request = denied_requests(CALLS) / CALLS
            opens.append(per_open * 1e6)
            requests.append(per_request * 1e6)
            ratios.append(per_request / per_open)
    print(f"denied guarded open: {statistics.median(opens):.1f} us/call; denied request (NetworkService.handle): "
          f"{statistics.median(requests):.1f} us/call; ratio {statistics.median(ratios):.2f}x "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}; median of {rounds} rounds of {CALLS} calls)")
    print("  target: a denied request <= 2x a denied guarded open")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    main(parser.parse_args().rounds)
