"""A finished profile: the Firefox Profiler file, the top functions, a flame graph."""

from __future__ import annotations

import json
import os
import zlib
from collections import defaultdict
from typing import Any

__all__ = ["Profile"]


class Profile:
    """What :class:`~.profiler.Profiler` recorded.  ``data`` is the Firefox Profiler JSON
    (open it at https://profiler.firefox.com); :attr:`top` and :meth:`flame_graph` read its samples."""

    def __init__(self, data: bytes, module_name: str, samples: int, names: dict[int, str] | None = None) -> None:
        self.data = data
        self._names = names or {}  # function index -> name, for frames wasmtime could only number
        self.module_name = module_name
        self.sample_count = samples
        self.json: dict[str, Any] = json.loads(data)
        self.stacks = self._stacks()  # one per sample: (outermost, ..., innermost) function names, with weights

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the Firefox Profiler file; returns its path."""
        with open(path, "wb") as out:
            out.write(self.data)
        return os.fspath(path)

    def _stacks(self) -> list[tuple[tuple[str, ...], float]]:
        out: list[tuple[tuple[str, ...], float]] = []
        strings = self.json.get("shared", {}).get("stringArray") or []
        for thread in self.json.get("threads", []):
            thread_strings = thread.get("stringArray") or strings
            samples, stack_table = thread["samples"], thread["stackTable"]
            frames, funcs = thread["frameTable"], thread["funcTable"]
            weights = samples.get("weight") or [1] * samples.get("length", len(samples["stack"]))
            memo: dict[int, tuple[str, ...]] = {}

            def walk(index: int | None) -> tuple[str, ...]:
                names: list[str] = []
                start = index
                while index is not None:
                    if index in memo:
                        names.extend(reversed(memo[index]))
                        break
                    func = frames["func"][stack_table["frame"][index]]
                    names.append(self._named(str(thread_strings[funcs["name"][func]])))
                    index = stack_table["prefix"][index]
                path = tuple(reversed(names))
                if start is not None:
                    memo[start] = path
                return path

            for stack, weight in zip(samples["stack"], weights):
                path = walk(stack)
                if path:
                    out.append((path, float(weight or 1)))
        return out

    def _named(self, name: str) -> str:
        if name.startswith("<wasm function ") and name.endswith(">"):
            number = name[len("<wasm function "):-1]
            if number.isdigit():
                return self._names.get(int(number), name)
        return name

    @property
    def top(self) -> Any:
        """Functions by self time: ``function, self_samples, total_samples, self_pct, total_pct``."""
        import pandas as pd

        own: dict[str, float] = defaultdict(float)
        total: dict[str, float] = defaultdict(float)
        weight_sum = sum(w for _, w in self.stacks) or 1.0
        for path, weight in self.stacks:
            own[path[-1]] += weight
            for name in set(path):
                total[name] += weight
        rows = [(name, own[name], total[name], 100 * own[name] / weight_sum, 100 * total[name] / weight_sum)
                for name in total]
        frame = pd.DataFrame(rows, columns=["function", "self_samples", "total_samples", "self_pct", "total_pct"])
        frame = frame.astype({"function": "string", "self_samples": "float64", "total_samples": "float64",
                              "self_pct": "float64", "total_pct": "float64"})
        return frame.sort_values(["self_samples", "total_samples", "function"], ascending=[False, False, True],
                                 ignore_index=True)

    def flame_graph(self, *, max_depth: int = 40, ax: Any = None) -> Any:
        """A flame graph (matplotlib): each bar a function, as wide as its share of the samples, on its callers."""
        import matplotlib.pyplot as plt

        tree: dict[tuple[str, ...], float] = defaultdict(float)
        for path, weight in self.stacks:
            for depth in range(1, min(len(path), max_depth) + 1):
                tree[path[:depth]] += weight
        width = sum(w for _, w in self.stacks) or 1.0
        if ax is None:
            depth = max((len(p) for p in tree), default=1)
            figure, ax = plt.subplots(figsize=(10, 0.35 * depth + 1))
        else:
            figure = ax.figure
        starts: dict[tuple[str, ...], float] = {(): 0.0}
        for path in sorted(tree, key=lambda p: (len(p), p)):
            parent = path[:-1]
            x = starts.get(parent + ("\0next",), starts.get(parent, 0.0))
            starts[parent + ("\0next",)] = x + tree[path]
            starts[path] = x
            share = tree[path] / width
            ax.barh(len(path) - 1, share, left=x / width, height=0.9, color=plt.cm.autumn(zlib.crc32(path[-1].encode()) % 256 / 255),
                    edgecolor="white")
            if share > 0.04:
                ax.text(x / width + 0.005, len(path) - 1, path[-1][:int(share * 120)], va="center", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_yticks([])
        ax.set_xlabel("share of samples")
        ax.set_title(f"{self.module_name}: {self.sample_count} samples")
        plt.close(figure)
        return figure

    def _repr_html_(self) -> str:
        head = self.top.head(10)
        table: str = head.to_html(index=False, float_format=lambda v: f"{v:.1f}")
        return f"<div><b>profile of {self.module_name}</b>: {self.sample_count} samples</div>" + table

    def __repr__(self) -> str:
        first = self.top.head(1)
        hot = "" if first.empty else f", hottest {first['function'][0]} ({first['self_pct'][0]:.0f}% self)"
        return f"Profile({self.module_name}, {self.sample_count} samples{hot})"
