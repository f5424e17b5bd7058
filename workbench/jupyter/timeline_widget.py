"""The violation timeline as a widget: a time axis, one lane per category, grouped marks.

Stock ipywidgets have no chart, so this is an `anywidget <https://anywidget.dev>`_: a
Python class with synced traits and an ES module string, no JavaScript build step (the
anywidget front end ships inside its wheel, for JupyterLab, Notebook 7 and VS Code).

What it draws (one SVG, redrawn on every change of its traits):

- a time axis from 0 to ``elapsed``: the run's clock as the gauges show it, set in the
  same refresh as the time gauge, so the two never disagree;
- one lane per category (filesystem, memory, cpu, time, output, network, module, and
  ``run`` for stops and traps when there is one);
- each group of identical violations (:class:`~workbench.runtime.TimelineGroup`) as a band
  from its first to its last time with a tick per kept mark and ``×N``, coloured by
  decision (deny amber, kill red, learn mode's audit blue); groups sharing a lane take
  turns on three thin sub-rows, so they do not hide each other;
- hover shows a group's details (an SVG ``<title>``), click pins them under the chart;
- while the run goes on, the five largest groups are listed under it; when it ends, the
  result's summary (``summary``, the runtime's HTML without the gauges) is shown below the
  chart and lists them all, in a box of bounded height.  It arrives in the same message as
  the finished timeline, so the final view costs one message, not two.

Its height depends on the number of lanes only (at most eight), never on the number of
violations: 500 of them take the same room as five.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets

__all__ = ["TimelineWidget"]

_ESM = r"""
const COLOURS = { deny: "#ef6c00", kill: "#c62828", audit: "#1565c0" };
const LANE_H = 16, LEFT = 78, AXIS_H = 18, WIDTH = 620;
const SVG = "http://www.w3.org/2000/svg";

function node(tag, attrs, parent) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function fmt(s) {  // seconds for people, with their unit
  if (s <= 0) return "0 s";
  return s >= 10 ? `${s.toFixed(1)} s` : s >= 0.1 ? `${s.toFixed(2)} s` : `${(s * 1000).toFixed(0)} ms`;
}

function details(g) {
  const when = g.count > 1 ? `+${fmt(g.first)} … +${fmt(g.last)}` : `+${fmt(g.first)}`;
  return [g.label, when, g.rule ? `rule ${g.rule}` : "no rule granted it", g.errno ? `guest told ${g.errno}` : "",
          g.reason].filter(Boolean).join(" · ");
}

