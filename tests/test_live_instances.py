"""Live instances (issue 13, point 5): exports called one by one, under cumulative limits."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from workbench import Sandbox
from workbench.errors import InstanceError

FIB = """(module
  (memory (export "memory") 1)
  (global $calls (export "calls") (mut i32) (i32.const 0))
  (func $fib (export "fib") (param $n i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2)) (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "count") (result i32) (global.get $calls))
  (func (export "store") (param $at i32) (param $v i64) (i64.store (local.get $at) (local.get $v)))
  (func (export "load") (param $at i32) (result i64) (i64.load (local.get $at)))
  (func (export "half") (param f64) (result f64) (f64.mul (local.get 0) (f64.const 0.5)))
  (func (export "boom") (unreachable))
  (func (export "spin") (loop $l (br $l))))
"""

OPENER = """(module
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "secret.txt")
  (func (export "peek") (result i32)
    (call $open (i32.const 4) (i32.const 1) (i32.const 100) (i32.const 10) (i32.const 0) (i64.const 2) (i64.const 0)
                (i32.const 0) (i32.const 300))))
"""


def test_exports_keep_their_state_between_calls(tmp_path: Path) -> None:
    with Sandbox(root=tmp_path).instantiate(FIB) as handle:
        assert handle.exports["fib"] == "(i32) -> (i32)" and handle.exports["store"] == "(i32, i64) -> ()"
        assert handle.call("fib", 10) == 55
        first = handle.call("count")
        assert first == 177
        assert handle.call("fib", 20) == 6765
        assert handle.call("count") == first + 21891  # the global kept counting across calls
        handle.call("store", 64, -2)
        assert handle.call("load", 64) == -2
        assert handle.memory.read_i64(64) == -2 and handle.memory.globals["calls"] == first + 21891
        assert handle.call("half", 3) == 1.5
        assert [c.export for c in handle.calls] == ["fib", "count", "fib", "count", "store", "load", "half"]
        calls = [e for e in handle.events if (e.category, e.action) == ("instance", "call")]
        assert [e.target for e in calls] == ["fib", "count", "fib", "count", "store", "load", "half"]
        assert calls[0].detail["args"] == [10] and calls[0].detail["result"] == 55
    assert handle.closed
    with pytest.raises(InstanceError, match="closed"):
        handle.call("count")


def test_every_call_reaches_the_sandboxs_subscribers(tmp_path: Path) -> None:
    sandbox = Sandbox(root=tmp_path)
    seen: list[Any] = []
    sandbox.subscribe(lambda item: seen.append(item))
    with sandbox.instantiate(FIB) as handle:
        handle.call("fib", 3)
    actions = [(e.category, e.action) for e in seen if hasattr(e, "category")]
    assert ("instance", "call") in actions and actions[0] == ("lifecycle", "start") and actions[-1] == ("lifecycle", "exit")


def test_a_trap_is_our_error_and_the_instance_goes_on(tmp_path: Path) -> None:
    with Sandbox(root=tmp_path).instantiate(FIB) as handle:
        with pytest.raises(InstanceError, match="boom trapped") as caught:
            handle.call("boom")
        assert caught.value.fault.kind == "unreachable"  # type: ignore[attr-defined]
        assert handle.call("fib", 5) == 5


def test_the_fuel_budget_is_cumulative_and_then_refused(tmp_path: Path) -> None:
    with Sandbox(["fuel:limit:2000000"], root=tmp_path).instantiate(FIB) as handle:
        done = 0
        with pytest.raises(InstanceError, match="stopped by a limit"):
            for _ in range(100):  # each fib(18) costs ~100k fuel: the budget is gone within ~20 calls
                handle.call("fib", 18)
                done += 1
        assert 5 < done < 100
        assert handle.exhausted is not None
        with pytest.raises(InstanceError, match="refuses further calls"):
            handle.call("count")  # even a call that would cost almost nothing
        kills = [e for e in handle.events if e.decision == "kill"]
        assert kills and kills[0].category == "fuel"


def test_the_time_budget_is_cumulative(tmp_path: Path) -> None:
    with Sandbox(["time:limit:300ms"], root=tmp_path).instantiate(FIB) as handle:
        with pytest.raises(InstanceError, match="stopped by a limit"):
            handle.call("spin")
        assert handle.wall_used >= 0.3
        with pytest.raises(InstanceError, match="refuses further calls"):
            handle.call("fib", 1)
        assert any(e.category == "time" and e.decision == "kill" for e in handle.events)


def test_a_second_thread_is_refused_while_a_call_runs(tmp_path: Path) -> None:
    sandbox = Sandbox(["time:limit:3s"], root=tmp_path)
    with sandbox.instantiate(FIB) as handle:
        errors: list[BaseException] = []
        spinner = threading.Thread(target=lambda: _collect(errors, handle.call, "spin"))
        spinner.start()
        deadline = time.monotonic() + 5
        while not handle._lock.locked() and time.monotonic() < deadline:
            time.sleep(0.005)
        refused = []
        for what in (lambda: handle.call("count"), lambda: handle.memory, handle.close):
            with pytest.raises(InstanceError, match="another thread") as caught:
                what()
            refused.append(caught.value)
        sandbox.cancel("test over")
        spinner.join(10)
        assert not spinner.is_alive() and errors and isinstance(errors[0], InstanceError)
        assert len(refused) == 3


def _collect(errors: list[BaseException], call: Any, *args: Any) -> None:
    try:
        call(*args)
    except BaseException as exc:
        errors.append(exc)


@pytest.mark.parametrize("name, args, message", [
    ("fib", (), "takes 1 argument"),
    ("fib", (1, 2), "takes 1 argument"),
    ("fib", ("20",), "an int, not str"),
    ("fib", (True,), "an int, not bool"),
    ("fib", (2**32,), "does not fit in i32"),
    ("fib", (-(2**31) - 1,), "does not fit in i32"),
    ("store", (0, 2**64), "does not fit in i64"),
    ("half", ("x",), "a number"),
    ("nope", (), "no exported function 'nope'"),
    ("memory", (), "no exported function 'memory'"),
    ("fib\udcff", (1,), "no exported function"),
])
def test_bad_calls_raise_our_error(tmp_path: Path, name: str, args: tuple[Any, ...], message: str) -> None:
    with Sandbox(root=tmp_path).instantiate(FIB) as handle:
        with pytest.raises(InstanceError, match=message):
            handle.call(name, *args)
        assert handle.call("fib", 6) == 8  # nothing was called; the instance is as it was


def test_unsigned_spellings_are_the_same_bits(tmp_path: Path) -> None:
    with Sandbox(root=tmp_path).instantiate(FIB) as handle:
        handle.call("store", 0, 2**64 - 1)
        assert handle.call("load", 0) == -1


def test_a_live_instance_is_guarded_like_a_run(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s")
    (tmp_path / "docs").mkdir()
    with Sandbox(["filesystem:read:/docs"], root=tmp_path).instantiate(OPENER) as handle:
        assert handle.call("peek") != 0  # refused: outside the grant
        denied = [e for e in handle.events if e.category == "filesystem" and e.decision == "deny"]
        assert denied and denied[0].target == "secret.txt"
    with Sandbox(["filesystem:read:/docs"], root=tmp_path, on_violation="kill").instantiate(OPENER) as handle:
        with pytest.raises(InstanceError, match="stopped by a limit"):
            handle.call("peek")
        with pytest.raises(InstanceError, match="refuses"):
            handle.call("peek")
