"""Events are bounded per run, and every event is still counted (issue 10, point 8).

A guest looping on a refused ``os.stat`` for 8 s left 523,000 events and 329 MB in the
host.  Now identical events are kept one by one up to ``REPEATS``, then counted and
summed up in one aggregate event; past ``MAX_EVENTS`` the rest are counted per
(category, decision) in overflow events.  The oracle: what the guest did (how many
calls, on which paths), against what every view holds.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from workbench import AuditLog
from workbench.events import Event
from workbench.runtime import Sandbox
from workbench.runtime.event_budget import MAX_EVENTS, REPEATS, EventBudget


def stat_loop(count: int, *, distinct: bool) -> str:
    """``count`` path_filestat_get calls on /nope (or /n00000, /n00001, ... when ``distinct``)."""
    digits = "".join(
        f"(i32.store8 (i32.const {133 - k}) (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $i) "
        f"(i32.const {10 ** k})) (i32.const 10))))" for k in range(5)
    )
    return f"""(module
  (import "wasi_snapshot_preview1" "path_filestat_get" (func $stat (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 128) "{'n00000' if distinct else 'nope'}")
  (func (export "_start") (local $i i32)
    (loop $again
      {digits if distinct else ''}
      (drop (call $stat (i32.const 3) (i32.const 0) (i32.const 128) (i32.const {6 if distinct else 4}) (i32.const 1024)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const {count}))))))"""


def accounted(events: list[Event] | tuple[Event, ...]) -> Counter[tuple[str, str]]:
    """How many guest actions the events stand for, per (category, decision)."""
    total: Counter[tuple[str, str]] = Counter()
    for event in events:
        if event.action == "overflow":
            total[event.category, event.decision] += event.detail["dropped"]
        else:  # an aggregate stands for the events it counted, a kept event for itself
            total[event.category, event.decision] += event.detail.get("repeated", 1)
    return total


def test_a_refused_call_in_a_loop_is_kept_ten_times_and_counted(tmp_path: Path) -> None:
    audit_path = tmp_path / "audit.jsonl"
    sandbox = Sandbox(["time:limit:60s"], audit=AuditLog(audit_path))
    live: list[Event] = []
    sandbox.subscribe(lambda item: live.append(item) if isinstance(item, Event) else None)
    result = sandbox.run(stat_loop(100_000, distinct=False))
    refused = [e for e in result.events if e.category == "filesystem" and e.action == "stat"]
    assert len(refused) == REPEATS + 1  # main kept all 100,000
    *first, aggregate = refused
    assert all("repeated" not in e.detail for e in first)
    assert aggregate.detail["repeated"] == 100_000 - REPEATS
    assert first[0].ts <= aggregate.detail["first_ts"] <= aggregate.detail["last_ts"] <= aggregate.ts
    assert aggregate.resolved == "/nope" and aggregate.decision == "deny"
    assert "counted, not recorded one by one" in (aggregate.reason or "")
    assert accounted(result.events)["filesystem", "deny"] == 100_000
    # every view holds the same records
    assert live == list(result.events)
    assert len(result.violations) == REPEATS + 1 and not result.ok
    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    run_records = [r for r in records if r["run_id"] == result.run_id]
    assert [(r["category"], r["action"], r["decision"], r["detail"].get("repeated")) for r in run_records] == [
        (e.category, e.action, e.decision, e.detail.get("repeated")) for e in result.events
    ]


def test_a_flood_of_distinct_events_is_capped_with_an_overflow_record() -> None:
    result = Sandbox(["time:limit:120s"]).run(stat_loop(30_000, distinct=True))
    refused = [e for e in result.events if e.category == "filesystem"]
    overflow = [e for e in refused if e.action == "overflow"]
    assert len(overflow) == 1 and overflow[0].decision == "deny"
    kept = len(refused) - 1
    assert kept <= MAX_EVENTS
    assert overflow[0].detail["dropped"] == 30_000 - kept
    assert accounted(result.events)["filesystem", "deny"] == 30_000
    assert len(result.events) <= MAX_EVENTS + 10
    assert result.events[-1].action == "exit"  # the exit is never dropped
    assert any(v.kind == "filesystem" and "cap of 10,000 recorded events" in v.message for v in result.violations)


# -- the budget on its own, against an oracle ---------------------------------------------------

KINDS = [("filesystem", "open", "deny"), ("filesystem", "stat", "allow"), ("memory", "grow", "deny"),
         ("time", "deadline", "kill"), ("lifecycle", "start", "allow"), ("output", "write", "kill")]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from(["/a", "/b", None])), max_size=200),
    st.integers(1, 5),
    st.integers(0, 40),
)
def test_the_budget_keeps_firsts_counts_the_rest_and_loses_nothing(
    stream: list[tuple[tuple[str, str, str], str | None]], repeats: int, max_events: int
) -> None:
    budget = EventBudget(repeats=repeats, max_events=max_events)
    fed = [Event(run_id="r", category=c, action=a, decision=d, target=t, ts=float(i))  # type: ignore[arg-type]
           for i, ((c, a, d), t) in enumerate(stream)]
    kept = [e for e in fed if budget.admit(e)]
    closing = budget.close()
    everything = kept + closing
    # nothing is lost: every fed event is kept or counted in exactly one summary
    assert accounted(everything) == Counter((e.category, e.decision) for e in fed)
    # lifecycle events are all kept; kills are never dropped by the cap (only aggregated)
    assert [e for e in fed if e.category == "lifecycle"] == [e for e in kept if e.category == "lifecycle"]
    assert not any(e.action == "overflow" and e.decision == "kill" for e in closing)
    # the bound
    others = [e for e in kept if e.category != "lifecycle" and e.decision != "kill"]
    assert len(others) <= max_events
    per_key = Counter((e.category, e.action, e.decision, e.target) for e in kept)
    assert all(count <= repeats for (category, *_), count in per_key.items() if category != "lifecycle")
    # an aggregate names its first and last counted occurrence
    for summary in closing:
        if "repeated" in summary.detail:
            same = [e for e in fed if (e.category, e.action, e.decision, e.target) ==
                    (summary.category, summary.action, summary.decision, summary.target) and e not in kept]
            assert summary.detail["repeated"] == len(same)
            assert (summary.detail["first_ts"], summary.detail["last_ts"]) == (same[0].ts, same[-1].ts)


def test_details_that_differ_are_different_events() -> None:
    budget = EventBudget(repeats=1)
    read = Event(run_id="r", category="filesystem", action="open", decision="audit", target="/a", detail={"rights": "read"})
    write = Event(run_id="r", category="filesystem", action="open", decision="audit", target="/a", detail={"rights": "write"})
    assert budget.admit(read) and budget.admit(write)  # learn mode needs both to suggest filesystem:write
    assert not budget.admit(read)
    nested = Event(run_id="r", category="trap", action="x", decision="audit", detail={"backtrace": ["f", "g"]})
    assert budget.admit(nested) and not budget.admit(nested)




def test_counts_stay_exact_when_a_place_repeats_after_many_distinct_ones() -> None:
    """The budget works out an event's full identity only once its place comes up again; the first
    event of that place is counted as one of the repeats all the same."""
    from workbench.events import Event
    from workbench.runtime.event_budget import EventBudget

    budget = EventBudget(repeats=3, max_events=1000)

    def event(path: str, decision: str = "deny") -> Event:
        return Event(run_id="r", category="filesystem", action="open", decision=decision, resolved=path,
                     reason=f"{path} denied", errno=2, detail={"rights": "read"})

    kept = [budget.admit(event(f"/d/{i}")) for i in range(50)]  # distinct places: all kept
    assert all(kept)
    repeats = [budget.admit(event("/d/7")) for _ in range(5)]  # /d/7 was seen once already
    assert repeats == [True, True, False, False, False]  # 3 kept in all, then counted
    other = [budget.admit(event("/d/8", "allow")) for _ in range(3)]  # same place, another identity
    assert other == [True, True, True]
    (aggregate,) = budget.close()
    assert aggregate.resolved == "/d/7" and aggregate.detail["repeated"] == 3
