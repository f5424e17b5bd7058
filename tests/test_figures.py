"""Figures handed back through stdout (scientific runtime): the filter, the checks and the caps,
without the runtime (its end-to-end test is in test_scientific.py)."""

from __future__ import annotations

import base64
import zlib
from typing import Any

from workbench.languages import Program
from workbench.languages.guest_driver import FIGURE_MARKER, RESULT_MARKER
from workbench.languages.scipython import output_protocol, read_figures
from workbench.runtime.figures import MAX_FIGURE_BYTES, MAX_FIGURES, PNG_END, PNG_SIGNATURE, take_figures


def png(payload: bytes = b"pixels") -> bytes:
    """A tiny PNG-shaped blob: the signature, a body, the IEND chunk."""
    return PNG_SIGNATURE + zlib.compress(payload) + b"\0\0\0\0" + PNG_END


def line(data: bytes) -> bytes:
    return FIGURE_MARKER.encode() + base64.b64encode(data) + b"\n"


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, category: str, action: str, decision: str = "allow", **fields: Any) -> None:
        self.events.append({"category": category, "action": action, "decision": decision, **fields})


PROGRAM = Program(lang="python", name="p", sha256="0" * 64, wasm=lambda: b"", read_figures=read_figures)


def take(stdout: bytes) -> tuple[bytes, tuple[bytes, ...], list[dict[str, Any]]]:
    recorder = Recorder()
    rest, figures = take_figures(PROGRAM, stdout, recorder)  # type: ignore[arg-type]
    return rest, figures, recorder.events


def test_whole_pngs_come_back_and_the_lines_leave_stdout() -> None:
    first, second = png(b"a"), png(b"b" * 1000)
    rest, figures, events = take(b"before\n" + line(first) + b"middle" + line(second) + b"after\n")
    assert (rest, figures, events) == (b"before\nmiddleafter\n", (first, second), [])


def test_forged_cut_and_oversized_figures_are_dropped_and_recorded() -> None:
    cut = base64.b64encode(png())[:16]  # a valid base64 prefix of a real PNG, as the output cap leaves it
    stdout = (FIGURE_MARKER.encode() + b"not base64!\n" + line(b"GIF89a....") + line(b"\x89PNG\r\n\x1a\nshort")
              + line(PNG_SIGNATURE + bytes(MAX_FIGURE_BYTES) + PNG_END) + line(png()) + FIGURE_MARKER.encode() + cut)
    rest, figures, events = take(stdout)
    assert rest == b"" and figures == (png(),)
    assert [e["reason"] for e in events] == [
        "figure dropped: not base64 (a figure line the guest wrote itself, or one the output cap cut)",
        "figure dropped: not a PNG image",
        "figure dropped: a PNG cut short (no IEND chunk)",
        f"figure dropped: {MAX_FIGURE_BYTES + len(PNG_SIGNATURE) + len(PNG_END):,} bytes, over the {MAX_FIGURE_BYTES:,} a figure may have",
        "figure dropped: a PNG cut short (no IEND chunk)",
    ]
    assert all((e["category"], e["action"], e["decision"]) == ("output", "figure", "deny") for e in events)


def test_at_most_max_figures_and_the_rest_is_recorded() -> None:
    rest, figures, events = take(b"".join(line(png(bytes([i]))) for i in range(MAX_FIGURES + 5)))
    assert len(figures) == MAX_FIGURES and rest == b""
    assert [e["reason"] for e in events] == [f"figure dropped: more than {MAX_FIGURES} figures in one run"]


def test_the_live_filter_hides_figures_and_the_result_however_the_stream_is_cut() -> None:
    stream = b"out 1\n" + line(png()) + b"out 2" + RESULT_MARKER.encode() + b'{"v": 1}\n'
    whole = output_protocol()
    expected = whole.feed(stream) + whole.finish()
    assert expected == b"out 1\nout 2"
    for size in (1, 2, 3, 7):
        chunked = output_protocol()
        got = b"".join(chunked.feed(stream[i:i + size]) for i in range(0, len(stream), size)) + chunked.finish()
        assert got == expected, size


def test_languages_without_figures_are_untouched() -> None:
    plain = Program(lang="python", name="p", sha256="0" * 64, wasm=lambda: b"")
    stdout = line(png())
    assert take_figures(plain, stdout, Recorder()) == (stdout, ())  # type: ignore[arg-type]
