"""Questions one asks of an audit frame after the fact: what ran, what was refused, who called whom.

Every function takes a frame from :func:`workbench.audit.frame` (or
``AuditLog.frame()``) and returns a new DataFrame (or, for :func:`timeline`, a
matplotlib ``Axes``).  matplotlib is imported inside :func:`timeline` only, so
the audit core stays usable without a plotting stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from .frames import DECISIONS

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["run_summary", "denied_targets", "call_chain", "timeline", "DECISION_COLOURS"]

#: colour of each decision in :func:`timeline` (allow green, deny orange, kill red, audit grey)
DECISION_COLOURS = {"allow": "#2ca02c", "deny": "#ff7f0e", "kill": "#d62728", "audit": "#7f7f7f"}

_VIOLATIONS = ("deny", "kill")


def _decision_names(df: pd.DataFrame) -> list[str]:
    seen = [str(d) for d in pd.unique(df["decision"].dropna())]
    return [*DECISIONS, *sorted(d for d in seen if d not in DECISIONS)]


def run_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ``run_id`` (index), in order of start.

    Columns: ``module`` (the module of the run's first record: the one that was
    run), ``start``, ``end`` (first and last ``ts``), ``records``, one count per
    decision (``allow``, ``deny``, ``kill``, ``audit``, always present) and
    ``violations`` (deny + kill).
    """
    decisions = _decision_names(df)
    if df.empty:
        empty = pd.DataFrame(
            {"module": pd.Series(dtype=object), "start": pd.Series(dtype="datetime64[ns, UTC]"),
             "end": pd.Series(dtype="datetime64[ns, UTC]"), "records": pd.Series(dtype="int64"),
             **{d: pd.Series(dtype="int64") for d in decisions}, "violations": pd.Series(dtype="int64")})
        empty.index.name = "run_id"
        return empty
    ordered = df.sort_values(["ts", "seq"], kind="stable")
    run_id = ordered["run_id"].astype(object)
    grouped = ordered.groupby(run_id, sort=False)
    out = pd.DataFrame({
        "module": grouped["module"].first().astype(object),
        "start": grouped["ts"].min(),
        "end": grouped["ts"].max(),
        "records": grouped.size().astype("int64"),
    })
    counts = pd.crosstab(run_id, ordered["decision"].astype(object))
    counts = counts.reindex(index=out.index, columns=decisions, fill_value=0).astype("int64")
    out = out.join(counts)
    out["violations"] = out[list(_VIOLATIONS)].sum(axis=1).astype("int64")
    out.index.name = "run_id"
    return out.sort_values("start", kind="stable")


def denied_targets(df: pd.DataFrame) -> pd.DataFrame:
    """What was refused, most often first: columns ``target``, ``category``, ``count``.

    ``target`` is the guest path a request led to (the record's ``resolved``: ``/etc/passwd``)
    where the sandbox resolved one, else the target as requested (a host, a module): the
    same file asked for as ``../secret`` and ``/secret`` counts once.  Counts records whose
    decision is ``deny`` or ``kill``; ties are broken by target then category so the order
    is stable.  A refusal without a target (a limit hit) has target ``<NA>``.
    """
    refused = df[df["decision"].astype(object).isin(_VIOLATIONS)]
    requested = refused["target"].astype(object)
    if "resolved" in refused:
        resolved = refused["resolved"].astype(object)
        requested = resolved.where(resolved.notna(), requested)
    table = pd.DataFrame({
        "target": requested,
        "category": refused["category"].astype(object),
    })
    counts = table.groupby(["target", "category"], dropna=False, sort=False).size()
    out = counts.rename("count").reset_index()
    out["count"] = out["count"].astype("int64")
    out = out.sort_values(["count", "target", "category"], ascending=[False, True, True],
                          kind="stable", na_position="last")
    return out.reset_index(drop=True)


def _chain(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    return [str(v) for v in value]


def call_chain(df: pd.DataFrame) -> pd.DataFrame:
    """The module call graph: one row per ``caller → callee`` edge, in order of first call.

    Read from ``category == "module"``, ``action == "call"`` records.  The
    convention (design.md §4): ``module`` is the module making the call,
    ``target`` the module (or ``module.export``) it calls, and ``caller_chain``
    the modules above ``module`` (outermost first).  When a runtime records the
    call on the callee's side instead (``module`` equal to ``target``), the caller
    is the last entry of ``caller_chain``.

    Columns: ``caller``, ``callee``, ``path`` (the whole chain,
    ``"main → parser → fmt"``), ``calls``, ``denied`` (deny/kill), ``first``
    (``ts`` of the first call).
    """
    calls = df[(df["category"].astype(object) == "module") & (df["action"].astype(object) == "call")]
    calls = calls.sort_values(["ts", "seq"], kind="stable")
    rows: list[dict[str, Any]] = []
    for module, target, chain, decision, ts in zip(
        calls["module"].astype(object), calls["target"].astype(object), calls["caller_chain"],
        calls["decision"].astype(object), calls["ts"], strict=True,
    ):
        above = _chain(chain)
        callee = target if isinstance(target, str) and target else module
        if module and module != callee:
            caller, path = module, [*above, module, callee]
        else:
            caller, path = (above[-1] if above else None), [*above, callee]
        rows.append({"caller": caller, "callee": callee, "path": " → ".join(str(p) for p in path),
                     "denied": decision in _VIOLATIONS, "ts": ts})
    columns = ["caller", "callee", "path", "calls", "denied", "first"]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c in ("calls", "denied") else object)
                             for c in columns}).astype({"first": "datetime64[ns, UTC]"})
    edges = pd.DataFrame(rows)
    grouped = edges.groupby(["caller", "callee"], dropna=False, sort=False)
    out = pd.DataFrame({
        "path": grouped["path"].first(),
        "calls": grouped.size().astype("int64"),
        "denied": grouped["denied"].sum().astype("int64"),
        "first": grouped["ts"].min(),
    }).reset_index()
    return out[columns].sort_values("first", kind="stable").reset_index(drop=True)


def timeline(df: pd.DataFrame, ax: "Axes | None" = None) -> "Axes":
    """A dot per record: time on x, category on y, decision as colour.  Returns the Axes.

    - ``ax``: draw into this Axes; None makes a new figure (with pyplot, so it
      shows in a notebook)
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(10, 3.5))
    category = df["category"].astype(object)
    if isinstance(df["category"].dtype, pd.CategoricalDtype):
        present = set(category.dropna())
        names = [str(c) for c in df["category"].cat.categories if c in present]
    else:
        names = sorted(str(c) for c in category.dropna().unique())
    rows = {name: i for i, name in enumerate(names)}
    times = df["ts"].dt.tz_convert("UTC").dt.tz_localize(None) if len(df) else df["ts"]
    decision = df["decision"].astype(object)
    for name in _decision_names(df):
        mask = (decision == name).to_numpy()
        if not mask.any():
            continue
        ax.scatter(times[mask].to_numpy(), category[mask].map(rows).to_numpy(), s=18,
                   color=DECISION_COLOURS.get(name, "#1f77b4"), label=name, zorder=3)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.5, len(names) - 0.5)
    ax.set_xlabel("time (UTC)")
    ax.grid(axis="x", alpha=0.3)
    if len(df):
        ax.legend(title="decision", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title("audit timeline")
    return ax
