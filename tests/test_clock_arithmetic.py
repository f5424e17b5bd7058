"""The enforcers' time arithmetic, with a clock the test moves by hand (runtime/clock.py).

Deadline, CPU-share pacing, CPU budget and sampling are checked exactly here, whatever
the machine is doing; the few real-time checks that remain are marked ``timing``.
"""

from __future__ import annotations

import pytest

from workbench.events import Sample
from workbench.runtime import deadline
from workbench.runtime.clock import ManualClock
from workbench.runtime.deadline import MAX_TICKS, RunWatch
from workbench.runtime.engine import tick_seconds
from workbench.runtime.monitor import Monitor

TICK = 0.002


def _monitor(manual: ManualClock, **limits: float) -> tuple[Monitor, RunWatch, list[Sample], list[tuple[str, str]]]:
    watch = RunWatch(None, clock=manual.clock())
    samples: list[Sample] = []
    stops: list[tuple[str, str]] = []
    monitor = Monitor("run", samples.append, lambda kind, reason: stops.append((kind, reason)),
                      pause=watch.pause, clock=manual.clock(), **limits)  # type: ignore[arg-type]
    monitor.start()
    return monitor, watch, samples, stops


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.9, 1.0])
def test_a_cpu_share_holds_at_every_tick_and_pauses_pay_for_exactly_the_excess(share: float) -> None:
    manual = ManualClock()
    monitor, _, _, _ = _monitor(manual, cpu_share=share)
    start_wall = manual.now
    for _ in range(500):  # a guest spinning flat out: every tick is CPU time
        manual.advance(TICK, cpu=TICK)
        assert monitor.tick() == 0.0  # paced at every tick
        assert manual.cpu_now / (manual.now - start_wall) <= share + 1e-9
    cpu = 500 * TICK
    assert monitor.throttled_seconds == pytest.approx(cpu / share - cpu, abs=1e-6)
    assert manual.now - start_wall == pytest.approx(cpu / share, abs=1e-6)


def test_a_pause_that_overslept_is_paid_back_by_the_next_ones() -> None:
    """The rule is cumulative: wall time the guest lost (a slow wake-up) counts as paid pause."""
    manual = ManualClock()
    start = manual.now
    monitor, _, _, _ = _monitor(manual, cpu_share=0.5)
    manual.advance(0.1, cpu=0.1)
    monitor.tick()  # paused 0.1 s: wall 0.2 for 0.1 of CPU
    manual.advance(0.3)  # the host was slow to wake the guest: 0.3 s of extra wall time
    before = monitor.throttled_seconds
    for _ in range(300):  # 0.6 s more of CPU
        manual.advance(TICK, cpu=TICK)
        monitor.tick()
    # 0.7 s of CPU needs 1.4 s of wall; 0.5 + 0.6 passed, so 0.3 s of pauses, not 0.6
    assert monitor.throttled_seconds - before == pytest.approx(0.3, abs=1e-6)
    assert manual.cpu_now / (manual.now - start) == pytest.approx(0.5, abs=1e-6)


def test_samples_come_every_interval_and_never_in_a_burst_after_a_long_pause() -> None:
    manual = ManualClock(now=1024.0)  # binary fractions below: the arithmetic is exact
    monitor, _, samples, _ = _monitor(manual, sample_interval=0.125)
    waits = []
    for _ in range(32):  # 2 s in steps of 1/16 s
        manual.advance(0.0625, cpu=0.0625)
        waits.append(monitor.tick())
    assert [s.wall_seconds for s in samples] == [0.125 * k for k in range(1, 17)]
    assert all(0 <= w <= 0.125 for w in waits)
    manual.advance(1.0, cpu=0.0)  # a long host call: one sample, then the rhythm again
    monitor.tick()
    assert len(samples) == 17
    manual.advance(0.0625)
    assert monitor.tick() == 0.0625
    assert len(samples) == 17
    manual.advance(0.0625)
    monitor.tick()
    assert len(samples) == 18


def test_a_cpu_budget_stops_the_run_when_used_up_and_looks_again_in_time() -> None:
    manual = ManualClock()
    monitor, _, _, stops = _monitor(manual, cpu_seconds=1.0, sample_interval=1.0)
    waits = []
    for _ in range(3):
        manual.advance(0.25, cpu=0.25)
        waits.append(monitor.tick())
        assert stops == []
    # never waits longer than half the budget left (CPU time cannot run faster than wall time)
    assert waits[-1] == (1.0 - 0.75) / 2
    manual.advance(0.25, cpu=0.25)
    monitor.tick()
    assert stops and stops[0][0] == "cpu" and "1s" in stops[0][1]


def test_a_pause_never_outlasts_the_deadline_and_a_stopped_run_is_not_held() -> None:
    manual = ManualClock()
    watch = RunWatch(manual.now + 1.0, clock=manual.clock())
    assert watch.pause(5.0) == pytest.approx(1.0)
    assert watch.check() and watch.stop_kind == "time"
    assert watch.pause(1.0) == 0.0
    other = RunWatch(None, clock=manual.clock())
    other.stop("cancel", "by the test")
    assert other.pause(3.0) == 0.0


@pytest.mark.parametrize("left", [10.0, 0.5, 0.05, 0.004, 0.0])
def test_the_deadline_callback_closes_in_on_the_deadline(left: float) -> None:
    manual = ManualClock()
    watch = RunWatch(manual.now + left, clock=manual.clock())
    number = 10**9 + int(left * 1000)
    deadline._watches[number] = watch
    try:
        delta, kind = [0], [7]
        trapped = deadline._tick(number, delta, kind)
    finally:
        deadline._watches.pop(number, None)
    if left <= 0:
        assert trapped != 0 and watch.stop_kind == "time"
        return
    assert trapped == 0 and kind == [0]
    assert delta[0] == max(1, min(MAX_TICKS, int(left / 2 / tick_seconds())))
