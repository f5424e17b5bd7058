"""The one rendering of a finished run: stable text and rich HTML.

``RunResult._repr_mimebundle_`` serves both (so a notebook, nbconvert and any other
frontend show the same thing), ``repr(result)`` and the CLI use the text, and the
notebook's final view embeds the HTML under its gauges and timeline.

- ``text/plain`` (:func:`result_text`) holds only what is the same on every run and
  every machine: the outcome (:mod:`.outcome`), the violations grouped as the timeline
  groups them (:mod:`.timeline`), deterministic usage (memory, fuel, output bytes), and
  mounts with host paths relative to the working folder, the module calls as a tree
  (caller, then callee: outcome; at most :data:`.call_record.SHOWN_CALLS`).  No times, run ids or
  addresses, so nbval can compare it.  ``verbose=True`` adds reasons and timings.
- ``text/html`` (:func:`result_html`): the outcome, usage bars against the limits (the
  same :mod:`.readings` as the live gauges), the violation groups with rule, target,
  errno by name and reason, in a box of bounded height, then fault, mounts, the module calls
  (the same tree as the text, as nested lists) and value.

A guest told ``EACCES`` prints it in its own language's numbering: WASI numbers EACCES 2,
so a Python guest shows ``[Errno 2] Permission denied``, which reads like "file not
found" (ENOENT is 2 on Linux).  The views say so where the refusal is shown.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from typing import Any, Protocol, Sequence

from ..events import Event
from ..policy import Limits
from .call_record import calls_html, calls_text
from .outcome import Outcome
from .readings import Reading, readings
from .sizes import human_size
from .timeline import Timeline, TimelineGroup

__all__ = ["result_text", "result_html", "result_limits", "mount_line", "group_line", "EACCES_NOTE",
           "usage_readings", "RunLike"]

#: most violation groups listed in the text form (the HTML scrolls)
TEXT_GROUPS = 20
EACCES_NOTE = ("the guest was told EACCES (permission denied); WASI numbers it 2, so a Python guest prints "
               "'[Errno 2] Permission denied': that is this refusal, not a missing file")
_LEVEL_COLOUR = {"ok": "#1976d2", "warning": "#ef6c00", "danger": "#c62828"}
_DECISION_COLOUR = {"deny": "#ef6c00", "kill": "#c62828", "audit": "#1565c0"}
_MARK = {"deny": "!", "kill": "!", "audit": "~"}


class RunLike(Protocol):
    """What rendering reads of a :class:`~workbench.RunResult` (kept structural, so this
    module never imports the result type it renders)."""

    @property
    def module(self) -> str: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def events(self) -> tuple[Event, ...]: ...
    @property
    def fault(self) -> Any: ...
    @property
    def usage(self) -> Any: ...
    @property
    def mounts(self) -> tuple[Any, ...]: ...
    @property
    def value(self) -> Any: ...
    @property
    def ok(self) -> bool: ...
    def classify(self) -> Outcome: ...


def result_limits(result: RunLike) -> Limits:
    """The limits a run had: its own (``result.limits``) or as its ``lifecycle start`` recorded them."""
    own = getattr(result, "limits", None)
    if isinstance(own, Limits):
        return own
    for event in result.events:
        if event.category == "lifecycle" and event.action == "start":
            raw = dict(event.detail.get("limits", {}))
            known = {k: v for k, v in raw.items() if k in Limits.__dataclass_fields__}
            try:
                return Limits(**known)
            except (TypeError, ValueError):
                break
    u = result.usage
    return Limits(memory_bytes=u.memory_limit_bytes, cpu_share=u.cpu_share_limit)


def usage_readings(result: RunLike, timeline: Timeline | None = None) -> list[Reading]:
    """The gauges' readings for a finished run (exact final numbers)."""
    timeline = timeline or Timeline.from_events(result.events)
    violated: Counter[str] = Counter()
    for group in timeline.groups():
        if group.decision in ("deny", "kill"):
            violated[group.category] += group.count
    u = result.usage
    return readings(result_limits(result), wall_seconds=u.wall_seconds, memory_bytes=u.memory_peak_bytes,
                    cpu_seconds=u.cpu_seconds, cpu_share=u.cpu_share, fuel_used=u.fuel_used, violated=violated)


def mount_line(mount: Any, *, relative_to: str | None = None) -> str:
    """``/docs → docs (read-only)``: host paths under ``relative_to`` (default: cwd) shown relative."""
    mode = "read-write" if mount.writable else "read-only"
    base = relative_to if relative_to is not None else os.getcwd()

    def shown(host: str) -> str:
        try:
            rel = os.path.relpath(host, base)
        except ValueError:
            rel = host
        return host if rel.startswith("..") else rel

    if getattr(mount, "file_mount", False):  # single files, each mapped on its own
        files = ", ".join(f"{guest} → {shown(host)}" for guest, host in mount.files)
        return f"{files} ({mode} file{'s' if len(mount.files) > 1 else ''})"
    where = "private scratch" if mount.scratch else shown(mount.host_path)
    return f"{mount.guest_path} → {where} ({mode})"


