"""A guest's denied HTTP request, end to end, against a denied guarded ``open`` in the same run set
(issue 12: target <= 2x): wasm, the guard or the host import, and the network service, as a guest
pays for them.  Two ways in are measured:

- **device**: through ``/dev/workbench/http``, the way ``workbench_guest`` and ``wb_http_get`` make
  one: open the node to write, write the JSON request, close, open it to read (the host answers
  here), read the answer, close;
- **import**: one call of the host import ``workbench::http_request`` (WAT and C guests).

All three guests run under one policy (``filesystem:read:/docs``, its carve-out ``/docs/private``
and ``network:http:localhost``).  The open guest opens ``private/key`` N times (refused by the
carve-out); the others make N requests to ``http://not-granted.example/`` (refused by the service).
The cost per attempt is the process CPU time of a run of N attempts minus a run of none, over N;
interleaved rounds; medians of the per-attempt costs and of the per-round ratios.
Run: ``.venv/bin/python benchmarks/bench_network_device.py [--rounds 7] [--n 2000]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.runtime import Sandbox  # noqa: E402

POLICY = ["filesystem:read:/docs", "!filesystem:read:/docs/private", "network:http:localhost"]
REQUEST = '{"method": "GET", "url": "http://not-granted.example/"}'

_IMPORTS = """
 (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
 (memory (export "memory") 2)"""


def denied_opens(n: int) -> str:
    return f"""(module {_IMPORTS}
 (data (i32.const 128) "private/key")
 (func (export "_start") (local $i i32)
   (block $done (loop $l
     (br_if $done (i32.ge_u (local.get $i) (i32.const {n})))
     (drop (call $open (i32.const 3) (i32.const 1) (i32.const 128) (i32.const 11) (i32.const 0)
                       (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br $l)))))"""


def denied_requests(n: int, device_fd: int) -> str:
    escaped = REQUEST.replace('"', '\\"')
    return f"""(module {_IMPORTS}
 (data (i32.const 1024) "http")
 (data (i32.const 2048) "{escaped}")
 (func $node (param $oflags i32) (param $rights i64) (result i32)
   (drop (call $open (i32.const {device_fd}) (i32.const 0) (i32.const 1024) (i32.const 4)
                     (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0) (i32.const 16)))
   (i32.load (i32.const 16)))
 (func (export "_start") (local $i i32) (local $fd i32)
   (block $done (loop $l
     (br_if $done (i32.ge_u (local.get $i) (i32.const {n})))
     (local.set $fd (call $node (i32.const 8) (i64.const 64)))
     (i32.store (i32.const 0) (i32.const 2048)) (i32.store (i32.const 4) (i32.const {len(REQUEST)}))
     (drop (call $write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
     (drop (call $close (local.get $fd)))
     (local.set $fd (call $node (i32.const 0) (i64.const 2)))
     (i32.store (i32.const 0) (i32.const 8192)) (i32.store (i32.const 4) (i32.const 4096))
     (drop (call $read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
     (drop (call $close (local.get $fd)))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br $l)))))"""


def denied_imports(n: int) -> str:
    escaped = REQUEST.replace('"', '\\"')
    return f"""(module
 (import "workbench" "http_request" (func $http (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (memory (export "memory") 2)
 (data (i32.const 2048) "{escaped}")
 (func (export "_start") (local $i i32)
   (block $done (loop $l
     (br_if $done (i32.ge_u (local.get $i) (i32.const {n})))
     (drop (call $http (i32.const 2048) (i32.const {len(REQUEST)}) (i32.const 8192) (i32.const 4096)))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br $l)))))"""


def cpu_of(sandbox: Sandbox, source: str) -> float:
    start = time.process_time()
    result = sandbox.run(source, "wat")
    spent = time.process_time() - start
    assert result.exit_code == 0, result
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=2000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "docs" / "private").mkdir(parents=True)
        (Path(root) / "docs" / "private" / "key").write_text("secret")
        sandbox = Sandbox(POLICY, root=root)
        device_fd = 3 + len(sandbox.run(denied_opens(0), "wat").mounts)  # after the grants' own mounts
        sources = {
            "open": (denied_opens(0), denied_opens(options.n)),
            "device": (denied_requests(0, device_fd), denied_requests(options.n, device_fd)),
            "import": (denied_imports(0), denied_imports(options.n)),
        }
        for kind in ("device", "import"):
            check = sandbox.run(sources[kind][1].replace(f"(i32.const {options.n})", "(i32.const 1)", 1), "wat")
            denials = [e for e in check.events if e.category == "network" and e.decision == "deny"]
            assert len(denials) == 1, f"{kind}: the request was not refused by the network service: {check.events}"
        per: dict[str, list[float]] = {kind: [] for kind in sources}
        for _ in range(options.rounds):
            for kind, (empty, full) in sources.items():
                per[kind].append((cpu_of(sandbox, full) - cpu_of(sandbox, empty)) / options.n)
    opened = statistics.median(per["open"])
    print(f"denied guarded open:                   {opened * 1e6:8.1f} us (median of {options.rounds}, n={options.n})")
    for kind, label in (("device", "through /dev/workbench/http"), ("import", "through workbench::http_request")):
        ratios = [r / o for r, o in zip(per[kind], per["open"]) if o > 0]
        print(f"denied request {label:<32} {statistics.median(per[kind]) * 1e6:8.1f} us;"
              f" ratio to the open {statistics.median(ratios):.2f}x (median per round; target <= 2x)")


if __name__ == "__main__":
    main()
