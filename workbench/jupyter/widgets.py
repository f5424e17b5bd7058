"""The live view of a run: gauges and a violation timeline, one display that becomes the final view.

Who does what, and why:

- the **main thread** (the cell) creates the view and displays an empty box
  before the run starts: displaying is output, and output from other threads
  is unsafe under ipykernel 7 (ipywidgets issues 4001 and 4020);
- the **refresh thread** (:class:`~.refresh.RefreshThread`) is the only one that
  touches the widgets while the run goes on: if the run lasts longer than
  ``show_after`` seconds it fills the box with gauges and the timeline (creating
  widgets sends comm messages, which are safe from a thread), then sets their traits,
  each widget's changes batched by ``hold_sync()`` into one message, within a
  :class:`~.refresh.MessageBudget` of ``rate`` messages per second.  The time gauge
  and the timeline's axis are one clock: they are sent together, from one snapshot,
  or not at all;
- after the run the main thread hands the final numbers and the summary to the state,
  stops the refresher (which sends them: the gauges' exact values, the finished
  timeline, and the summary under it) and empties the live display.  The box, now the
  final view, moves into the cell's value: the RunResult's display carries it (see
  :func:`final_views`), next to the result's own text and HTML.  So the cell holds
  **one display per run**, and its outputs have the same shape whether or not the run
  lasted long enough to show gauges (nbval compares them).  A run too quick to show
  gauges leaves no widget behind; its value is the plain summary.

ipywidgets and IPython are imported here only, and only when a view is made.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Callable

from ..policy import Limits
from ..runtime import RunResult
from .gauges import Reading, readings
from .live import LiveState, Snapshot
from .refresh import MessageBudget

__all__ = ["LiveView", "widgets_available", "final_views"]

_BAR_STYLE = {"ok": "", "warning": "warning", "danger": "danger"}
#: how many places a gauge's value is rounded to: finer changes are not worth a message
_VALUE_DIGITS = 2
#: how much faster the clock unit (time gauge + timeline) ages than a gauge when choosing what to send next:
#: with the budget's ~5 sends a second (10 messages, paced, a reserve kept), the clock moves every 0.4 s and
#: each other gauge at least every 1.2 s (tests/test_jupyter_view.py simulates it on a manual clock)
CLOCK_WEIGHT = 3.0


def widgets_available() -> bool:
    """True inside a Jupyter kernel with ipywidgets importable (a frontend may render them)."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None or getattr(shell, "kernel", None) is None:
            return False
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class _WidgetOutput:
    """Displays a widget with an empty, stable ``text/plain``: a widget's own repr holds its
    values at display time, which notebooks would then compare (nbval) or print (nbconvert)."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_())
        bundle["text/plain"] = ""
        return bundle


#: finished runs' final views (the live box, by run id), most recent last; bounded
_FINAL_VIEWS: "OrderedDict[str, Any]" = OrderedDict()
_FINAL_VIEWS_KEPT = 64


def final_views(result: RunResult, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """A RunResult's mime bundle in a kernel: its own text and HTML, plus the widget view of
    its final live box (gauges, timeline, summary) when the run showed one."""
    bundle: dict[str, Any] = dict(result._repr_mimebundle_())
    box = _FINAL_VIEWS.get(result.run_id)
    if box is not None and getattr(box, "comm", None) is not None:
        bundle.update({k: v for k, v in box._repr_mimebundle_().items() if k != "text/plain"})
    return bundle


class _Nothing:
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/plain": ""}


class LiveView:
    """Gauges (memory, CPU, wall time, fuel), a violation timeline and, at the end, the summary."""

    #: messages of the budget's window kept back while running, so the final update starts at once (the
    #: rest of it follows within a fraction of a second: the refresher's final calls wait for the budget)
    RESERVE = 2

    def __init__(
        self,
        module: str,
        limits: Limits,
        state: LiveState,
        *,
        rate: float = 10.0,
        show_after: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import ipywidgets

        from . import timeline_widget  # noqa: F401  (imported here, on the cell's thread: anywidget takes
        # ~0.5 s to import the first time, which on the refresh thread would delay the gauges)

        self._w = ipywidgets
        self.module = module
        self.limits = limits
        self.state = state
        self.show_after = show_after
        self._clock = clock
        self.budget = MessageBudget(rate, clock=clock)
        self.box = ipywidgets.VBox(layout=ipywidgets.Layout(margin="2px 0 6px 0"), _dom_classes=("workbench-live",))
        self.gauges: dict[str, Any] = {}
        self.timeline: Any = None
        self._sent: dict[str, tuple[Any, ...]] = {}
        self._sent_at: dict[str, float] = {}
        self._handle: Any = None
        self.revealed = False

    # -- main thread --------------------------------------------------------------------------
    def display(self) -> None:
        """Show the (still empty) box; call on the cell's thread before the run."""
        from IPython.display import display

        self._handle = display(_WidgetOutput(self.box), display_id=True)

    def close(self, result: RunResult | None = None) -> None:
        """After the refresher stopped: empty the live display.  A run that showed gauges hands
        its box on as the result's final view (:func:`final_views`); a run too quick for gauges
        leaves no widget behind."""
        if self._handle is not None:
            self._handle.update(_Nothing())
        if self.revealed and result is not None:
            _FINAL_VIEWS[result.run_id] = self.box
            while len(_FINAL_VIEWS) > _FINAL_VIEWS_KEPT:
                _FINAL_VIEWS.popitem(last=False)[1].close()
            return
        self.box.close()

    # -- refresh thread -----------------------------------------------------------------------
    def refresh(self, final: bool) -> bool:
        """Bring the widgets up to date within the budget; True when updates are still pending."""
        if not self.revealed:
            running = self.state.running_seconds()  # None while compiling: no gauges yet, no clock
            if final or running is None or running < self.show_after:
                return False
            if not self.budget.available(reserve=4):
                return True
            self._reveal(self.state.snapshot())
            return True
        snap = self.state.snapshot()
        pending = self._pending(snap)
        now = self._clock()
        # the stalest first, so no gauge starves; the clock (time gauge + timeline) ages CLOCK_WEIGHT times as
        # fast: it is the reading that moves all the time, and the one a person compares with the rows below
        pending.sort(key=lambda item: -(now - self._sent_at.get(item[0], 0.0)) * (CLOCK_WEIGHT if "+" in item[0] else 1))
        # while running, keep messages in reserve so the final update goes (almost) at once
        reserve = 0 if final else min(self.RESERVE, len(self.gauges) + 1)
        for key, updates in pending:
            # a unit goes whole or not at all (the time gauge and the timeline share one clock)
            if not self.budget.available(reserve + len(updates) - 1):
                return True
            for widget, values in updates:
                with widget.hold_sync():
                    for name, value in values.items():
                        setattr(widget, name, value)
                self.budget.spend()
            for name, values in zip(key.split("+"), (v for _, v in updates)):
                self._sent[name] = tuple(values.values())
            self._sent_at[key] = self._clock()
        return False

    def _reveal(self, snap: Snapshot) -> None:
        from .timeline_widget import TimelineWidget

        w = self._w
        layout = w.Layout(width="34em", height="18px", margin="1px 0")
        style = _progress_style_class()(description_width="18em")
        for reading in readings(snap, self.limits):
            values = self._gauge_values(reading)
            gauge = w.FloatProgress(
                min=0.0, max=1.0, layout=layout, style=style, _dom_classes=(f"workbench-gauge-{reading.key}",), **values
            )
            self.gauges[reading.key] = gauge
            self._sent[reading.key] = tuple(values.values())
        values = TimelineWidget.values(snap, self.module)
        self.timeline = TimelineWidget(**values)
        self._sent["timeline"] = tuple(values.values())
        self.box.children = (*self.gauges.values(), self.timeline)  # one message
        self.budget.spend()
        self.revealed = True

    def _pending(self, snap: Snapshot) -> list[tuple[str, list[tuple[Any, dict[str, Any]]]]]:
        from .timeline_widget import TimelineWidget

        changed: dict[str, tuple[Any, dict[str, Any]]] = {}
        for reading in readings(snap, self.limits):
            gauge = self.gauges.get(reading.key)
            values = self._gauge_values(reading)
            if gauge is not None and self._sent.get(reading.key) != tuple(values.values()):
                changed[reading.key] = (gauge, values)
        timeline = TimelineWidget.values(snap, self.module)
        if self._sent.get("timeline") != tuple(timeline.values()):
            changed["timeline"] = (self.timeline, timeline)
        pending: list[tuple[str, list[tuple[Any, dict[str, Any]]]]] = []
        if "time" in self.gauges and ("time" in changed or "timeline" in changed):  # one clock, one unit
            time_values = self._gauge_values(next(r for r in readings(snap, self.limits) if r.key == "time"))
            changed.pop("time", None)
            changed.pop("timeline", None)
            pending.append(("time+timeline", [(self.gauges["time"], time_values), (self.timeline, timeline)]))
        pending.extend((key, [item]) for key, item in changed.items())
        return pending

    @staticmethod
    def _gauge_values(reading: Reading) -> dict[str, Any]:
        return {
            "value": round(reading.fraction, _VALUE_DIGITS),
            "description": f"{reading.label}: {reading.text}",
            "bar_style": _BAR_STYLE[reading.level],
        }


def _progress_style_class() -> Any:
    """ipywidgets 8 does not export ProgressStyle at the top level; one shared style for all gauges."""
    from ipywidgets.widgets.widget_int import ProgressStyle

    return ProgressStyle
