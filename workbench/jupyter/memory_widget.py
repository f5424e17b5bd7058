"""A notebook browser over a :class:`~workbench.runtime.memory_snapshot.MemorySnapshot`:
an address box, a hex view, a search, and the globals and data segments beside them.

Stock ipywidgets are enough (a text box, buttons, an HTML pane), so no custom front end is needed.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ..errors import MemoryAccessError

__all__ = ["MemoryBrowser", "parse_address"]

#: bytes shown at once
PAGE = 256


def parse_address(text: str) -> int:
    """``0x1000``, ``4096`` or ``1_000`` as an address; a bad one raises MemoryAccessError."""
    try:
        return int(text.strip().replace("_", ""), 0)
    except ValueError:
        raise MemoryAccessError(f"not an address: {text!r}", hint="write it in hex (0x1000) or decimal (4096)") from None


class MemoryBrowser:
    """The widget and its state (the address shown, the last search's hits)."""

    def __init__(self, snapshot: Any) -> None:
        self.snapshot = snapshot
        self.address = widgets.Text(value="0x0", description="address", continuous_update=False,
                                    layout=widgets.Layout(width="220px"))
        self.search = widgets.Text(placeholder="text or hex bytes (hex:6869)", description="find",
                                   continuous_update=False, layout=widgets.Layout(width="320px"))
        self.previous = widgets.Button(description="◀", layout=widgets.Layout(width="40px"))
        self.next = widgets.Button(description="▶", layout=widgets.Layout(width="40px"))
        self.hits = widgets.Dropdown(options=[], description="hits", layout=widgets.Layout(width="260px"))
        self.view = widgets.HTML()
        self.status = widgets.HTML()
        facts = [f"{self.snapshot.size:,} bytes"]
        facts += [f"{name} = {value:#x}" if isinstance(value, int) else f"{name} = {value}"
                  for name, value in self.snapshot.globals.items()]
        facts += [f"data {s.offset:#x}..{s.end:#x}" for s in self.snapshot.data_segments[:8]]
        self.facts = widgets.HTML("<small>" + html.escape(" · ".join(facts)) + "</small>")
        self.current = 0
        self.address.observe(self._address_changed, names="value")
        self.search.observe(self._search_changed, names="value")
        self.previous.on_click(lambda _: self.move(-PAGE))
        self.next.on_click(lambda _: self.move(PAGE))
        self.hits.observe(self._hit_chosen, names="value")
        self.widget = widgets.VBox([
            widgets.HBox([self.address, self.previous, self.next, self.search, self.hits]),
            self.facts, self.view, self.status,
        ])
        self.show("0x0")

    def _address_changed(self, change: dict[str, Any]) -> None:
        if change["new"] != hex(self.current):
            self.show(change["new"])

    def _search_changed(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.find(change["new"])

    def _hit_chosen(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            self.show(hex(change["new"]))

    def show(self, text: str) -> None:
        try:
            address = parse_address(text)
            self.snapshot.read(address, 1 if self.snapshot.size else 0)  # the address itself must be inside
            length = max(0, min(PAGE, self.snapshot.size - address)) if address >= 0 else PAGE
            dump = self.snapshot.hexdump(address, length)
        except MemoryAccessError as exc:
            self.status.value = f"<span style='color:#c62828'>{html.escape(exc.message)}</span>"
            return
        self.current = address
        self.address.value = hex(address)
        self.view.value = f"<pre style='margin:0'>{html.escape(dump)}</pre>"
        self.status.value = ""

    def move(self, delta: int) -> None:
        self.show(hex(max(0, min(self.current + delta, max(self.snapshot.size - 1, 0)))))

    def find(self, text: str) -> list[int]:
        pattern: bytes | str = text
        try:
            if text.startswith("hex:"):
                pattern = bytes.fromhex(text[4:])
            found = self.snapshot.find(pattern, limit=1000)
        except (ValueError, MemoryAccessError) as exc:
            self.status.value = f"<span style='color:#c62828'>{html.escape(str(exc))}</span>"
            return []
        self.hits.options = [(hex(a), a) for a in found]
        self.status.value = f"{len(found)} hit{'s' if len(found) != 1 else ''}" + (" (first 1000)" if len(found) == 1000 else "")
        if found:
            self.show(hex(found[0]))
        return found
