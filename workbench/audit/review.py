"""An audit log read as an investigator reads it: runs first, then the decisions that matter.

The raw frame (:func:`~workbench.audit.frame`) keeps every field in storage order, which is
right for storage and wrong for reading: ``v``, ``seq``, ``ts``, run id and module hash
come first, the decision and its target need scrolling, WASI errnos are numbers, and
missing values mix ``NaN`` and ``<NA>``.  This module gives the reading order instead:

- :func:`runs` — one row per run: when, the module and the guest's own code (source name
  and shortened hash, from the run's start record), how it ended (the runtime's one
  :func:`~workbench.runtime.outcome.classify`, fed from the records), counts by decision
  and by category, and the most refused targets;
- :func:`compact` — one row per decision, the useful columns first: time, run, module,
  decision, category/action, the resolved target, rule, errno *by name*, reason; empty
  text where a value is missing; hashes and run ids shortened;
- :func:`select` — the filters ``%sandbox_audit`` offers: a run (a prefix of its id), a
  decision, a start time.

Pure pandas; nothing here needs IPython.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pandas as pd

from ..events import Event
from ..runtime.errnos import errno_name
from ..runtime.outcome import classify
from .frames import DECISIONS

__all__ = ["runs", "compact", "select", "short", "COMPACT_COLUMNS"]

#: the compact frame's columns, in reading order
COMPACT_COLUMNS = ("time", "run", "module", "decision", "what", "target", "rule", "errno", "reason")
_VIOLATIONS = ("deny", "kill")


def short(value: Any, n: int = 8) -> str:
    """A hash or run id cut to ``n`` characters (git's habit); empty for a missing value."""
    return "" if value is None or pd.isna(value) else str(value)[:n]


def _text(series: pd.Series) -> pd.Series:
    """Strings with missing values as empty text (never a mix of NaN and <NA>)."""
    return series.astype(object).where(series.notna(), "").astype(str)


def select(df: pd.DataFrame, *, run: str | None = None, decision: str | None = None,
           since: Any = None) -> pd.DataFrame:
    """The records of runs whose id starts with ``run``, with ``decision``, at or after ``since``
    (a timestamp, or text pandas reads as one: ``"2026-01-31 12:00"``, taken as UTC)."""
    keep = pd.Series(True, index=df.index)
    if run:
        keep &= df["run_id"].astype(object).fillna("").astype(str).str.startswith(run)
    if decision:
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}: one of {', '.join(DECISIONS)}")
        keep &= df["decision"].astype(object) == decision
    if since is not None:
        when = pd.Timestamp(since)
        when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
        keep &= df["ts"] >= when
    return df[keep]


def compact(df: pd.DataFrame) -> pd.DataFrame:
    """One row per record, the columns of :data:`COMPACT_COLUMNS`."""
    resolved = df["resolved"].astype(object)
    target = resolved.where(resolved.notna(), df["target"].astype(object))
    errno = df["errno"].astype(object).map(lambda n: "" if n is None or pd.isna(n) or n == 0 else errno_name(int(n)))
    out = pd.DataFrame({
        "time": df["ts"].dt.strftime("%H:%M:%S.%f").str[:-3],
        "run": df["run_id"].astype(object).map(short),
        "module": _text(df["module"]),
        "decision": _text(df["decision"]),
        "what": _text(df["category"]) + "/" + _text(df["action"]),
        "target": _text(target),
        "rule": _text(df["capability"]),
        "errno": errno,
        "reason": _text(df["reason"]),
    }, index=df.index)
    return out.reset_index(drop=True)


def _event(row: Any) -> Event:
    detail = json.loads(row.detail) if isinstance(row.detail, str) and row.detail else {}
    errno = None if pd.isna(row.errno) else int(row.errno)
    return Event(run_id=str(row.run_id), category=str(row.category), action=str(row.action),
                 decision=str(row.decision), target=None if pd.isna(row.target) else str(row.target),  # type: ignore[arg-type]
                 resolved=None if pd.isna(row.resolved) else str(row.resolved),
                 capability=None if pd.isna(row.capability) else str(row.capability),
                 reason=None if pd.isna(row.reason) else str(row.reason), errno=errno, detail=detail,
                 ts=row.ts.timestamp())


def _outcome(events: list[Event]) -> str:
    end = next((e for e in reversed(events) if e.category == "lifecycle" and e.action == "exit"), None)
    if end is None:
        return "no exit record (still running, or cut short)"
    fault = end.detail.get("fault")
    return classify(events, exit_code=end.detail.get("exit_code"),
                    fault_kind=str(fault) if fault else None,
                    audit_failed=any(e.action == "audit-failed" for e in events)).label


def _count(event: Event) -> int:
    repeated = event.detail.get("repeated", event.detail.get("dropped"))
    return repeated if isinstance(repeated, int) and repeated > 0 else 1


def runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run, in order of start: ``run``, ``started``, ``module``, ``source`` (name and
    short hash of the guest's own code), ``module_sha256`` (short), ``outcome``, ``records``, a
    count per decision, ``categories`` (violations per category) and ``top denied``."""
    rows = []
    ordered = df.sort_values(["ts", "seq"], kind="stable")
    for run_id, group in ordered.groupby(ordered["run_id"].astype(object), sort=False):
        events = [_event(row) for row in group.itertuples(index=False)]
        start = next((e for e in events if e.category == "lifecycle" and e.action == "start"), None)
        source = start.detail.get("source", {}) if start is not None else {}
        decisions = group["decision"].astype(object).value_counts()
        refused = [e for e in events if e.is_violation]  # repeats counted: an aggregate stands for many
        targets = Counter[str]()
        by_category = Counter[str]()
        for e in refused:
            by_category[e.category] += _count(e)
            if e.resolved or e.target:
                targets[str(e.resolved or e.target)] += _count(e)
        rows.append({
            "run": short(run_id),
            "started": group["ts"].min(),
            "module": str(group["module"].astype(object).iloc[0]),
            "source": f"{source.get('name', '')} {short(source.get('sha256'), 12)}".strip() if source else "",
            "module_sha256": short(group["module_sha256"].astype(object).iloc[0], 12),
            "outcome": _outcome(events),
            "records": len(group),
            **{d: int(decisions.get(d, 0)) for d in DECISIONS},
            "categories": ", ".join(f"{c} {n}" for c, n in by_category.most_common()),
            "top denied": ", ".join(f"{t} ×{n}" if n > 1 else t for t, n in targets.most_common(3)),
        })
    columns = ["run", "started", "module", "source", "module_sha256", "outcome", "records", *DECISIONS,
               "categories", "top denied"]
    return pd.DataFrame(rows, columns=columns)
