"""Kill mode, across layers: every refusal that is a violation ends the run at once, whoever refused.

The same guest shape for each layer: do the refused thing, then spin.  Under ``kill`` the run must
end as a stop (the spin never runs to the deadline); under ``deny`` the guest sees the refusal and
goes on until the deadline.  Limits that always stop a run (time, CPU budget, fuel, stack) are
kills by nature and are tested in test_sandbox_limits.py / test_monitor.py; the filesystem layer's
own refusal paths one by one are in test_guard_kill.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench import Sandbox

SPIN = "(loop $spin (br $spin))"


def _fs(root: Path, path: str) -> str:
    """Open ``path`` under /docs (dirfd 3), then spin."""
    data = path.encode()
    return f"""(module
 (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (data (i32.const 128) "{data.decode()}")
 (func (export "_start")
   (drop (call $open (i32.const 3) (i32.const 1) (i32.const 128) (i32.const {len(data)}) (i32.const 0)
                     (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
   {SPIN}))
"""


MEMORY = f"""(module (memory (export "memory") 1 200)
 (func (export "_start") (drop (memory.grow (i32.const 190))) {SPIN}))"""
TABLE = f"""(module (table $t 1 funcref) (memory (export "memory") 1)
 (func (export "_start") (drop (table.grow $t (ref.null func) (i32.const 2000000))) {SPIN}))"""


def _output() -> str:
    return f"""(module
 (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (func (export "_start")
   (memory.fill (i32.const 64) (i32.const 120) (i32.const 4000))
   (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 4000))
   (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
   {SPIN}))"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "docs" / "private").mkdir(parents=True)
    (tmp_path / "docs" / "private" / "k").write_text("k")
    (tmp_path / "secret").write_text("s")
    os.symlink("../secret", tmp_path / "docs" / "out")
    return tmp_path


LAYERS = [
    pytest.param(["filesystem:read:/docs", "!filesystem:read:/docs/private"], lambda r: _fs(r, "private/k"),
                 "filesystem", id="guard-policy"),
    pytest.param(["filesystem:read:/docs"], lambda r: _fs(r, "out"), "filesystem", id="wasmtime-wasi-behind-the-guard"),
    pytest.param(["memory:limit:1MiB"], lambda r: MEMORY, "memory", id="memory-grow"),
    pytest.param([], lambda r: TABLE, "memory", id="table-grow"),
    pytest.param(["output:limit:1kB"], lambda r: _output(), "output", id="output-cap"),
]


@pytest.mark.parametrize(("policy", "module", "kind"), LAYERS)
def test_kill_ends_the_run_at_the_first_violation_of_any_layer(root: Path, policy: list[str], module, kind: str) -> None:
    result = Sandbox([*policy, "time:limit:20s"], root=root, on_violation="kill").run(module(root))
    assert result.outcome == f"stopped ({kind})", (result.outcome, [str(v) for v in result.violations])
    assert result.violations[0].decision == "kill"
    assert result.usage.wall_seconds < 10  # stopped at the violation, not by the deadline


@pytest.mark.parametrize(("policy", "module", "kind"), LAYERS)
def test_deny_refuses_and_lets_the_guest_go_on(root: Path, policy: list[str], module, kind: str) -> None:
    result = Sandbox([*policy, "time:limit:0.3s"], root=root).run(module(root))
    assert [v.decision for v in result.violations if v.kind == kind][:1] == ["deny"]
    assert result.outcome == "stopped (time)"  # it went on spinning until the deadline
