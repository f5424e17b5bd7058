"""A language's protocol lines stay inside its Program: no view or stream ever shows them.

The Python driver hands ``result`` back as a marked line of stdout.  It used to be
filtered in the notebook only, so ``workbench run r.py`` printed it (issue 10, point 9).
Now the run filters every stream a view sees, with one filter: these tests check it
against an independent oracle (a regular expression over the whole stream), for every
way the stream can be cut into chunks, and then each view.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.languages import known_languages
from workbench.languages import python as pyadapter
from workbench.languages.protocol import LineProtocol, filtered_output
from workbench.runtime import Sandbox

MARKER = pyadapter.RESULT_MARKER.encode()
#: the oracle: a protocol line runs from a marker to the next newline (included) or the end
PROTOCOL_LINE = re.compile(re.escape(MARKER) + rb"[^\n]*(?:\n|\Z)")

needs_python = pytest.mark.skipif("python" not in known_languages(), reason="no Python guest")

pieces = st.sampled_from([b"a", b"text", b"\n", b"\x1e", b"\x1e\x1e", b"\x1e\x1ework", MARKER, MARKER + b'{"a": 1}\n',
                          MARKER[:5], MARKER[5:], b'{"b": [2]}', b"\xff\xfe", b"workbench-result:", b"\r\n"])


def oracle(stream: bytes) -> tuple[bytes, bytes | None]:
    lines = list(PROTOCOL_LINE.finditer(stream))
    if not lines:
        return stream, None
    last = lines[-1].group(0).rstrip(b"\n")
    return PROTOCOL_LINE.sub(b"", stream), last[last.rfind(MARKER) + len(MARKER):]


def chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(stream)) for c in cuts})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]


@settings(max_examples=500, deadline=None)
@given(st.lists(pieces, max_size=12).map(b"".join), st.lists(st.integers(0, 200), max_size=10))
def test_the_filter_matches_the_oracle_however_the_stream_is_cut(stream: bytes, cuts: list[int]) -> None:
    protocol = LineProtocol(MARKER)
    shown = b"".join(protocol.feed(chunk) for chunk in chunked(stream, cuts)) + protocol.finish()
    expected, last = oracle(stream)
    assert shown == expected
    assert protocol.last == last
    assert pyadapter.read_value(stream)[0] == expected  # RunResult.stdout is what was streamed


def test_a_cut_hand_back_line_is_hidden_and_invents_no_value() -> None:
    assert pyadapter.read_value(b"before" + MARKER + b'{"a": 1}\n') == (b"before", {"a": 1})
    assert pyadapter.read_value(b"no value\n") == (b"no value\n", None)
    assert pyadapter.read_value(b"out" + MARKER + b'{"a": ') == (b"out", None)  # cut by the output cap


def test_ordinary_output_is_never_held_back() -> None:
    seen: list[tuple[str, bytes]] = []
    write, finish = filtered_output(lambda stream, data: seen.append((stream, data)), pyadapter.result_protocol)
    assert write is not None
    write("stdout", b"line one\n")
    write("stdout", b"no newline")
    write("stderr", MARKER + b"stderr is not filtered\n")
    assert seen == [("stdout", b"line one\n"), ("stdout", b"no newline"), ("stderr", MARKER + b"stderr is not filtered\n")]
    write("stdout", b"tail\x1e")  # could start a marker: held until the next write or the end
    assert seen[-1] == ("stdout", b"tail")
    finish()
    assert seen[-1] == ("stdout", b"\x1e")


GUEST = 'print("first")\nprint("no newline", end="")\nresult = {"a": 1}\n'
SPOOF = 'import sys\nsys.stdout.write("\\x1e\\x1eworkbench-result:")\nprint("spoofed", end="")\nresult = [2]\n'


@needs_python
@pytest.mark.parametrize("source, stdout, value", [(GUEST, "first\nno newline", {"a": 1}), (SPOOF, "", [2])])
def test_on_output_streams_what_the_result_holds(source: str, stdout: str, value: object) -> None:
    streamed: list[bytes] = []
    result = Sandbox().run(source, lang="python", on_output=lambda s, data: streamed.append(data) if s == "stdout" else None)
    assert result.ok, result.stderr
    assert b"".join(streamed).decode() == result.stdout == stdout
    assert result.value == value
    assert not any(b"\x1e" in chunk for chunk in streamed)


@needs_python
def test_the_notebook_stream_shows_no_hand_back_line(capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.jupyter.streams import StreamForwarder

    forward = StreamForwarder()
    result = Sandbox().run(GUEST, lang="python", on_output=forward)
    forward.finish()
    assert capsys.readouterr().out == "first\nno newline" == result.stdout
    assert result.value == {"a": 1}


@needs_python
def test_the_cli_shows_no_hand_back_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    script = tmp_path / "r.py"
    script.write_text('result = {"a": 1}\nprint("hi")\n')
    assert main(["run", str(script)]) == 0
    captured = capfd.readouterr()
    assert captured.out == "hi\n"  # it printed '\x1e\x1eworkbench-result:{"a": 1}' too
    assert "\x1e" not in captured.err
    assert main(["run", str(script), "--json"]) == 0
    data = json.loads(capfd.readouterr().out)
    assert data["stdout"] == "hi\n" and data["value"] == {"a": 1}
