"""One run inside a cell: the live view, output streaming and the interrupt route, put together.

The magic decides *what* to run; this module decides *how* a run behaves in a
notebook, in one place, so every magic (``%%sandbox``, ``%sandbox run``) gets
the same gauges, the same streaming and the same ■ behaviour:

1. on the cell's thread: show the empty live box, subscribe its state to the
   sandbox's event stream, start the refresh thread (which also writes the
   guest's output into the cell as it comes);
2. run the guest on the cell's thread inside :func:`route_interrupts`, so a
   SIGINT cancels the run at its next epoch tick;
3. after the run, hand the exact final numbers and the summary to the view, stop
   the refresher (it sends the last update), unsubscribe, flush buffered output,
   and empty the live display: its box is now the result's final view, shown as
   the cell's value (one display per run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..runtime import RunResult, Sandbox, result_html
from ..runtime.interrupt import InterruptRoute, route_interrupts
from .live import LiveState, final_snapshot
from .refresh import RefreshThread
from .streams import StreamForwarder

__all__ = ["CellRun", "INTERRUPT_REASON"]

#: the cancel reason of a run stopped by ■ (the outcome reads "stopped: interrupted by the user")
INTERRUPT_REASON = "interrupted by the user"


@dataclass
class CellRun:
    """How to present one run: live widgets or not, the throttle, the output cap."""

    live: bool = True
    rate: float = 10.0
    show_after: float = 0.25
    max_stream_bytes: int | None = 200_000
    route: InterruptRoute | None = field(default=None, init=False)
    view: Any = field(default=None, init=False)

    def execute(
        self,
        sandbox: Sandbox,
        source: Any,
        *,
        lang: str | None,
        name: str,
        args: Sequence[str] = (),
        stdin: str | bytes | None = None,
        inputs: Mapping[str, Any] | None = None,
        entry: str = "_start",
        debug: Mapping[str, bool] | None = None,
        runtime: str | None = None,
    ) -> RunResult:
        """Run ``source`` in ``sandbox`` with the notebook's trimmings; returns the RunResult."""
        extra: dict[str, Any] = {"runtime": runtime} if runtime else {}
        if inputs:
            extra["inputs"] = dict(inputs)
        if entry != "_start":
            extra["entry"] = entry
        extra.update({k: v for k, v in (debug or {}).items() if v})  # trace=, keep_memory=, profile=
        state = LiveState()
        forward = StreamForwarder(self.max_stream_bytes)
        unsubscribe = None
        if self.live:
            from .widgets import LiveView

            self.view = LiveView(name, sandbox.limits, state, rate=self.rate, show_after=self.show_after)
            self.view.display()
            unsubscribe = sandbox.subscribe(state)

        def tick(final: bool) -> bool:
            forward.drain()
            return self.view.refresh(final) if self.view is not None else False

        refresher = RefreshThread(tick, self.rate)  # started here: it inherits this cell's context
        refresher.start()
        result: RunResult | None = None
        try:
            with route_interrupts(lambda signum: sandbox.cancel(INTERRUPT_REASON) > 0) as self.route:
                result = sandbox.run(source, lang, args=args, stdin=stdin, name=name, on_output=forward, **extra)
        finally:
            if result is not None:
                state.finish(final_snapshot(result, summary_html=result_html(result, usage=False)))
            refresher.stop()
            if unsubscribe is not None:
                unsubscribe()
            if self.view is not None:
                self.view.close(result)
            forward.finish()
        return result


    @property
    def interrupted(self) -> bool:
        """The run was stopped by the kernel's interrupt (■ / SIGINT)."""
        return self.route is not None and self.route.handled > 0
