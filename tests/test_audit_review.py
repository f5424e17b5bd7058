"""The forensic view of an audit log (issue 14 point 3): runs first, useful columns first, names not numbers.

Was: ``%sandbox_audit FILE`` showed all 18 columns in storage order (``v``, ``seq``, ``ts``, run id and
module hash first), mixed NaN and <NA>, showed ``etc/hosts`` where the guest reached ``/etc/hosts``,
errno as a WASI number, and every Python run carried the interpreter's hash only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

from workbench import AuditLog, Sandbox
from workbench.audit.review import COMPACT_COLUMNS, compact, runs, select

PROBER = """
for i in range(20):
    try:
        open('/etc/hosts')
    except OSError:
        pass
print(open('/docs/readme.txt').read())
"""


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    root = tmp_path_factory.mktemp("ws")
    (root / "docs").mkdir()
    (root / "docs" / "readme.txt").write_text("public notes\n")
    path = root / "audit.jsonl"
    audit = AuditLog(path)
    results = [Sandbox(["filesystem:read:/docs", "time:limit:20s"], root=root, audit=audit).run(PROBER, lang="python",
                                                                                                  name="prober"),
               Sandbox(["time:limit:20s"], root=root, audit=audit).run("print(2)", lang="python", name="quiet")]
    audit.close()
    return path, results


def test_two_python_runs_with_different_code_can_be_told_apart(log: tuple[Path, list[Any]]) -> None:
    path, (prober, quiet) = log
    assert prober.module_sha256 == quiet.module_sha256  # the interpreter: the same for every Python run
    starts = [r for r in AuditLog(path).records() if r["category"] == "lifecycle" and r["action"] == "start"]
    sources = [r["detail"]["source"] for r in starts]
    assert [s["name"] for s in sources] == ["prober", "quiet"] and sources[0]["sha256"] != sources[1]["sha256"]
    import hashlib

    assert sources[1]["sha256"] == hashlib.sha256(b"print(2)").hexdigest() and sources[1]["lang"] == "python"
    assert AuditLog(path).verify().ok  # the schema did not change: detail is free-form
    table = runs(AuditLog(path).frame())
    assert list(table["module"]) == ["prober", "quiet"]
    assert table["source"][0].startswith("prober ") and table["source"][0] != table["source"][1]


def test_runs_summary_counts_outcomes_and_top_denied(log: tuple[Path, list[Any]]) -> None:
    path, (prober, _) = log
    table = runs(AuditLog(path).frame())
    first = table.iloc[0]
    assert first["outcome"] == prober.outcome == "violation"
    assert first["top denied"] == "/etc/hosts ×20"  # the event budget's aggregate counted, resolved path
    assert first["categories"] == "filesystem 20" and first["deny"] >= 10
    assert table.iloc[1]["outcome"] == "ok" and len(first["run"]) == 8 and len(first["module_sha256"]) == 12


def test_compact_frame_reads_in_order_with_names_and_no_nan(log: tuple[Path, list[Any]]) -> None:
    path, _ = log
    frame = compact(AuditLog(path).frame())
    assert tuple(frame.columns) == COMPACT_COLUMNS
    denied = frame[frame["decision"] == "deny"]
    assert set(denied["target"]) == {"/etc/hosts"} and set(denied["errno"]) == {"EACCES"}
    assert set(denied["what"]) == {"filesystem/open"}
    for column in frame.columns:
        assert not frame[column].isna().any() and not frame[column].astype(str).isin(["nan", "<NA>", "None"]).any()


def test_filters_select_runs_decisions_and_time(log: tuple[Path, list[Any]]) -> None:
    path, (prober, quiet) = log
    df = AuditLog(path).frame()
    assert set(select(df, run=quiet.run_id[:6])["run_id"]) == {quiet.run_id}
    assert set(select(df, decision="deny")["decision"].astype(str)) == {"deny"}
    later = df["ts"].max()
    assert len(select(df, since=later)) >= 1 and len(select(df, since=later + pd.Timedelta(seconds=1))) == 0
    with pytest.raises(ValueError, match="unknown decision"):
        select(df, decision="maybe")


def test_the_magic_opens_on_the_summary_and_offers_the_full_frame(log: tuple[Path, list[Any]]) -> None:
    path, (prober, _) = log
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "workbench")
    try:
        view = shell.run_line_magic("sandbox_audit", f"{path} --decision deny -o picked")
        html = view._repr_mimebundle_()["text/html"]
        assert "verified" in html and html.index("workbench-audit-runs") < html.index("workbench-audit-frame")
        assert "EACCES" in html and "/etc/hosts" in html and "color:#ef6c00" in html
        assert set(shell.user_ns["picked"]["decision"].astype(str)) == {"deny"}
        full = shell.run_line_magic("sandbox_audit", f"{path} --full --run {prober.run_id[:8]}")
        assert list(full.columns[:3]) == ["v", "seq", "ts"] and len(full.columns) >= 18
    finally:
        shell.run_line_magic("unload_ext", "workbench")
        InteractiveShell.clear_instance()
