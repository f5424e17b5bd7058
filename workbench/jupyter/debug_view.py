"""What ``%%sandbox --trace / --profile`` shows under a run: the call trace, the profile.

Kept out of :mod:`.magics` (a thin layer): each is the library's own object, displayed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["show_debug"]


def show_debug(result: Any, quiet: bool, name: str = "cell") -> None:
    """Display the trace table and the profile (its top functions and flame graph), if the run has them.
    A profile is also written to ``NAME-profile.json`` (open it at https://profiler.firefox.com)."""
    if result.profile is not None:
        result.profile.save(f"{name}-profile.json")
    if quiet:
        return
    from IPython.display import display

    if result.trace is not None:
        display(result.trace)
    if result.profile is not None:
        display(result.profile)
        display(result.profile.flame_graph())


def show_figures(result: Any) -> None:
    """Display the figures the guest drew (``RunResult.figures``, PNG bytes checked by the runtime)
    under the cell; like the guest's output, they show even with ``--quiet``."""
    figures = getattr(result, "figures", ())
    if not figures:
        return
    from IPython.display import Image, display

    for figure in figures:
        display(Image(data=figure, format="png"))
