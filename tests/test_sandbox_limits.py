"""Limits are enforced: memory, wall time, fuel, output, stack; traps are classified."""

from __future__ import annotations

import time

from workbench import probes
from workbench.runtime import Sandbox


def test_memory_grow_loop_stops_at_cap_with_a_memory_violation() -> None:
    result = Sandbox(["memory:limit:10MB"]).run(probes.memory_bomb())
    assert [v.kind for v in result.violations] == ["memory"]
    violation = result.violations[0]
    assert violation.capability == "memory:limit:10MB"
    peak = result.usage.memory_peak_bytes
    assert 0.95 * 10_000_000 <= peak <= 10_000_000
    assert "10 MB" in violation.message or "10MB" in violation.message


def test_memory_cap_in_mebibytes_is_exact() -> None:
    result = Sandbox(["memory:limit:8MiB"]).run(probes.memory_bomb())
    assert result.usage.memory_limit_bytes == 8 * 2**20
    assert result.usage.memory_peak_bytes == 8 * 2**20  # 128 pages fit exactly


def test_module_whose_initial_memory_exceeds_the_cap_is_refused() -> None:
    big = '(module (memory (export "memory") 300) (func (export "_start")))'
    result = Sandbox(["memory:limit:10MB"]).run(big)
    assert [v.kind for v in result.violations] == ["memory"]
    assert "does not fit" in result.violations[0].message
    assert not result.ok


def test_small_module_under_a_cap_has_no_violation() -> None:
    result = Sandbox(["memory:limit:10MB"]).run(probes.hello())
    assert result.ok
    assert result.usage.memory_peak_bytes == 65536


def test_infinite_loop_stops_within_deadline_with_time_violation() -> None:
    sandbox = Sandbox(["time:limit:1s"])
    started = time.monotonic()
    result = sandbox.run(probes.infinite_loop())
    elapsed = time.monotonic() - started
    assert elapsed < 1.2, f"took {elapsed:.3f}s"
    assert [v.kind for v in result.violations] == ["time"]
    assert result.violations[0].decision == "kill"
    assert result.violations[0].capability == "time:limit:1s"
    assert result.exit_code is None and not result.ok


def test_fuel_budget_stops_a_loop() -> None:
    result = Sandbox(["fuel:limit:1e6"]).run(probes.fuel_loop())
    assert [v.kind for v in result.violations] == ["fuel"]
    assert result.usage.fuel_used == 1_000_000
    enough = Sandbox(["fuel:limit:1e6"]).run(probes.fuel_loop(iterations=1000))
    assert enough.ok and 0 < (enough.usage.fuel_used or 0) < 1_000_000


def test_output_flood_is_cut_at_the_cap() -> None:
    result = Sandbox(["output:limit:1MB"]).run(probes.output_flood(50 * 10**6))
    assert len(result.stdout_bytes) == 1_000_000
    assert result.stdout_bytes == b"x" * 1_000_000
    # the write that crossed the cap was cut; wasmtime then closes the stream, so later
    # writes fail in the guest without reaching the host at all
    assert result.usage.output_dropped_bytes > 0
    assert [v.kind for v in result.violations] == ["output"]
    assert result.violations[0].event.detail["cap_bytes"] == 1_000_000


def test_output_cap_is_shared_by_stdout_and_stderr() -> None:
    both = """(module
 (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 2)
 (func (export "_start") (local $i i32)
   (memory.fill (i32.const 64) (i32.const 121) (i32.const 65536))
   (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 65536))
   (loop $l
     (drop (call $w (i32.add (i32.const 1) (i32.and (local.get $i) (i32.const 1))) (i32.const 0) (i32.const 1) (i32.const 16)))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))))"""
    result = Sandbox(["output:limit:200KB"]).run(both)
    assert len(result.stdout_bytes) + len(result.stderr_bytes) == 200_000
    assert result.stdout_bytes and result.stderr_bytes
    assert len(result.violations) == 1


def test_output_kill_mode_stops_the_run() -> None:
    result = Sandbox(["output:limit:1MB", "time:limit:20s"], on_violation="kill").run(probes.output_flood(10**9))
    assert result.violations[0].decision == "kill"
    assert result.usage.wall_seconds < 5


def test_deep_recursion_is_a_stack_violation() -> None:
    result = Sandbox().run(probes.deep_recursion())
    assert [v.kind for v in result.violations] == ["stack"]
    assert "recursion" in result.violations[0].message


def test_unreachable_is_a_fault_with_a_named_backtrace() -> None:
    result = Sandbox().run(probes.unreachable())
    assert result.violations == []
    assert result.fault is not None
    assert result.fault.kind == "unreachable"
    assert list(result.fault.backtrace[:3]) == ["inner", "explode", "main"]
    assert not result.ok


def test_out_of_bounds_is_a_fault() -> None:
    oob = '(module (memory (export "memory") 1) (func $poke (export "_start") (i32.store (i32.const 70000) (i32.const 1))))'
    result = Sandbox().run(oob)
    assert result.fault is not None and result.fault.kind == "memory_out_of_bounds"
    assert result.fault.backtrace[0] == "poke"


def test_proc_exit_code_is_reported() -> None:
    code = """(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1) (func (export "_start") (call $exit (i32.const 7))))"""
    result = Sandbox().run(code)
    assert result.exit_code == 7
    assert result.fault is None and result.violations == []
    assert not result.ok


def test_cancel_from_another_thread_stops_a_spinning_guest() -> None:
    import threading

    sandbox = Sandbox(["time:limit:20s"])
    timer = threading.Timer(0.3, sandbox.cancel, args=("stopped by test",))
    timer.start()
    started = time.monotonic()
    result = sandbox.run(probes.infinite_loop())
    assert time.monotonic() - started < 1.0
    assert [(v.kind, v.decision, v.message) for v in result.violations] == [("lifecycle", "kill", "stopped by test")]


def test_a_sleep_in_the_host_does_not_outlast_the_deadline() -> None:
    """An epoch check cannot interrupt a guest blocked in poll_oneoff: the guard cuts the sleep."""
    started = time.monotonic()
    result = Sandbox(["time:limit:0.3s"]).run(probes.sleep(5))
    assert time.monotonic() - started < 0.3 * 1.2 + 0.2  # plus set-up
    assert result.usage.wall_seconds <= 0.3 * 1.2
    assert [(v.kind, v.decision) for v in result.violations] == [("time", "kill")]
    short = Sandbox(["time:limit:2s"]).run(probes.sleep(0.05))
    assert short.ok and short.usage.wall_seconds >= 0.05  # a sleep within the limit is untouched
