"""RunPlan: compiled once, typed, recorded in lifecycle/start and kept on the result.

The first tests are issue 11's point 2: a limit remembers the rule that set it, so the audit
log names the rule a run broke (under ``cpu:limit:10% cpu:limit:200ms`` a CPU-budget kill was
recorded as ``cpu:limit:10%``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from workbench import Limits, Policy, Sandbox
from workbench.errors import SandboxError
from workbench.runtime import OnViolation, RunPlan

SPIN = '(module (func (export "_start") (loop br 0)))'
GROW = '(module (memory 1) (func (export "_start") (drop (memory.grow (i32.const 100)))))'
HELLO = """(module (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1) (data (i32.const 16) "hello hello hello hello\\n")
  (func (export "_start") (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 24))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""


def _rules_named(result: object) -> list[str | None]:
    return [v.capability for v in result.violations]  # type: ignore[attr-defined]


@pytest.mark.parametrize("policy", [
    ["cpu:limit:10%", "cpu:limit:200ms"],
    ["cpu:limit:200ms", "cpu:limit:10%"],
    ["cpu:limit:90%", "cpu:limit:1s", "cpu:limit:200ms"],
])
def test_a_cpu_budget_kill_names_the_budget_rule_not_the_first_cpu_rule(policy: list[str]) -> None:
    result = Sandbox(policy).run(SPIN, lang="wat")
    assert result.outcome == "stopped (cpu)"
    assert _rules_named(result) == ["cpu:limit:200ms"]


def test_the_tightest_of_two_rules_is_named() -> None:
    result = Sandbox(["memory:limit:2MiB", "memory:limit:1MiB"]).run(GROW, lang="wat")
    assert _rules_named(result) == ["memory:limit:1MiB"]
    result = Sandbox(["output:limit:20B", "output:limit:5B"]).run(HELLO, lang="wat")
    assert _rules_named(result) == ["output:limit:5B"]


def test_a_default_limit_is_named_as_the_rule_that_would_set_it_and_marked_default() -> None:
    sandbox = Sandbox([], defaults=Limits(wall_seconds=0.2, memory_bytes=2**20))
    assert sandbox.plan.rule_for("wall_seconds") == "time:limit:200ms"
    assert sandbox.plan.rule_for("fuel") is None
    result = sandbox.run(SPIN, lang="wat")
    assert _rules_named(result) == ["time:limit:200ms"]
    start = result.events[0]
    assert start.action == "start"
    assert start.detail["rules"]["wall_seconds"] == "time:limit:200ms"
    assert "wall_seconds" in start.detail["defaults"]


def test_every_limit_field_has_its_rule() -> None:
    policy = ["memory:limit:1MB", "cpu:limit:50%", "cpu:limit:2s", "time:limit:3s", "fuel:limit:1000",
              "output:limit:1KB", "stack:limit:64KiB"]
    plan = Sandbox(policy).plan
    assert {rule.field: rule.capability for rule in plan.rules} == {
        "memory_bytes": "memory:limit:1MB", "cpu_share": "cpu:limit:50%", "cpu_seconds": "cpu:limit:2s",
        "wall_seconds": "time:limit:3s", "fuel": "fuel:limit:1_000", "output_bytes": "output:limit:1KB",
        "stack_bytes": "stack:limit:64KiB"}
    assert not any(rule.default for rule in plan.rules)


def test_the_start_record_shows_environment_names_clock_and_mode_never_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_PLAN_SECRET", "s3cret")
    sandbox = Sandbox(["env:inherit:WB_PLAN_SECRET", "env:set:MODE=fast"], on_violation="kill")
    start = sandbox.run(SPIN.replace("(loop br 0)", ""), lang="wat").events[0]
    assert sorted(start.detail["env"]) == ["MODE", "WB_PLAN_SECRET"]
    assert start.detail["clock_grain_ns"] == 1_000_000
    assert start.detail["on_violation"] == "kill"
    assert "s3cret" not in repr(start.detail) and "fast" not in repr(start.detail)
    precise = Sandbox(["clock:precise"]).run(SPIN.replace("(loop br 0)", ""), lang="wat").events[0]
    assert precise.detail["clock_grain_ns"] == 0


def test_the_result_keeps_the_plan_its_limits_and_the_policy_as_a_value() -> None:
    sandbox = Sandbox(["memory:limit:1MiB"], defaults=Limits(wall_seconds=5.0))
    result = sandbox.run(SPIN.replace("(loop br 0)", ""), lang="wat")
    assert result.plan is sandbox.plan
    assert result.limits == Limits(memory_bytes=2**20, wall_seconds=5.0)
    assert isinstance(result.policy, Policy) and result.policy == sandbox.policy
    assert result.to_dict()["policy"] == "memory:limit:1MiB"
    assert result.to_dict()["limits"] == {"memory_bytes": 2**20, "wall_seconds": 5.0}


def test_the_plan_is_frozen_and_planned_once(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    sandbox = Sandbox(["filesystem:read:/docs"], root=tmp_path)
    plan = sandbox.plan
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.limits = Limits()  # type: ignore[misc]
    assert [m.guest_path for m in plan.mounts] == ["/docs"]
    sandbox.run(SPIN.replace("(loop br 0)", ""), lang="wat")
    assert sandbox.plan is plan


def test_on_violation_is_one_enum_parsed_in_one_place() -> None:
    assert Sandbox(on_violation="kill").plan.on_violation is OnViolation.KILL
    assert Sandbox(on_violation=OnViolation.AUDIT).on_violation.learns
    assert OnViolation.KILL.refusal == "kill" and OnViolation.DENY.refusal == "deny"
    with pytest.raises(SandboxError, match="unknown on_violation 'explode'") as caught:
        Sandbox(on_violation="explode")  # type: ignore[arg-type]
    assert "use 'deny'" in str(caught.value)


def test_learn_mode_plans_the_workspace_and_a_private_tmp(tmp_path: Path) -> None:
    plan = RunPlan.compile(Policy.parse([]), root=tmp_path, defaults=Limits(), on_violation="audit")
    assert [(m.guest_path, m.writable, m.scratch) for m in plan.mounts] == [("/", True, False), ("/tmp", True, True)]
    assert plan.scratch
