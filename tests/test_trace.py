"""The call trace (issue 13, point 1): every WASI call, allowed or not, decoded, in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest

from workbench import Sandbox
from workbench.runtime import trace as trace_module
from workbench.runtime.trace_table import TRACE_COLUMNS, flag_names, rights_names

WRITER = r"""#include <stdio.h>

int main(void) {
    char line[64];
    FILE *in = fopen("/docs/readme.txt", "r");
    if (!in || !fgets(line, sizeof line, in)) return 3;
    fclose(in);
    FILE *secret = fopen("/secret.txt", "r");
    FILE *out = fopen("/out/copy.txt", "w");
    if (!out) return 4;
    fputs(line, out);
    fclose(out);
    printf("copied, secret %s\n", secret ? "read" : "refused");
    return 0;
}
"""

# path_open with a path pointer far outside memory, a huge length, then a plain write
ODD = """(module
 (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (data (i32.const 200) "\\d2\\00\\00\\00\\03\\00\\00\\00")
 (data (i32.const 210) "hi\\n")
 (func (export "_start")
   (drop (call $open (i32.const 3) (i32.const 1) (i32.const 0xFFFFFFF0) (i32.const 100) (i32.const 0) (i64.const -1)
                     (i64.const 0) (i32.const 0) (i32.const 300)))
   (drop (call $open (i32.const 3) (i32.const 1) (i32.const 0) (i32.const 0x7FFFFFFF) (i32.const 9) (i64.const 0)
                     (i64.const 0) (i32.const 0) (i32.const 300)))
   (drop (call $w (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 304)))))
"""

WORKBENCH = str(Path(sys.executable).parent / "workbench")

LOOP = """(module
 (import "wasi_snapshot_preview1" "sched_yield" (func $y (result i32)))
 (memory (export "memory") 1)
 (func (export "_start") (local $i i32)
   (loop $l (drop (call $y)) (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br_if $l (i32.lt_u (local.get $i) (i32.const 25))))))
"""


@pytest.fixture(scope="module")
def c_ready() -> Iterator[None]:
    from workbench.languages import c as cadapter

    cadapter.compile_c("int main(void) { return 0; }\n", "warm")
    yield


def _rows(frame: pd.DataFrame, call: str) -> pd.DataFrame:
    return frame[frame["call"] == call]


def test_a_c_modules_trace_has_its_calls_in_order_with_paths_and_flags(workspace: Path, c_ready: None) -> None:
    sandbox = Sandbox(["filesystem:read:/docs", "filesystem:write:/out"], root=workspace)
    result = sandbox.run(WRITER, lang="c", name="writer", trace=True)
    assert result.stdout == "copied, secret refused\n", result.stderr
    frame = result.trace
    assert isinstance(frame, pd.DataFrame)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        c: ("string" if t == "string" else t) for c, t in TRACE_COLUMNS.items()}
    assert list(frame["seq"]) == list(range(len(frame)))
    assert frame["time_s"].is_monotonic_increasing
    opens = _rows(frame, "path_open")
    assert list(opens["path"]) == ["/docs/readme.txt", "/secret.txt", "/out/copy.txt"]
    assert list(opens["errno"]) == ["SUCCESS", "EACCES", "SUCCESS"]
    assert list(opens["decision"].fillna("")) == ["", "deny", ""]
    assert opens["flags"].iloc[0] == "SYMLINK_FOLLOW"
    assert opens["flags"].iloc[2] == "SYMLINK_FOLLOW|CREAT|TRUNC"
    assert "fd_read" in opens["rights"].iloc[0].split("|") and "fd_write" in opens["rights"].iloc[2].split("|")
    # the descriptors each open returned, followed through reads, writes and closes by path
    reads = _rows(frame, "fd_read")
    assert (reads["fd_path"] == "/docs/readme.txt").any()
    assert reads["bytes"].max() == len("public notes\n")
    writes = _rows(frame, "fd_write")
    copy = writes[writes["fd_path"] == "/out/copy.txt"]
    assert list(copy["bytes"]) == [len("public notes\n")]
    assert writes[writes["fd_path"] == "<stdout>"]["bytes"].sum() == len(result.stdout)
    closes = _rows(frame, "fd_close")
    assert list(closes["fd_path"]) == ["/docs/readme.txt", "/out/copy.txt"]
    # the order: read the input, refuse the secret, write the copy, then print
    order = [(r.call, r.path if isinstance(r.path, str) else r.fd_path) for r in frame.itertuples() if r.call in ("path_open", "fd_close", "fd_write")]
    assert order[7:] == [("fd_write", "<stdout>")] * (len(order) - 7)  # libc may flush in pieces
    assert order[:7] == [
        ("path_open", "/docs/readme.txt"), ("fd_close", "/docs/readme.txt"), ("path_open", "/secret.txt"),
        ("path_open", "/out/copy.txt"), ("fd_write", "/out/copy.txt"), ("fd_close", "/out/copy.txt"),
        ("fd_write", "<stdout>"),
    ]
    assert (frame["duration_us"].dropna() >= 0).all()
    assert _rows(frame, "proc_exit").empty or _rows(frame, "proc_exit")["errno"].isna().all()


def test_the_trace_shows_guest_paths_never_host_paths(workspace: Path, c_ready: None) -> None:
    result = Sandbox(["filesystem:read:/docs", "filesystem:write:/out"], root=workspace).run(
        WRITER, lang="c", name="writer", trace=True)
    text = result.trace.to_csv()
    assert str(workspace) not in text and "workbench-empty-root" not in text


def test_tracing_changes_nothing_the_guest_sees(workspace: Path, c_ready: None) -> None:
    sandbox = Sandbox(["filesystem:read:/docs", "filesystem:write:/out"], root=workspace)
    plain = sandbox.run(WRITER, lang="c", name="writer")
    traced = sandbox.run(WRITER, lang="c", name="writer", trace=True)
    assert plain.trace is None
    assert (plain.stdout, plain.exit_code, plain.outcome) == (traced.stdout, traced.exit_code, traced.outcome)
    shape = [(e.category, e.action, e.decision, e.target, e.errno) for e in plain.events[1:]]
    assert shape == [(e.category, e.action, e.decision, e.target, e.errno) for e in traced.events[1:]]


def test_odd_arguments_are_recorded_without_harm(workspace: Path) -> None:
    result = Sandbox(root=workspace).run(ODD, trace=True)
    assert result.stdout == "hi\n"
    opens = _rows(result.trace, "path_open")
    assert len(opens) == 2 and (opens["errno"] != "SUCCESS").all()
    assert opens["path"].iloc[0] == "<unreadable>"  # outside memory: nothing read
    assert opens["rights"].iloc[0] == "all|0xffffffffc0000000"  # every bit: the known rights and the rest
    assert opens["flags"].iloc[1] == "SYMLINK_FOLLOW|CREAT|TRUNC"
    assert len(opens["path"].iloc[1]) == 1 + trace_module.PATH_MAX  # "/" and the first PATH_MAX bytes: a huge length is cut
    assert list(result.trace["call"]) == ["path_open", "path_open", "fd_write"]


def test_a_trace_keeps_at_most_its_cap_and_counts_the_rest(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace_module, "MAX_RECORDS", 10)
    result = Sandbox(root=workspace).run(LOOP, trace=True)
    assert result.ok
    assert len(result.trace) == 10 and result.trace.attrs["dropped"] == 15
    assert list(result.trace["call"]) == ["sched_yield"] * 10


def test_a_guest_without_wasi_imports_has_an_empty_trace(workspace: Path) -> None:
    result = Sandbox(root=workspace).run('(module (func (export "_start")))', trace=True)
    assert result.ok and result.trace.empty and list(result.trace.columns) == list(TRACE_COLUMNS)


def test_flags_and_rights_by_name() -> None:
    assert flag_names(0b1001, ("CREAT", "DIRECTORY", "EXCL", "TRUNC")) == "CREAT|TRUNC"
    assert flag_names(0, ("A",)) == ""
    assert flag_names(0b110, ("A", "B")) == "B|0x4"
    assert rights_names(0b1000010) == "fd_read|fd_write"
    assert rights_names((1 << 30) - 1) == "all"


def test_the_cli_prints_the_trace(workspace: Path) -> None:
    module = workspace / "odd.wat"
    module.write_text(ODD)
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    done = subprocess.run([WORKBENCH, "run", "--trace", str(module)], cwd=workspace,
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 3, done.stderr  # the refused opens are violations
    lines = [line for line in done.stderr.splitlines() if line.startswith("workbench: trace: ")]
    assert len(lines) == 3 and "path_open <unreadable>" in lines[0] and "fd_write <stdout> 3 bytes -> SUCCESS" in lines[2]
    assert "\\x00\\x00" in lines[1] and "\x00" not in done.stderr and len(lines[1]) < 1000  # guest bytes escaped, cut
    done = subprocess.run([WORKBENCH, "run", "--trace", "--json", str(module)],
                          cwd=workspace, capture_output=True, text=True, env=env, timeout=120)
    trace = json.loads(done.stdout)["trace"]
    assert [row["call"] for row in trace] == ["path_open", "path_open", "fd_write"] and trace[2]["bytes"] == 3


def test_the_magic_traces(workspace: Path) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    old = os.getcwd()
    os.chdir(workspace)
    shell: Any = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "workbench")
    try:
        result = shell.run_cell_magic("sandbox", "--no-widgets --trace -q -o res", ODD)
        assert result is None
        assert list(shell.user_ns["res"].trace["call"]) == ["path_open", "path_open", "fd_write"]
    finally:
        shell.run_line_magic("unload_ext", "workbench")
        shell.user_ns.clear()
        InteractiveShell.clear_instance()
        os.chdir(old)


def test_in_kill_mode_the_refused_call_ends_the_trace(workspace: Path, c_ready: None) -> None:
    result = Sandbox(["filesystem:read:/docs", "filesystem:write:/out"], root=workspace, on_violation="kill").run(
        WRITER, lang="c", name="writer", trace=True)
    last = result.trace.iloc[-1]
    assert (last["call"], last["path"], last["decision"]) == ("path_open", "/secret.txt", "kill")
    assert pd.isna(last["result"]) and pd.isna(last["errno"])  # it never returned: the guest was stopped
