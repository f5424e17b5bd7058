"""How a :class:`~workbench.RunResult` looks in a notebook: stable text, rich HTML.

- ``text/plain`` (:func:`result_text`) holds only what is the same on every run
  and every machine: outcome, exit code, each violation as decision, kind,
  action, target and rule, deterministic usage (memory, fuel, output bytes),
  and mounts as guest paths with host paths relative to the working folder.
  No times, run ids or addresses, so nbval can compare it and nbconvert to
  text reads well.  ``verbose=True`` adds the reasons and timings, for
  terminal IPython where nothing compares outputs.
- ``text/html`` (:func:`result_html`) is the summary after a run: outcome,
  usage bars against the limits (the same :mod:`.gauges` levels as the live
  view), violations highlighted with rule, target and reason, mounts, fault.

The extension registers both as IPython formatters for ``RunResult``, so the
core's own ``repr`` stays what it is outside notebooks.
"""

from __future__ import annotations

import html
import os
from typing import Any

from ..policy import Limits
from ..runtime.result import RunResult, human_size
from .gauges import Reading, readings
from .live import Snapshot, TimelineEntry

__all__ = ["result_text", "result_html", "final_snapshot", "result_limits", "mount_line"]

_LEVEL_COLOUR = {"ok": "#1976d2", "warning": "#ef6c00", "danger": "#c62828"}


def result_limits(result: RunResult) -> Limits:
    """The limits a run had, as its ``lifecycle start`` event recorded them."""
    for event in result.events:
        if event.category == "lifecycle" and event.action == "start":
            raw = dict(event.detail.get("limits", {}))
            known = {k: v for k, v in raw.items() if k in Limits.__dataclass_fields__}
            try:
                return Limits(**known)
            except Exception:
                break
    return Limits(memory_bytes=result.usage.memory_limit_bytes, cpu_share=result.usage.cpu_share_limit)


def _timeline(result: RunResult) -> tuple[TimelineEntry, ...]:
    start = next((e.ts for e in result.events if e.category == "lifecycle" and e.action == "start"), None)
    entries = []
    for v in result.violations:
        event = v.event
        ts = event.ts if event is not None else 0.0
        entries.append(
            TimelineEntry(
                seconds=max(ts - (start if start is not None else ts), 0.0),
                decision=v.decision,
                kind=v.kind,
                action=event.action if event is not None else "",
                target=v.where,
                capability=v.capability,
                message=v.message,
            )
        )
    return tuple(entries)


def final_snapshot(result: RunResult) -> Snapshot:
    """The run's exact final numbers, in the shape the gauges read."""
    u = result.usage
    return Snapshot(
        wall_seconds=u.wall_seconds,
        memory_bytes=u.memory_peak_bytes,
        cpu_seconds=u.cpu_seconds,
        cpu_share=u.cpu_share,
        fuel_used=u.fuel_used,
        violations=_timeline(result),
        sampled=True,
        finished=True,
    )


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


def _violation_text(v: Any, verbose: bool) -> str:
    action = v.event.action if v.event is not None else ""
    parts = [v.decision, f"{v.kind} {action}".strip()]
    if v.where:
        parts.append(v.where)
    line = " ".join(parts)
    if v.capability:
        line += f" [{v.capability}]"
    if verbose:
        line += f": {v.message}"
    return line


def result_text(result: RunResult, *, verbose: bool = False) -> str:
    """A readable summary; stable (no times, ids, addresses) unless ``verbose``."""
    exit_code = "none" if result.exit_code is None else str(result.exit_code)
    lines = [f"RunResult {result.module}: {result.outcome} (exit code {exit_code})"]
    for v in result.violations:
        lines.append(f"  ! {_violation_text(v, verbose)}")
    if result.fault is not None:
        lines.append(f"  fault {result.fault.kind}: {result.fault.message}")
        lines.extend(f"    at {frame}" for frame in result.fault.backtrace[:5])
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


def result_html(result: RunResult) -> str:
    """The after-run summary as HTML."""
    ok_colour = "#2e7d32" if result.ok else "#c62828"
    exit_code = "none" if result.exit_code is None else str(result.exit_code)
    snap = final_snapshot(result)
    parts = [
        "<div class='workbench-result' style='font-size:95%'>",
        f"<div><b>{html.escape(result.module)}</b>: "
        f"<b style='color:{ok_colour}'>{html.escape(result.outcome)}</b> · exit code {exit_code} · "
        f"CPU {result.usage.cpu_seconds:.3f} s in {result.usage.wall_seconds:.3f} s</div>",
        "<table style='margin:4px 0'>" + "".join(_bar(r) for r in readings(snap, result_limits(result))) + "</table>",
    ]
    if snap.violations:
        rows = "".join(
            "<tr style='background:#fdecea'>"
            f"<td>+{e.seconds:.3f} s</td><td><b>{html.escape(e.decision)}</b></td>"
            f"<td>{html.escape(e.kind)} {html.escape(e.action)}</td><td>{html.escape(e.target or '')}</td>"
            f"<td><code>{html.escape(e.capability or '')}</code></td><td>{html.escape(e.message)}</td></tr>"
            for e in snap.violations
        )
        parts.append(
            "<table class='workbench-violations' style='border-collapse:collapse;margin:4px 0'>"
            "<tr><th>when</th><th>decision</th><th>what</th><th>target</th><th>rule</th><th>reason</th></tr>"
            f"{rows}</table>"
            "<style>.workbench-violations td, .workbench-violations th {text-align:left; padding:1px 8px 1px 0}</style>"
        )
    if result.fault is not None:
        trace = "".join(f"<br>&nbsp;&nbsp;at {html.escape(f)}" for f in result.fault.backtrace[:10])
        parts.append(
            f"<div style='color:#c62828'>fault <b>{html.escape(result.fault.kind)}</b>: "
            f"{html.escape(result.fault.message)}{trace}</div>"
        )
    u = result.usage
    if u.output_dropped_bytes:
        parts.append(f"<div>output: {human_size(u.output_dropped_bytes)} cut at the cap</div>")
    if result.mounts:
        items = "".join(f"<li><code>{html.escape(mount_line(m))}</code></li>" for m in result.mounts)
        parts.append(f"<div>mounts:<ul style='margin:0'>{items}</ul></div>")
    else:
        parts.append("<div style='color:#555'>no folders mounted</div>")
    if result.value is not None:
        parts.append(f"<div>value: <code>{html.escape(repr(result.value))}</code></div>")
    parts.append("</div>")
    return "".join(parts)
