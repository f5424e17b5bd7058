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


# -- every refused memory.grow is a violation event (issue 10, point 2) ---------------------------

ONE_GROW_PAST_THE_CAP = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "refused\\n")
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1))
      (then (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 8))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))))))"""


def _memory_events(result):  # type: ignore[no-untyped-def]
    return [e for e in result.events if e.category == "memory"]


def test_one_memory_grow_past_the_cap_is_a_violation_with_both_sizes() -> None:
    """Was ok=True: the guest saw -1 and nothing outside it saw the request."""
    result = Sandbox(["memory:limit:10MB"]).run(ONE_GROW_PAST_THE_CAP)
    assert result.stdout == "refused\n"  # the guest saw -1 and went on (deny, not kill)
    assert result.exit_code == 0 and not result.ok
    [event] = _memory_events(result)
    assert (event.action, event.decision, event.capability) == ("grow", "deny", "memory:limit:10MB")
    assert event.detail["requested_bytes"] == 1001 * 65536
    assert event.detail["current_bytes"] == 65536
    assert event.detail["limit_bytes"] == 10_000_000
    assert "65.6 MB" in event.reason and "10 MB" in event.reason


def test_each_refused_grow_is_recorded_and_a_smaller_one_still_succeeds() -> None:
    wat = """(module (memory (export "memory") 1)
      (func (export "_start")
        (drop (memory.grow (i32.const 500)))      ;; refused
        (drop (memory.grow (i32.const 65535)))    ;; refused: 4 GiB
        (if (i32.ne (memory.grow (i32.const 3)) (i32.const 1)) (then unreachable))))"""
    result = Sandbox(["memory:limit:1MB"]).run(wat)
    assert result.fault is None
    requested = [e.detail["requested_bytes"] for e in _memory_events(result)]
    assert requested == [501 * 65536, 65536 * 65536]
    assert all(e.detail["current_bytes"] == 65536 for e in _memory_events(result))
    assert result.usage.memory_peak_bytes == 4 * 65536


def test_python_memory_error_is_a_recorded_violation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Was: MemoryError in the guest, no violation, and the audit log had start and exit only."""
    from workbench.audit import AuditLog

    log = AuditLog(tmp_path / "audit.jsonl")
    result = Sandbox(["memory:limit:100MB"], audit=log).run("x = bytearray(10**9)", lang="python")
    assert "MemoryError" in result.stderr
    events = _memory_events(result)
    assert events and all(e.decision == "deny" and e.action == "grow" for e in events)
    assert all(e.detail["requested_bytes"] >= 10**9 for e in events)
    assert all(5 * 10**6 < e.detail["current_bytes"] < 100 * 10**6 for e in events)
    frame = log.frame()
    grows = frame[(frame["category"] == "memory") & (frame["action"] == "grow")]
    assert len(grows) == len(events) and set(grows["decision"]) == {"deny"}


def test_c_malloc_past_the_cap_is_a_recorded_violation() -> None:
    source = """#include <stdio.h>
#include <stdlib.h>
int main(void) {
    char *volatile p = malloc(200000000);  /* volatile: the compiler may not elide it */
    if (!p) { printf("malloc returned NULL\\n"); return 0; }
    p[199999999] = 1;
    printf("got it %d\\n", p[199999999]);
    return 0;
}
"""
    result = Sandbox(["memory:limit:100MB"]).run(source, lang="c")
    assert result.stdout == "malloc returned NULL\n"
    events = _memory_events(result)
    assert events and events[0].action == "grow" and events[0].decision == "deny"
    assert events[0].detail["requested_bytes"] >= 200_000_000


def test_a_refused_grow_in_kill_mode_ends_the_run() -> None:
    spin_after = """(module (memory (export "memory") 1)
      (func (export "_start") (drop (memory.grow (i32.const 1000))) (loop br 0)))"""
    result = Sandbox(["memory:limit:10MB", "time:limit:20s"], on_violation="kill").run(spin_after)
    assert result.exit_code is None and result.usage.wall_seconds < 10
    assert [(e.category, e.action, e.decision) for e in result.events if e.is_violation] == [("memory", "grow", "kill")]


def test_memory64_and_shared_memories_are_refused_cleanly() -> None:
    for wat in ('(module (memory i64 1) (func (export "_start")))',
                '(module (memory 1 2 shared) (func (export "_start")))'):
        result = Sandbox(["memory:limit:10MB"]).run(wat)
        assert not result.ok
        text = result.fault.message if result.fault else " ".join(v.message for v in result.violations)
        assert "not supported by the sandbox" in text, text


def test_the_guest_cannot_touch_memory_past_its_size() -> None:
    """Pages past the current size stay unmapped (PROT_NONE) after a refused and a granted grow:
    an access one byte past the end is an out-of-bounds trap, not a read of someone's memory."""
    wat = """(module (memory (export "memory") 1)
      (func (export "_start")
        (drop (memory.grow (i32.const 100)))
        (drop (memory.grow (i32.const 1)))
        (drop (i32.load8_u (i32.const 131071)))
        (drop (i32.load8_u (i32.const 131072)))))"""
    result = Sandbox(["memory:limit:1MB"]).run(wat)
    assert result.fault is not None and result.fault.kind == "memory_out_of_bounds"
