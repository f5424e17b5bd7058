"""A run after the fact: memory and CPU over time, with its limits and a violation timeline.

The live gauges show *now*; this shows the whole run from ``result.samples``
(10 readings a second from the monitor) and ``result.violations``, so a spike
or the moment a limit hit can be seen after the cell finished.  matplotlib is
imported only here, when a plot is asked for.
"""

from __future__ import annotations

from typing import Any

from ..runtime import RunResult, Timeline, result_limits

__all__ = ["plot_run"]

_DECISION_COLOUR = {"kill": "#c62828", "deny": "#ef6c00", "audit": "#1565c0"}


def plot_run(result: RunResult, *, figsize: tuple[float, float] = (8.0, 4.0)) -> Any:
    """A matplotlib Figure: memory (top) and CPU share (middle) over time, violations (bottom).

    Limits are drawn as dashed lines; each violation is a marker at the moment
    it happened, labelled with its rule.  The figure is closed in pyplot's
    registry, so it shows once: as the cell's value, or with ``display(fig)``.
    """
    import matplotlib.pyplot as plt

    limits = result_limits(result)
    samples = list(result.samples)
    times = [s.wall_seconds for s in samples]
    memory = [s.memory_bytes / 1e6 for s in samples]
    shares = [0.0]
    for before, after in zip(samples, samples[1:]):
        span = after.wall_seconds - before.wall_seconds
        shares.append(100 * (after.cpu_seconds - before.cpu_seconds) / span if span > 0 else 0.0)
    shares = shares[: len(samples)]

    fig, (ax_mem, ax_cpu, ax_events) = plt.subplots(
        3, 1, sharex=True, figsize=figsize, gridspec_kw={"height_ratios": [3, 3, 1.4]}
    )
    ax_mem.plot(times, memory, color="#1976d2", drawstyle="steps-post")
    if limits.memory_bytes:
        ax_mem.axhline(limits.memory_bytes / 1e6, color="#c62828", linestyle="--", linewidth=1, label="limit")
        ax_mem.legend(loc="upper left", fontsize="small")
    ax_mem.set_ylabel("memory (MB)")
    ax_cpu.plot(times, shares, color="#2e7d32")
    if limits.cpu_share:
        ax_cpu.axhline(100 * limits.cpu_share, color="#c62828", linestyle="--", linewidth=1)
    ax_cpu.set_ylabel("CPU (%)")
    ax_cpu.set_ylim(bottom=0)

    end = result.usage.wall_seconds
    if limits.wall_seconds and limits.wall_seconds <= 2 * max(end, 1e-3):
        for ax in (ax_mem, ax_cpu, ax_events):
            ax.axvline(limits.wall_seconds, color="#c62828", linestyle=":", linewidth=1)
    for group in Timeline.from_events(result.events).groups():  # the same groups as every view
        colour = _DECISION_COLOUR.get(group.decision, "#555555")
        ax_events.plot(group.marks or [group.first], [0] * max(len(group.marks), 1), marker="v", color=colour,
                       markersize=9, linestyle="none")
        count = f" ×{group.count}" if group.count > 1 else ""
        ax_events.annotate(
            (group.capability or f"{group.category} {group.action}") + count,
            (group.first, 0),
            xytext=(4, 6),
            textcoords="offset points",
            fontsize="small",
            color=colour,
        )
    ax_events.set_yticks([])
    ax_events.set_ylabel("violations", rotation=0, ha="right", va="center")
    ax_events.set_xlabel("seconds since start")
    ax_events.set_xlim(0, max(end, times[-1] if times else 0.0, 1e-3) * 1.05)
    fig.suptitle(f"{result.module}: {result.outcome}", fontsize="medium")
    fig.tight_layout()
    plt.close(fig)
    return fig