def group_line(group: TimelineGroup, *, verbose: bool = False) -> str:
    """``deny filesystem open /etc/passwd [rule] → EACCES ×3`` (stable: no times unless verbose)."""
    line = " ".join(p for p in (group.decision, f"{group.category} {group.action}", group.target or "") if p)
    if group.capability:
        line += f" [{group.capability}]"
    if group.errno_name:
        line += f" → {group.errno_name}"
    if group.count > 1:
        line += f" ×{group.count}"
    if verbose:
        line += f": {group.reason} (+{group.first:.3f} s" + (f" … +{group.last:.3f} s)" if group.count > 1 else ")")
    return line


def _told_eacces(groups: Sequence[TimelineGroup]) -> bool:
    return any(g.errno_name == "EACCES" for g in groups)


def result_text(result: RunLike, *, verbose: bool = False) -> str:
    """A readable summary; stable (no times, ids, addresses) unless ``verbose``."""
    outcome = result.classify()
    exit_code = "none" if result.exit_code is None else str(result.exit_code)
    lines = [f"RunResult {result.module}: {outcome.label} (exit code {exit_code})"]
    groups = Timeline.from_events(result.events).groups()
    for group in groups[:TEXT_GROUPS]:
        lines.append(f"  {_MARK.get(group.decision, '!')} {group_line(group, verbose=verbose)}")
    if len(groups) > TEXT_GROUPS:
        lines.append(f"  … {len(groups) - TEXT_GROUPS} more groups ({sum(g.count for g in groups[TEXT_GROUPS:])} events)")
    if _told_eacces(groups):
        lines.append(f"  note: {EACCES_NOTE}")
    if result.fault is not None:
        lines.append(f"  fault {result.fault.kind}: {result.fault.message}")
        lines.extend(f"    at {frame}" for frame in result.fault.backtrace[:5])
        lines.extend(f"    {'>' if n == result.fault.line else ' '} {n:4} | {text}" for n, text in result.fault.source)
        if result.fault.hint:
            lines.append(f"  hint: {result.fault.hint}")
    u = result.usage
    limit = f" of {human_size(u.memory_limit_bytes)}" if u.memory_limit_bytes else ""
    usage = [f"memory {human_size(u.memory_peak_bytes)}{limit}"]
    if u.fuel_used is not None:
        usage.append(f"fuel {u.fuel_used:,}")
    usage.append(f"output {human_size(u.output_bytes)}")
    if u.output_dropped_bytes:
        usage.append(f"{human_size(u.output_dropped_bytes)} cut")
    if verbose:
        usage += [f"wall {u.wall_seconds:.3f} s", f"CPU {u.cpu_seconds:.3f} s ({100 * u.cpu_share:.0f}%)"]
    lines.append("  usage: " + ", ".join(usage))
    for mount in result.mounts:
        lines.append(f"  mount {mount_line(mount)}")
    if outcome.learn_mode:
        lines.append("  learn mode: every access was allowed and recorded; run again under "
                     "result.suggested_policy() with on_violation='deny'")
    for failure in getattr(result, "subscriber_failures", ()):
        if not failure.critical:  # an audit log's failure is already the outcome
            lines.append(f"  subscriber failed: {failure}")
    calls = getattr(result, "calls", ())
    if calls:  # the module calls, as a tree below the caller (call_record.py)
        lines.append(f"  calls from {result.module}:")
        lines.extend(f"  {line}" for line in calls_text(calls))
    if result.value is not None:
        lines.append(f"  value: {result.value!r}")
    return "\n".join(lines)


def _bar(reading: Reading) -> str:
    colour = _LEVEL_COLOUR[reading.level]
    width = f"{100 * reading.fraction:.1f}%"
    return (
        f"<tr><td style='padding-right:8px'>{html.escape(reading.label)}</td>"
        "<td><div style='width:12em;height:0.8em;background:#e0e0e0;border-radius:2px'>"
        f"<div style='width:{width};height:100%;background:{colour};border-radius:2px'></div></div></td>"
        f"<td style='padding-left:8px'>{html.escape(reading.text)}</td></tr>"
    )