function render({ model, el }) {
  const box = document.createElement("div");  // the chart: its height never depends on the count
  box.className = "workbench-timeline";
  const summary = document.createElement("div");  // after the run: the result's summary (groups, mounts, ...)
  summary.className = "workbench-summary";
  el.append(box, summary);
  const head = document.createElement("div");
  head.className = "wb-head";
  const chart = document.createElement("div");
  chart.className = "wb-chart";
  const pinned = document.createElement("div");
  pinned.className = "wb-details";
  const list = document.createElement("div");
  list.className = "wb-list";
  box.append(head, chart, pinned, list);

  function draw() {
    summary.innerHTML = model.get("summary") || "";  // our own HTML (runtime.render), every value escaped
    const lanes = model.get("lanes") || [];
    const groups = model.get("groups") || [];
    const elapsed = Math.max(model.get("elapsed") || 0, 0.001);
    const status = model.get("status");
    const total = groups.reduce((n, g) => n + g.count, 0);
    head.textContent = `${model.get("module")} · ${status} · ${fmt(elapsed)} · ` +
      (total ? `${total} violation${total === 1 ? "" : "s"} in ${groups.length} group${groups.length === 1 ? "" : "s"}`
             : "no violations");
    const height = lanes.length * LANE_H + AXIS_H;
    const svg = node("svg", { width: WIDTH, height, viewBox: `0 0 ${WIDTH} ${height}`, class: "wb-svg" });
    const x = (s) => LEFT + Math.min(Math.max(s / elapsed, 0), 1) * (WIDTH - LEFT - 34);
    lanes.forEach((lane, i) => {
      const y = i * LANE_H;
      node("rect", { x: LEFT, y: y + 1, width: WIDTH - LEFT - 34, height: LANE_H - 2,
                     fill: i % 2 ? "#fafafa" : "#f3f3f3" }, svg);
      const label = node("text", { x: LEFT - 6, y: y + LANE_H - 4, "text-anchor": "end", class: "wb-lane" }, svg);
      label.textContent = lane;
    });
    const ticks = 4;
    for (let t = 0; t <= ticks; t++) {
      const s = (elapsed * t) / ticks;
      const label = node("text", { x: x(s), y: height - 4, "text-anchor": t === 0 ? "start" : t === ticks ? "end" : "middle",
                                   class: "wb-axis" }, svg);
      label.textContent = fmt(s);
    }
    const inLane = {};  // groups sharing a lane get their own thin band (three sub-rows, then again)
    for (const g of groups) {
      const row = lanes.indexOf(g.lane);
      if (row < 0) continue;
      const sub = (inLane[g.lane] = (inLane[g.lane] ?? -1) + 1) % 3;
      const y = row * LANE_H;
      const colour = COLOURS[g.decision] || "#c62828";
      const mark = node("g", { class: "wb-group", "data-count": g.count, "data-decision": g.decision }, svg);
      node("title", {}, mark).textContent = details(g);
      if (g.count > 1 && g.last > g.first) {
        node("rect", { x: x(g.first), y: y + 2 + sub * 4, width: Math.max(x(g.last) - x(g.first), 2), height: 4,
                       fill: colour, opacity: 0.45 }, mark);
      }
      for (const m of g.marks) {
        node("rect", { x: x(m) - 1, y: y + 2 + sub * 4, width: 2, height: 4, fill: colour }, mark);
      }
      if (g.count > 1) {
        const label = node("text", { x: Math.min(x(g.last) + 3, WIDTH - 32), y: y + LANE_H - 4, class: "wb-count",
                                     fill: colour }, mark);
        label.textContent = `×${g.count}`;
      }
      mark.addEventListener("click", () => { pinned.textContent = details(g); });
    }
    chart.replaceChildren(svg);
    list.replaceChildren();
    if (status !== "finished") {  // after the run, the summary below lists every group
      const top = [...groups].sort((a, b) => b.count - a.count).slice(0, 5);
      for (const g of top) {
        const row = document.createElement("div");
        row.className = "wb-row";
        row.style.color = COLOURS[g.decision] || "#c62828";
        row.textContent = details(g);
        list.appendChild(row);
      }
    }
  }
  model.on("change", draw);
  draw();
  return () => model.off("change", draw);
}
export default { render };
"""

_CSS = """
.workbench-timeline { font: 12px/1.3 var(--jp-ui-font-family, sans-serif); max-width: 640px; max-height: 260px;
  overflow: hidden; margin: 2px 0 4px 0; }
.workbench-timeline .wb-head { color: #555; margin-bottom: 2px; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.workbench-timeline .wb-svg { display: block; max-width: 100%; }
.workbench-timeline .wb-lane, .workbench-timeline .wb-axis { font-size: 10px; fill: #666; }
.workbench-timeline .wb-count { font-size: 10px; font-weight: bold; }
.workbench-timeline .wb-group { cursor: pointer; }
.workbench-timeline .wb-details { color: #333; min-height: 1.3em; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.workbench-timeline .wb-row { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
"""


class TimelineWidget(anywidget.AnyWidget):  # type: ignore[misc]
    """A run's violation timeline; every trait is plain JSON (see :meth:`values`)."""

    _esm = _ESM
    _css = _CSS
    module = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("running").tag(sync=True)
    elapsed = traitlets.Float(0.0).tag(sync=True)
    lanes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    groups = traitlets.List(traitlets.Dict()).tag(sync=True)
    summary = traitlets.Unicode("").tag(sync=True)

    @staticmethod
    def values(snap: Any, module: str) -> dict[str, Any]:
        """The traits for a :class:`~.live.Snapshot` (``elapsed`` is the snapshot's clock)."""
        return {
            "module": module,
            "status": "finished" if snap.finished else "running",
            "elapsed": round(snap.wall_seconds, 2),
            "lanes": list(snap.lanes),
            "groups": [g.to_dict() for g in snap.groups],
            "summary": snap.summary_html,
        }
