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
