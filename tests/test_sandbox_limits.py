"""Limits are enforced: memory, wall time, fuel, output, stack; traps are classified."""

from __future__ import annotations

import time

import pytest

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


# -- every table.grow refused at the sandbox's table cap is a violation event --------------------

def test_a_table_grow_refused_at_the_table_cap_is_a_violation() -> None:
    """Was: -1 to the guest and nothing recorded."""
    from workbench.runtime.engine import STORE_CAPS

    result = Sandbox().run(probes.table_bomb(100_000))
    assert result.stdout == "table: 900001\n"  # the guest saw -1 and went on
    [event] = [e for e in result.events if e.is_violation]
    assert (event.category, event.action, event.decision) == ("memory", "table.grow", "deny")
    assert event.detail == {"requested_elements": 1_000_001, "current_elements": 900_001,
                            "limit_elements": STORE_CAPS.table_elements, "table": 0}
    assert "STORE_CAPS" in event.reason


def test_a_refused_table_grow_in_kill_mode_ends_the_run() -> None:
    result = Sandbox(on_violation="kill").run(probes.table_bomb(100_000))
    assert result.stdout == "" and result.exit_code is None
    assert [(e.action, e.decision) for e in result.events if e.is_violation] == [("table.grow", "kill")]


def test_a_grow_past_the_modules_own_table_maximum_is_not_a_violation() -> None:
    wat = """(module (table $t 1 2000000 funcref)
      (func (export "_start")
        (if (i32.ne (table.grow $t (ref.null func) (i32.const 3000000)) (i32.const -1)) (then unreachable))))"""
    result = Sandbox().run(wat)
    assert result.ok, result.violations


def test_modules_whose_tables_cannot_pass_the_cap_are_not_rewritten() -> None:
    import wasmtime

    from workbench.runtime.table_watch import instrument

    fixed = wasmtime.wat2wasm('(module (table 2 10 funcref) (func (drop (table.grow 0 (ref.null func) (i32.const 1)))))')
    assert instrument(fixed, 1_000_000) == fixed
    growable = wasmtime.wat2wasm('(module (table 2 funcref) (func (drop (table.grow 0 (ref.null func) (i32.const 1)))))')
    assert instrument(growable, 1_000_000) != growable


def test_instrumenting_keeps_every_other_instruction_as_it_was() -> None:
    """A module using many instruction encodings (SIMD, bulk memory, typed select, br_table,
    call_indirect, 64-bit and float constants, atomics, multi-value blocks) computes the same
    result once its table.grow instructions are instrumented."""
    import wasmtime

    from workbench.runtime.table_watch import instrument

    wat = """(module
      (type $bin (func (param i32 i32) (result i32)))
      (memory 1 1)
      (table $t 2 funcref) (table $e 1 externref)
      (elem (table $t) (i32.const 0) func $add)
      (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
      (func (export "f") (result i64)
        (local $v v128) (local $x i32)
        (local.set $v (v128.const i32x4 1 2 3 4))
        (local.set $v (i32x4.add (local.get $v) (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v))))
        (local.set $x (i32x4.extract_lane 2 (local.get $v)))
        (memory.fill (i32.const 0) (i32.const 7) (i32.const 16))
        (i32.atomic.store (i32.const 32) (i32.const 5))
        (local.set $x (i32.add (local.get $x) (i32.atomic.load (i32.const 32))))
        (local.set $x (i32.add (local.get $x) (table.grow $t (ref.null func) (i32.const 3))))
        (local.set $x (i32.add (local.get $x) (table.grow $e (ref.null extern) (i32.const 1))))
        (local.set $x (call_indirect $t (type $bin) (local.get $x) (i32.const 100) (i32.const 0)))
        (block $a (block $b (br_table $a $b $a (i32.const 1))) (local.set $x (i32.add (local.get $x) (i32.const 1000))))
        (local.set $x (select (result i32) (local.get $x) (i32.const 0) (i32.const 1)))
        (i64.add (i64.extend_i32_u (local.get $x))
                 (i64.add (i64.const -4294967296)
                          (i64.trunc_f64_s (f64.add (f64.const 1.5) (f64.promote_f32 (f32.const 2.5))))))))"""
    original = wasmtime.wat2wasm(wat)
    changed = instrument(original, 1_000_000)
    assert changed != original

    def call(binary: bytes, hook: bool) -> int:
        engine = wasmtime.Engine()
        store = wasmtime.Store(engine)
        instance = wasmtime.Instance(store, wasmtime.Module(engine, binary), [])
        exports = instance.exports(store)
        if hook:
            from workbench.runtime.table_watch import connect

            assert connect(store, exports, lambda *args: None)
        return exports["f"](store)  # type: ignore[no-any-return]

    expected = call(original, False)
    assert expected > -4294967296  # the table.grow results (1 and 0) are part of it
    assert call(changed, True) == expected


def _decode_every_body(wasm: bytes) -> int:
    from workbench.languages.wasm_binary import _read_uleb, _sections
    from workbench.runtime.table_watch import _valtype, table_grows

    bodies = 0
    for sid, _, payload, end in _sections(wasm):
        if sid == 10:
            count, pos = _read_uleb(wasm, payload)
            for _ in range(count):
                size, pos = _read_uleb(wasm, pos)
                groups, p = _read_uleb(wasm, pos)
                for _g in range(groups):
                    _, p = _read_uleb(wasm, p)
                    p = _valtype(wasm, p)
                assert table_grows(wasm, p, pos + size) == []
                pos += size
                bodies += 1
    return bodies


def test_the_table_instruction_decoder_reads_a_real_compiler_output_to_the_end() -> None:
    """An oracle for the decoder: every function body of a C program (clang -O2, SIMD) is
    consumed exactly to its end (it raises on anything unread or misread)."""
    from workbench.languages import compile_to_wasm

    source = '#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\nint main(int c, char **v) {\n' \
             ' double s = 0; for (int i = 0; i < c * 1000; i++) s += i * 0.5;\n' \
             ' char *p = malloc(100); memset(p, c, 100); printf("%f %d\\n", s, p[3]); return 0; }\n'
    assert _decode_every_body(compile_to_wasm("c", source)) > 50


@pytest.mark.slow
def test_the_table_instruction_decoder_reads_the_whole_cpython_build() -> None:
    from workbench.languages import pyruntime

    assert _decode_every_body(pyruntime.interpreter().module_bytes()) > 5000


def test_a_start_function_growing_a_watched_table_past_the_cap_fails_closed() -> None:
    """Before the run fills the hook slot, a refused table.grow cannot be reported: it traps."""
    wat = """(module (table $t 1 funcref)
      (func $s (drop (table.grow $t (ref.null func) (i32.const 2000000))))
      (start $s) (func (export "_start")))"""
    result = Sandbox().run(wat)
    assert not result.ok and result.fault is not None
