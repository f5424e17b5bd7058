"""1,000 runs in one process grow its resident memory by no more than 50 MB."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc, resource
from workbench import probes
from workbench.runtime import Sandbox

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

import os, tempfile
root = tempfile.mkdtemp()
os.mkdir(os.path.join(root, "docs"))
with open(os.path.join(root, "docs", "a.txt"), "w") as f:
    f.write("a")
sandbox = Sandbox(["memory:limit:2MB", "output:limit:1KB", "filesystem:read:/docs"], root=root)
sources = [probes.hello("x" * 100 + "\\n"), probes.memory_bomb(), probes.output_flood(4096, 1024),
           probes.read_file("a.txt"), probes.read_file("../secret")]  # the last two go through the guard
for i in range(50):  # warm up: caches, engines, allocator arenas
    sandbox.run(sources[i % 5])
gc.collect()
before = rss()
for i in range(1000):
    sandbox.run(sources[i % 5])
gc.collect()
from workbench.runtime.run import _Run
survivors = sum(isinstance(o, _Run) for o in gc.get_objects())  # a run reachable after it ended = a leak
print(rss() - before, survivors)
"""


def test_thousand_runs_do_not_leak() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True)
    growth, survivors = map(int, proc.stdout.split())
    assert growth <= 50 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB over 1,000 runs"
    # stricter than the budget: nothing of a finished run stays reachable (this caught a store
    # kept alive through wasmtime-py's global table of output callbacks, ~21 kB a run)
    assert survivors == 0, f"{survivors} finished runs are still reachable"


def test_output_callbacks_held_after_a_run_do_not_hold_the_run(monkeypatch) -> None:
    """wasmtime releases a store's output callbacks on a worker thread, some time after the run
    (under load, after the run's caller has moved on).  Holding them here, as that thread would,
    must not keep the run alive: the deterministic form of the race CI once caught."""
    import gc

    from workbench import probes
    from workbench.runtime import Sandbox
    from workbench.runtime.output import OutputCapture
    from workbench.runtime.run import _Run

    held = []
    writer = OutputCapture.writer
    monkeypatch.setattr(OutputCapture, "writer", lambda self, stream: held.append(writer(self, stream)) or held[-1])
    result = Sandbox(["output:limit:1KB"]).run(probes.output_flood(4096, 1024))
    assert result.violations and len(held) == 2
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, _Run)]
