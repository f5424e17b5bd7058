"""The compile progress widget: fills while the compile blocks, completes when it ends."""

from __future__ import annotations

import time

from workbench.jupyter.progress import widget_progress
from workbench.languages.progress import compile_progress, get_progress_hook, set_progress_hook


def test_bar_fills_from_a_thread_and_completes() -> None:
    shown: list[object] = []
    with widget_progress("compiling python.wasm", 2.0, show=shown.append) as bar:
        time.sleep(0.35)  # the cell's thread is blocked, as in a compile
        midway = bar.value
    assert len(shown) == 1
    assert 0.2 <= midway < 2.0
    assert bar.value == bar.max and bar.bar_style == "success"
    assert bar.description.startswith("compiled in ")


def test_installed_hook_is_used_by_compile_progress() -> None:
    seen: list[tuple[str, float]] = []

    def hook(label: str, seconds: float):  # type: ignore[no-untyped-def]
        seen.append((label, seconds))
        return widget_progress(label, seconds, show=lambda widget: None)

    previous = set_progress_hook(hook)
    try:
        with compile_progress("big.wasm", 30_000_000):
            pass
    finally:
        set_progress_hook(previous)
    assert seen and seen[0][0] == "big.wasm" and seen[0][1] >= 1.0
    assert get_progress_hook() is previous


def test_a_c_compile_shows_progress_and_names_the_slow_first_one(tmp_path: object) -> None:
    """Was: the first C compile (25-40 s) showed nothing but gauges at 0 and an amber time bar."""
    import uuid
    from pathlib import Path

    import pytest

    pytest.importorskip("ziglang")
    from workbench import Sandbox
    from workbench.languages import c

    seen: list[tuple[str, float]] = []

    def hook(label: str, seconds: float):  # type: ignore[no-untyped-def]
        seen.append((label, seconds))
        return widget_progress(label, seconds, show=lambda widget: None)

    source = f'#include <stdio.h>\nint main(void) {{ puts("{uuid.uuid4().hex}"); return 0; }}\n'  # a cache miss
    previous = set_progress_hook(hook)
    try:
        result = Sandbox(["time:limit:60s"]).run(source, lang="c", name="fresh")
        Sandbox(["time:limit:60s"]).run(source, lang="c", name="fresh")  # compiled before: no progress
    finally:
        set_progress_hook(previous)
    assert result.ok
    assert len(seen) == 1 and seen[0][0].startswith("compiling fresh.c with zig")
    cold = Path(str(tmp_path)) / "zig-cache"
    assert not c.zig_libc_cached(cold)  # an empty zig cache: the first compile is the slow one
    (cold / "o" / "abc").mkdir(parents=True)
    (cold / "o" / "abc" / "__wasilibc_initialize_environ.o").write_bytes(b"")
    assert c.zig_libc_cached(cold)


def test_the_live_clock_starts_with_the_guest_not_the_compile() -> None:
    """Compiling is not the guest's time: no gauges and a zero clock until the run's start event."""
    from workbench.events import Event
    from workbench.jupyter.live import LiveState

    now = [100.0]
    state = LiveState(clock=lambda: now[0])
    now[0] += 25.0  # a first C compile
    assert state.running_seconds() is None and state.snapshot().wall_seconds == 0.0
    state(Event(run_id="r", category="lifecycle", action="start", ts=125.0))
    now[0] += 0.5
    assert state.running_seconds() == 0.5 and state.snapshot().wall_seconds == 0.5
