"""A progress bar widget for the one slow step: compiling a large module the first time.

Installed as the languages' progress hook (:func:`workbench.languages.progress.set_progress_hook`)
by ``%load_ext workbench`` in a kernel that can show widgets.  The compile blocks the
cell's thread inside wasmtime, so the bar is filled from a small thread, by setting
traits only (design.md §6), at most 10 times a second.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Iterator

__all__ = ["widget_progress", "REFRESH_SECONDS"]

REFRESH_SECONDS = 0.1


@contextlib.contextmanager
def widget_progress(label: str, expected_seconds: float, *, show: Any = None) -> Iterator[Any]:
    """Show a FloatProgress bar while the block runs; it fills with time and completes at the end.

    ``show`` displays the widget (default: IPython's ``display``); tests pass their own.
    """
    import ipywidgets

    total = max(expected_seconds, 0.5)
    bar = ipywidgets.FloatProgress(value=0.0, min=0.0, max=total, description="compiling",
                                   bar_style="info", layout=ipywidgets.Layout(width="40em"))
    bar.style.description_width = "initial"
    box = ipywidgets.HBox([bar, ipywidgets.Label(f"{label} (about {total:.0f} s, once)")])
    if show is None:
        from IPython.display import display as show
    show(box)
    done = threading.Event()
    started = time.monotonic()

    def fill() -> None:
        while not done.wait(REFRESH_SECONDS):
            bar.value = min(time.monotonic() - started, total * 0.97)

    filler = threading.Thread(target=fill, name="workbench-compile-progress", daemon=True)
    filler.start()
    try:
        yield bar
    finally:
        done.set()
        filler.join()
        with bar.hold_sync():
            bar.value = total
            bar.bar_style = "success"
            bar.description = f"compiled in {time.monotonic() - started:.1f} s"
