"""A Python guest's denied HTTP request against its denied guarded ``open``, in the same run set
(issue 12: target <= 2x, for every guest language; ``bench_network_device.py`` measures WAT).

A CPython guest cannot import host functions, so ``workbench_guest.request`` reaches the network
service through ``/dev/workbench/http``.  Three guests run under one policy
(``filesystem:read:/docs``, its carve-out ``/docs/private`` and ``network:http:localhost``):

- **open**: ``open("/docs/private/key", "rb")`` N times, each refused by the carve-out
  (``PermissionError`` caught);
- **readlink**: ``workbench_guest.request("GET", "http://not-granted.example/")`` N times, each
  refused by the service (``PermissionError`` caught): the one-call exchange, one ``path_readlink``
  (runtime/device_link.py);
- **file**: the same requests through the file protocol (six WASI calls), for comparison.

A run may make 100 requests (``NetworkLimits.max_requests``); for the measurement the run's service
gets a cap of 10**6, so every attempt is refused by the policy itself (after 100 the cap would
answer instead, which is cheaper).  The cost per attempt is the process CPU time of a run of N
attempts minus a run of none, over N; interleaved rounds; medians of the per-attempt costs and of the
per-round ratios to the open.  Figures: docs/decisions.md ("The Python guest's one-call exchange").
Run: ``.venv/bin/python benchmarks/bench_network_python.py [--rounds 7] [--n 2000]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.network import NetworkService  # noqa: E402
from workbench.network.limits import NetworkLimits  # noqa: E402
from workbench.runtime import Sandbox, device_plan  # noqa: E402

POLICY = ["filesystem:read:/docs", "!filesystem:read:/docs/private", "network:http:localhost"]

_LOOP = """
import workbench_guest
{setup}
denied = 0
for _ in range({n}):
    try:
        {attempt}
    except PermissionError:
        denied += 1
print(denied)
"""
ATTEMPTS = {
    "open": ("", 'open("/docs/private/key", "rb")'),
    "readlink": ("", 'workbench_guest.request("GET", "http://not-granted.example/")'),
    "file": ("workbench_guest._MAX_TOKEN = -1  # every request through the file protocol",
             'workbench_guest.request("GET", "http://not-granted.example/")'),
}


def source(kind: str, n: int) -> str:
    setup, attempt = ATTEMPTS[kind]
    return _LOOP.format(setup=setup, n=n, attempt=attempt)


def _uncapped(secrets: object) -> object:
    """The run's network service as ``device_plan`` makes it, with a request cap the loops never reach."""
    def make(run: object) -> NetworkService:
        return NetworkService(run.policy, run.emit, secrets=secrets,  # type: ignore[attr-defined]
                              limits=NetworkLimits(max_requests=10**6))

    return make


def cpu_of(sandbox: Sandbox, code: str, n: int) -> float:
    start = time.process_time()
    result = sandbox.run(code, "python")
    spent = time.process_time() - start
    assert result.exit_code == 0 and result.stdout.strip() == str(n), result
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=2000)
    options = parser.parse_args()
    device_plan._network_service = _uncapped  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "docs" / "private").mkdir(parents=True)
        (Path(root) / "docs" / "private" / "key").write_text("secret")
        sandbox = Sandbox(POLICY, root=root)
        for kind in ("readlink", "file"):
            check = sandbox.run(source(kind, 1), "python")
            denials = [e for e in check.events if e.category == "network" and e.decision == "deny"]
            assert len(denials) == 1, f"{kind}: the request was not refused by the network service: {check.events}"
        per: dict[str, list[float]] = {kind: [] for kind in ATTEMPTS}
        for _ in range(options.rounds):
            for kind in ATTEMPTS:
                full = cpu_of(sandbox, source(kind, options.n), options.n)
                per[kind].append((full - cpu_of(sandbox, source(kind, 0), 0)) / options.n)
    opened = statistics.median(per["open"])
    print(f"Python guest, denied guarded open:               {opened * 1e6:8.1f} us "
          f"(median of {options.rounds} rounds, n={options.n})")
    for kind, label in (("readlink", "one readlink (workbench_guest)"), ("file", "the file protocol")):
        ratios = [r / o for r, o in zip(per[kind], per["open"]) if o > 0]
        print(f"Python guest, denied request by {label:<31} {statistics.median(per[kind]) * 1e6:8.1f} us;"
              f" ratio to the open {statistics.median(ratios):.2f}x (median per round; target <= 2x)")


if __name__ == "__main__":
    main()