def groups_html(groups: Sequence[TimelineGroup]) -> str:
    """The violation groups as a table in a box of bounded height (it scrolls past ~12 rows)."""
    if not groups:
        return ""
    rows = []
    for g in groups:
        colour = _DECISION_COLOUR.get(g.decision, "#c62828")
        when = f"+{g.first:.3f} s" + (f" … +{g.last:.3f} s" if g.count > 1 else "")
        errno = f"<abbr title='{html.escape(EACCES_NOTE)}'>EACCES</abbr>" if g.errno_name == "EACCES" \
            else html.escape(g.errno_name or "")
        rows.append(
            f"<tr style='background:{'#fdecea' if g.decision != 'audit' else '#e8f0fe'}'>"
            f"<td style='white-space:nowrap'>{when}</td>"
            f"<td><b style='color:{colour}'>{html.escape(g.decision)}</b></td>"
            f"<td style='white-space:nowrap'>{html.escape(g.category)} {html.escape(g.action)}</td>"
            f"<td>{html.escape(g.target or '')}</td><td style='white-space:nowrap'>"
            f"{'×' + str(g.count) if g.count > 1 else ''}</td>"
            f"<td><code>{html.escape(g.capability or '')}</code></td><td>{errno}</td>"
            f"<td>{html.escape(g.reason)}</td></tr>"
        )
    note = f"<div style='color:#555;font-size:90%'>{html.escape(EACCES_NOTE)}</div>" if _told_eacces(groups) else ""
    total = sum(g.count for g in groups)
    return (
        f"<div style='color:#555'>{total} violation{'s' if total != 1 else ''} in {len(groups)} "
        f"group{'s' if len(groups) != 1 else ''}</div>"
        "<div class='workbench-groups' style='max-height:16em;overflow:auto'>"
        "<table class='workbench-violations' style='border-collapse:collapse;margin:2px 0'>"
        "<tr><th>when</th><th>decision</th><th>what</th><th>target</th><th>count</th><th>rule</th>"
        f"<th>errno</th><th>reason</th></tr>{''.join(rows)}</table></div>{note}"
        "<style>.workbench-violations td, .workbench-violations th {text-align:left; padding:1px 8px 1px 0}</style>"
    )


def result_html(result: RunLike, *, usage: bool = True, groups: bool = True) -> str:
    """The after-run summary as HTML.  The notebook's final view, which shows gauges and the
    timeline as widgets above it, asks for it without them (``usage=False``)."""
    outcome = result.classify()
    ok_colour = "#2e7d32" if result.ok else "#c62828"
    exit_code = "none" if result.exit_code is None else str(result.exit_code)
    timeline = Timeline.from_events(result.events)
    parts = [
        "<div class='workbench-result' style='font-size:95%'>",
        f"<div><b>{html.escape(result.module)}</b>: "
        f"<b style='color:{ok_colour}'>{html.escape(outcome.label)}</b> · exit code {exit_code} · "
        f"CPU {result.usage.cpu_seconds:.3f} s in {result.usage.wall_seconds:.3f} s</div>",
    ]
    if usage:
        parts.append("<table style='margin:4px 0'>" + "".join(_bar(r) for r in usage_readings(result, timeline))
                     + "</table>")
    if groups:
        parts.append(groups_html(timeline.groups()))
    if result.fault is not None:
        trace = "".join(f"<br>&nbsp;&nbsp;at {html.escape(f)}" for f in result.fault.backtrace[:10])
        parts.append(
            f"<div style='color:#c62828'>fault <b>{html.escape(result.fault.kind)}</b>: "
            f"{html.escape(result.fault.message)}{trace}</div>"
        )
        if result.fault.hint:
            parts.append(f"<div>hint: {html.escape(result.fault.hint)}</div>")
        if result.fault.source:  # the guest's own lines around the failing one
            rows = "".join(f"<span style='background:#fde0dc'>{html.escape(f'> {n:4} | {t}')}</span>\n"
                           if n == result.fault.line else html.escape(f"  {n:4} | {t}") + "\n"
                           for n, t in result.fault.source)
            parts.append(f"<pre style='margin:2px 0'>{rows}</pre>")
    u = result.usage
    if u.output_dropped_bytes:
        parts.append(f"<div>output: {human_size(u.output_dropped_bytes)} cut at the cap</div>")
    if result.mounts:
        items = "".join(f"<li><code>{html.escape(mount_line(m))}</code></li>" for m in result.mounts)
        parts.append(f"<div>mounts:<ul style='margin:0'>{items}</ul></div>")
    else:
        parts.append("<div style='color:#555'>no folders mounted</div>")
    calls = getattr(result, "calls", ())
    if calls:  # the same tree as the text (call_record.py)
        parts.append(f"<div>calls from <b>{html.escape(result.module)}</b>:{calls_html(calls)}</div>")
    if outcome.learn_mode:
        parts.append("<div style='color:#1565c0'><b>learn mode</b>: every access was allowed and recorded, none "
                     "enforced; run again under <code>result.suggested_policy()</code> with "
                     "<code>on_violation='deny'</code></div>")
    if result.value is not None:
        parts.append(f"<div>value: <code>{html.escape(repr(result.value))}</code></div>")
    parts.append("</div>")
    return "".join(parts)
