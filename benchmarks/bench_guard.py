"""Guard overhead per intercepted call: a guest opening 10,000 files, guarded vs unguarded.

Times are the process's CPU time (the guest, the guard's callbacks and the WASI worker threads
that do the file syscalls), which a shared, busy machine disturbs far less than wall time.
Unguarded is bare wasmtime-py (the same engine settings, the same preopen, no guard);
guarded is ``Sandbox.run`` under a folder grant and under the same grant with a carve-out (a mount
with fine rules: each open is walked on the host and its inode verified), whose WASI guard checks and
records every ``path_open``
(10,000 allow events land in ``RunResult.events``; no audit log is attached, its cost
is measured by bench_audit.py).  Interleaved rounds, medians.
Target: <= 20 us added per call.  Run: ``.venv/bin/python benchmarks/bench_guard.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.runtime import Sandbox  # noqa: E402
from workbench.runtime.engine import EngineSettings, engine_for  # noqa: E402

FILES = 10_000

# opens f00000 .. f09999 relative to fd 3, reads up to 64 bytes, closes
OPENER = f"""(module
 (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
 (memory (export "memory") 1)
 (data (i32.const 128) "f00000")
 (func $digit (param $at i32) (param $v i32)
   (i32.store8 (local.get $at) (i32.add (i32.const 48) (local.get $v))))
 (func (export "_start") (local $i i32) (local $e i32) (local $n i32)
   (loop $l
     (local.set $n (local.get $i))
     (call $digit (i32.const 133) (i32.rem_u (local.get $n) (i32.const 10)))
     (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
     (call $digit (i32.const 132) (i32.rem_u (local.get $n) (i32.const 10)))
     (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
     (call $digit (i32.const 131) (i32.rem_u (local.get $n) (i32.const 10)))
     (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
     (call $digit (i32.const 130) (i32.rem_u (local.get $n) (i32.const 10)))
     (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
     (call $digit (i32.const 129) (i32.rem_u (local.get $n) (i32.const 10)))
     (local.set $e (call $open (i32.const 3) (i32.const 1) (i32.const 128) (i32.const 6) (i32.const 0)
                               (i64.const 6) (i64.const 0) (i32.const 0) (i32.const 16)))
     (if (local.get $e) (then (call $exit (local.get $e))))
     (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 64))
     (drop (call $read (i32.load (i32.const 16)) (i32.const 0) (i32.const 1) (i32.const 8)))
     (drop (call $close (i32.load (i32.const 16))))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br_if $l (i32.lt_u (local.get $i) (i32.const {FILES}))))))
"""


def make_files(folder: Path) -> None:
    (folder / "d").mkdir()
    for i in range(FILES):
        (folder / "d" / f"f{i:05d}").write_text("x" * 32)


def bare(folder: Path) -> float:
    handle = engine_for(EngineSettings())
    module = wasmtime.Module(handle.engine, OPENER)
    store = wasmtime.Store(handle.engine)
    wasi = wasmtime.WasiConfig()
    wasi.preopen_dir(str(folder / "d"), "/d", False)
    store.set_wasi(wasi)
    store.set_epoch_deadline(1 << 40)
    instance = handle.linker.instantiate(store, module)
    start = time.process_time()
    instance.exports(store)["_start"](store)
    return time.process_time() - start


#: a folder grant (cap-std confines it; the guard decides once per mount) and the same folder with a
#: carve-out (a "fine" mount: every open is walked on the host and its inode verified)
POLICIES = {
    "folder": ["filesystem:read:/d"],
    "carve-out": ["filesystem:read:/d", "!filesystem:read:/d/private"],
}


def guarded(folder: Path, policy: list[str] = POLICIES["folder"]) -> float:
    sandbox = Sandbox(policy, root=folder)
    start = time.process_time()
    result = sandbox.run(OPENER)
    elapsed = time.process_time() - start
    opens = sum(1 for e in result.events if e.action == "open" and e.decision == "allow")
    assert result.ok and opens == FILES, (result, opens)
    return elapsed


def main(rounds: int = 11) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_files(folder)
        for policy in POLICIES.values():
            bare(folder), guarded(folder, policy)  # warm up: compile caches, page cache
        bare_us: list[float] = []
        guarded_us: dict[str, list[float]] = {name: [] for name in POLICIES}
        added: dict[str, list[float]] = {name: [] for name in POLICIES}
        ratio: dict[str, list[float]] = {name: [] for name in POLICIES}
        for _ in range(rounds):
            for name, policy in POLICIES.items():  # interleaved: each guarded run next to its own baseline
                b, g = bare(folder), guarded(folder, policy)
                bare_us.append(b / FILES * 1e6)
                guarded_us[name].append(g / FILES * 1e6)
                added[name].append((g - b) / FILES * 1e6)
                ratio[name].append(g / b)
    print(f"{FILES} open+read+close, unguarded {statistics.median(bare_us):.1f} us/call (median of {rounds} rounds)")
    for name in POLICIES:
        print(f"  {name:9}: guarded {statistics.median(guarded_us[name]):.1f} us/call; added "
              f"{statistics.median(added[name]):.1f} us/call (min {min(added[name]):.1f}, max {max(added[name]):.1f}); "
              f"guarded/unguarded {statistics.median(ratio[name]):.2f}x")
    print("  target: folder grant <= 20 us added per call")


if __name__ == "__main__":
    main()
