"""``%sandbox_audit``'s forensic view: the chain's verdict, a summary per run, then a compact frame.

The audit package answers the questions (:mod:`workbench.audit.review`: runs, the compact
frame, filters); this module only draws the answer for a notebook: decisions coloured as
everywhere else (deny amber, kill red, learn mode's audit blue), the frame in a box of
bounded height, at most ``rows`` rows drawn (the whole selection stays in ``-o VAR``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["AuditView"]

_COLOURS = {"allow": "#2e7d32", "deny": "#ef6c00", "kill": "#c62828", "audit": "#1565c0"}


@dataclass
class AuditView:
    """What ``%sandbox_audit`` shows: ``runs`` (one row per run), ``frame`` (compact, one row per
    record) and ``verdict`` (the log's verification, one line)."""

    path: str
    verdict: str
    runs: pd.DataFrame
    frame: pd.DataFrame
    rows: int = 200

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.text(), "text/html": self.html()}

    def text(self) -> str:
        shown = self.frame.tail(self.rows)
        more = len(self.frame) - len(shown)
        return "\n".join([
            f"audit log {self.path}: {self.verdict}",
            self.runs.to_string(index=False) if len(self.runs) else "no runs",
            "",
            (f"(the first {more} records not shown)\n" if more else "") + shown.to_string(index=False),
        ])

    def html(self) -> str:
        ok = self.verdict.startswith("verified")
        head = (f"<div><b>audit log</b> <code>{html.escape(self.path)}</code> · "
                f"<b style='color:{'#2e7d32' if ok else '#c62828'}'>{html.escape(self.verdict)}</b></div>")
        runs = _table(self.runs.assign(started=self.runs["started"].dt.strftime("%Y-%m-%d %H:%M:%S")),
                      "workbench-audit-runs", colour_counts=True)
        shown = self.frame.tail(self.rows)
        more = len(self.frame) - len(shown)
        note = (f"<div style='color:#555'>the last {len(shown)} of {len(self.frame)} records; "
                "<code>-o VAR</code> keeps them all</div>") if more else ""
        frame = f"<div style='max-height:24em;overflow:auto'>{_table(shown, 'workbench-audit-frame')}</div>"
        style = ("<style>.workbench-audit-runs td, .workbench-audit-runs th, .workbench-audit-frame td, "
                 ".workbench-audit-frame th {text-align:left; padding:1px 8px 1px 0; white-space:nowrap}</style>")
        return (f"<div class='workbench-audit'>{head}<div style='margin:4px 0'><b>runs</b></div>{runs}"
                f"<div style='margin:6px 0 2px 0'><b>decisions</b> (newest last)</div>{note}{frame}{style}</div>")


def _table(df: pd.DataFrame, css: str, *, colour_counts: bool = False) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for column, value in zip(df.columns, row):
            text = html.escape("" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value))
            if column == "decision" and value in _COLOURS:
                text = f"<b style='color:{_COLOURS[value]}'>{text}</b>"
            elif colour_counts and column in _COLOURS and value:
                text = f"<b style='color:{_COLOURS[column]}'>{text}</b>"
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class='{css}' style='border-collapse:collapse'><tr>{head}</tr>{''.join(body)}</table>"
