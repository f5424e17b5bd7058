"""The live view of a run: gauges and a violation timeline, in one ipywidgets box.

Who does what, and why:

- the **main thread** (the cell) creates the view and displays an empty box
  before the run starts: displaying is output, and output from other threads
  is unsafe under ipykernel 7 (ipywidgets issues 4001 and 4020);
- the **refresh thread** (:class:`~.refresh.RefreshThread`) is the only one that
  touches the widgets while the run goes on: if the run lasts longer than
  ``show_after`` seconds it fills the box with gauges (creating widgets sends
  comm messages, which are safe from a thread), then sets their traits, each
  widget's changes batched by ``hold_sync()`` into one message, within a
  :class:`~.refresh.MessageBudget` of ``rate`` messages per second;
- after the run the main thread stops the refresher (which sends the final,
  exact numbers) and, for a run too quick to show gauges, replaces the empty
  box's output with nothing and closes it, so quick cells leave no widget behind.

ipywidgets and IPython are imported here only, and only when a view is made.
"""

from __future__ import annotations

import html
import time
from typing import Any

from ..policy import Limits
from .gauges import Reading, readings
from .live import LiveState, Snapshot, TimelineEntry
from .refresh import MessageBudget

__all__ = ["LiveView", "widgets_available"]

_BAR_STYLE = {"ok": "", "warning": "warning", "danger": "danger"}
_TIMELINE_ROWS = 50
#: how many places a gauge's value is rounded to: finer changes are not worth a message
_VALUE_DIGITS = 2


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


class _Nothing:
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/plain": ""}


class LiveView:
    """Gauges (memory, CPU, wall time, fuel) and a violation timeline for one run."""

    def __init__(
        self,
        module: str,
        limits: Limits,
        state: LiveState,
        *,
        rate: float = 10.0,
        show_after: float = 0.25,
    ) -> None:
        import ipywidgets

        self._w = ipywidgets
        self.module = module
        self.limits = limits
        self.state = state
        self.show_after = show_after
        self.budget = MessageBudget(rate)
        self.box = ipywidgets.VBox(layout=ipywidgets.Layout(margin="2px 0 6px 0"), _dom_classes=("workbench-live",))
        self.gauges: dict[str, Any] = {}
        self.timeline: Any = None
        self._sent: dict[str, tuple[Any, ...]] = {}
        self._sent_at: dict[str, float] = {}
        self._created = time.monotonic()
        self._handle: Any = None
        self.revealed = False

    # -- main thread --------------------------------------------------------------------------
    def display(self) -> None:
        """Show the (still empty) box; call on the cell's thread before the run."""
        from IPython.display import display

        self._handle = display(_WidgetOutput(self.box), display_id=True)

    def close(self) -> None:
        """After the refresher stopped: a run too quick for gauges leaves no widget behind."""
        if self.revealed:
            return
        if self._handle is not None:
            self._handle.update(_Nothing())
        self.box.close()

    # -- refresh thread -----------------------------------------------------------------------
    def refresh(self, final: bool) -> bool:
        """Bring the widgets up to date within the budget; True when updates are still pending."""
        if not self.revealed:
            if final or time.monotonic() - self._created < self.show_after:
                return False
            if not self.budget.available(reserve=4):
                return True
            self._reveal(self.state.snapshot())
            return True
        snap = self.state.snapshot()
        pending = self._pending(snap, final)
        pending.sort(key=lambda item: (item[0] != "timeline", self._sent_at.get(item[0], 0.0)))
        # while running, keep one message per widget in reserve for the final update
        reserve = 0 if final else len(self.gauges) + 1
        for key, widget, values in pending:
            if not self.budget.available(reserve):
                return True
            with widget.hold_sync():
                for name, value in values.items():
                    setattr(widget, name, value)
            self._sent[key] = tuple(values.values())
            self._sent_at[key] = time.monotonic()
            self.budget.spend()
        return False

    def _reveal(self, snap: Snapshot) -> None:
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
        self.timeline = w.HTML(value=self._timeline_html(snap, False))
        self._sent["timeline"] = (self.timeline.value,)
        self.box.children = (*self.gauges.values(), self.timeline)  # one message
        self.budget.spend()
        self.revealed = True

    def _pending(self, snap: Snapshot, final: bool) -> list[tuple[str, Any, dict[str, Any]]]:
        pending = []
        for reading in readings(snap, self.limits):
            gauge = self.gauges.get(reading.key)
            values = self._gauge_values(reading)
            if gauge is not None and self._sent.get(reading.key) != tuple(values.values()):
                pending.append((reading.key, gauge, values))
        timeline = {"value": self._timeline_html(snap, final)}
        if self._sent.get("timeline") != (timeline["value"],):
            pending.append(("timeline", self.timeline, timeline))
        return pending

    @staticmethod
    def _gauge_values(reading: Reading) -> dict[str, Any]:
        return {
            "value": round(reading.fraction, _VALUE_DIGITS),
            "description": f"{reading.label}: {reading.text}",
            "bar_style": _BAR_STYLE[reading.level],
        }

    def _timeline_html(self, snap: Snapshot, final: bool) -> str:
        status = "finished" if final or snap.finished else "running…"
        head = f"<div style='font-size:90%;color:#555'><b>{html.escape(self.module)}</b> · {status}"
        if not snap.violations:
            return head + " · no violations</div>"
        rows = "".join(_timeline_row(v) for v in snap.violations[-_TIMELINE_ROWS:])
        more = len(snap.violations) - _TIMELINE_ROWS
        extra = f"<div>… {more} earlier violations not shown</div>" if more > 0 else ""
        return (
            head + f" · {len(snap.violations)} violation{'s' if len(snap.violations) != 1 else ''}</div>"
            "<table class='workbench-timeline' style='font-size:90%;border-collapse:collapse'>"
            f"{rows}</table>{extra}"
        )


def _progress_style_class() -> Any:
    """ipywidgets 8 does not export ProgressStyle at the top level; one shared style for all gauges."""
    from ipywidgets.widgets.widget_int import ProgressStyle

    return ProgressStyle


def _timeline_row(entry: TimelineEntry) -> str:
    colour = "#c62828" if entry.decision == "kill" else "#ef6c00"
    cells = [
        f"+{entry.seconds:.3f} s",
        f"<b style='color:{colour}'>{html.escape(entry.decision)}</b>",
        html.escape(f"{entry.kind} {entry.action}"),
        html.escape(entry.target or ""),
        f"<code>{html.escape(entry.capability or '')}</code>",
        html.escape(entry.message),
    ]
    return "<tr>" + "".join(f"<td style='padding:0 8px 0 0'>{c}</td>" for c in cells) + "</tr>"
