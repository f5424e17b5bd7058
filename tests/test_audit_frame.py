"""Frames (typed columns, fast and slow paths agree) and the forensic helpers on a hand-made log."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from workbench.audit import AuditLog, call_chain, denied_targets, details, frame, run_summary, timeline  # noqa: E402
from workbench.audit.frames import _fast, _slow, _to_pandas  # noqa: E402
from workbench.events import Event  # noqa: E402

T0 = 1_700_000_000.0

# run A: main runs, reads, is refused twice on /docs/private and once on a host, calls parser (which
# calls fmt), is refused one call, hits its memory limit and is killed.  run B: tool is refused /etc.
HAND_MADE = [
    dict(run_id="A", module="main", category="lifecycle", action="start", decision="audit", t=0.0),
    dict(run_id="A", module="main", category="filesystem", action="open", target="/docs/a.txt",
         capability="filesystem:read:/docs", t=0.1),
    dict(run_id="A", module="main", category="filesystem", action="open", target="/docs/private/k",
         decision="deny", errno=2, capability="!filesystem:read:/docs/private", t=0.2),
    dict(run_id="A", module="main", category="filesystem", action="open", target="/docs/private/k",
         decision="deny", errno=2, capability="!filesystem:read:/docs/private", t=0.3),
    dict(run_id="A", module="main", category="network", action="connect", target="evil.example:443",
         decision="deny", t=0.4),
    dict(run_id="A", module="main", category="module", action="call", target="parser",
         capability="module:call:parser", t=0.5),
    dict(run_id="A", module="parser", category="module", action="call", target="fmt",
         caller_chain=("main",), t=0.6),
    dict(run_id="A", module="main", category="module", action="call", target="parser", t=0.7),
    dict(run_id="A", module="main", category="module", action="call", target="shell", decision="deny", t=0.8),
    dict(run_id="A", module="main", category="memory", action="grow", decision="kill",
         reason="memory limit 100MB", t=0.9),
    dict(run_id="A", module="main", category="lifecycle", action="exit", decision="audit", t=1.0),
    dict(run_id="B", module="tool", category="lifecycle", action="start", decision="audit", t=5.0),
    dict(run_id="B", module="tool", category="filesystem", action="open", target="/etc/passwd",
         decision="deny", errno=2, t=5.5),
    dict(run_id="B", module="tool", category="lifecycle", action="exit", decision="audit", t=6.0),
]


def make_log(path: Path, rows=HAND_MADE) -> AuditLog:
    log = AuditLog(path)
    for row in rows:
        row = dict(row)
        ts = T0 + row.pop("t")
        log.append(Event(ts=ts, detail={"t": ts - T0}, **row))
    return log


@pytest.fixture
def df(tmp_path) -> pd.DataFrame:
    return make_log(tmp_path / "audit.jsonl").frame()


def test_frame_dtypes(df):
    assert len(df) == len(HAND_MADE)
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]"
    assert df["seq"].dtype == "int64"
    assert df["errno"].dtype == "Int64"
    for name in ("category", "action", "decision", "module", "capability", "v"):
        assert isinstance(df[name].dtype, pd.CategoricalDtype), name
    assert list(df["decision"].cat.categories) == ["allow", "deny", "kill", "audit"]
    for name in ("run_id", "target", "reason", "detail", "hash", "prev_hash"):
        assert df[name].dtype == pd.StringDtype("pyarrow"), name
    assert df["ts"].iloc[0] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert df["errno"].tolist()[:3] == [pd.NA, pd.NA, 2]
    assert list(df["seq"]) == list(range(len(HAND_MADE)))
    assert json.loads(df["detail"].iloc[1]) == {"t": pytest.approx(0.1)}
    assert list(df["caller_chain"].iloc[6]) == ["main"]


def test_frame_of_several_files_and_the_rotated_log(tmp_path):
    a = make_log(tmp_path / "a.jsonl", HAND_MADE[:4])
    b = make_log(tmp_path / "b.jsonl", HAND_MADE[4:])
    both = frame([a.path, str(b.path)])
    assert len(both) == len(HAND_MADE) and list(both["run_id"]) == [r["run_id"] for r in HAND_MADE]
    assert len(frame(a.path)) == 4 and len(frame(str(b.path))) == len(HAND_MADE) - 4
    rotated = AuditLog(tmp_path / "r.jsonl", max_bytes=1200)
    for i in range(12):
        rotated.append(Event(run_id="R", category="env", action="get", target=f"V{i}"))
    assert len(rotated.files()) > 2
    assert list(rotated.frame()["seq"]) == list(range(12))


def test_empty_log_gives_an_empty_typed_frame(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    df = frame(path)
    assert len(df) == 0 and str(df["ts"].dtype) == "datetime64[ns, UTC]" and df["errno"].dtype == "Int64"
    assert run_summary(df).empty and denied_targets(df).empty and call_chain(df).empty


ODD = '/odd "name" ✓ \\ } \n\t\x01\x7f 😀'


def test_fast_and_slow_paths_agree_on_escapes_unicode_and_look_alike_details(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = make_log(path)
    forged = {"a": 1, "errno": None, "hash": "0" * 64, "zz": ',"errno":x'}  # looks like a record's tail
    log.append(Event(run_id='C"', category="filesystem", action="open", target=ODD, reason=ODD,
                     caller_chain=(ODD, "b"), module=ODD, capability=ODD, errno=-13,
                     detail={"nested": {"a": [1, {"b": "}"}]}, "odd": ODD}))
    log.append(Event(run_id="C", category="env", action="get", detail=forged))
    data = path.read_bytes()
    assert b',"errno":null,"hash":"' + b"0" * 64 in data
    fast = _to_pandas(_fast(data, len(data)))  # no fallback: the fast path copes with all of it
    slow = _to_pandas(_slow(data))
    pd.testing.assert_frame_equal(fast, slow)
    assert json.loads(fast["detail"].iloc[-2]) == {"nested": {"a": [1, {"b": "}"}]}, "odd": ODD}
    assert json.loads(fast["detail"].iloc[-1]) == forged
    assert fast["target"].iloc[-2] == ODD and list(fast["caller_chain"].iloc[-2]) == [ODD, "b"]


def test_a_line_that_is_not_canonical_goes_the_slow_way(tmp_path):
    from workbench.audit.frame_columns import Unusual

    path = tmp_path / "audit.jsonl"
    make_log(path, HAND_MADE[:3])
    raw = path.read_bytes().splitlines(keepends=True)
    raw[1] = raw[1].replace(b'"detail":{', b'"detail": {')
    data = b"".join(raw)
    path.write_bytes(data)
    with pytest.raises(Unusual):
        _fast(data, len(data))
    df = frame(path)
    assert len(df) == 3 and json.loads(df["detail"].iloc[1]) == {"t": pytest.approx(0.1)}


def test_unusual_files_fall_back_and_torn_lines_are_not_records(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = make_log(path, HAND_MADE[:3])
    log.append(Event(run_id="C", category="env", action="get", detail={"a": 1, "errno": 5}))
    with open(path, "ab") as f:
        f.write(b'{"action":"op')  # torn tail
    df = frame(path)
    assert len(df) == 4 and json.loads(df["detail"].iloc[-1]) == {"a": 1, "errno": 5}
    AuditLog(path).append(Event(run_id="C", category="env", action="get"))  # recovery keeps torn bytes
    df = frame(path)
    assert list(df["action"])[-2:] == ["recovered", "get"] and len(df) == 6
    with open(path, "ab") as f:
        f.write(b"\n[1]\n{}\n")  # a blank line and lines that are JSON but not records
    assert len(frame(path)) == 6


def test_details_opens_the_detail_column(df):
    opened = details(df)
    assert list(opened.index) == list(df.index)
    assert opened["t"].iloc[2] == pytest.approx(0.2)


def test_run_summary(df):
    summary = run_summary(df)
    assert list(summary.index) == ["A", "B"]
    a, b = summary.loc["A"], summary.loc["B"]
    assert a["module"] == "main" and b["module"] == "tool"
    assert a["start"] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert a["end"] == pd.Timestamp(T0 + 1.0, unit="s", tz="UTC")
    assert (a["records"], a["allow"], a["deny"], a["kill"], a["audit"], a["violations"]) == (11, 4, 4, 1, 2, 5)
    assert (b["records"], b["allow"], b["deny"], b["kill"], b["audit"], b["violations"]) == (3, 0, 1, 0, 2, 1)


def test_denied_targets(df):
    out = denied_targets(df)
    assert list(out.columns) == ["target", "category", "count"]
    rows = [tuple(r) for r in out.astype(object).itertuples(index=False)]
    assert rows[:4] == [("/docs/private/k", "filesystem", 2), ("/etc/passwd", "filesystem", 1),
                        ("evil.example:443", "network", 1), ("shell", "module", 1)]
    assert pd.isna(rows[4][0]) and rows[4][1:] == ("memory", 1)  # a limit kill has no target: last
    assert len(rows) == 5 and out["count"].dtype == "int64"


def test_denied_targets_count_the_guest_path_a_request_led_to(tmp_path):
    rows = [
        dict(run_id="C", module="m", category="filesystem", action="open", target="../secret",
             resolved="/secret", decision="deny", t=0.1),  # asked through /docs
        dict(run_id="C", module="m", category="filesystem", action="open", target="secret",
             resolved="/secret", decision="deny", t=0.2),  # asked through /
        dict(run_id="C", module="m", category="network", action="connect", target="evil.example:443",
             decision="deny", t=0.3),  # nothing to resolve: the target as requested
    ]
    out = denied_targets(make_log(tmp_path / "a.jsonl", rows).frame())
    assert [tuple(r) for r in out.astype(object).itertuples(index=False)] == [
        ("/secret", "filesystem", 2), ("evil.example:443", "network", 1)]


def test_call_chain(df):
    edges = call_chain(df)
    got = [(r.caller, r.callee, r.path, r.calls, r.denied) for r in edges.itertuples()]
    assert got == [
        ("main", "parser", "main → parser", 2, 0),
        ("parser", "fmt", "main → parser → fmt", 1, 0),
        ("main", "shell", "main → shell", 1, 1),
    ]


def test_call_chain_recorded_on_the_callee_side(tmp_path):
    rows = [dict(run_id="A", module="parser", category="module", action="call", target="parser",
                 caller_chain=("main",), t=0.0)]
    edges = call_chain(make_log(tmp_path / "c.jsonl", rows).frame())
    assert (edges["caller"][0], edges["callee"][0]) == ("main", "parser")


def test_timeline(df):
    ax = timeline(df)
    try:
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == ["filesystem", "lifecycle", "memory", "module", "network"]
        assert sum(len(c.get_offsets()) for c in ax.collections) == len(df)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["allow", "deny", "kill", "audit"]
    finally:
        plt.close(ax.figure)
    fig, own = plt.subplots()
    try:
        assert timeline(df[df["run_id"] == "B"], ax=own) is own
        assert [t.get_text() for t in own.get_yticklabels()] == ["filesystem", "lifecycle"]
    finally:
        plt.close(fig)
