"""One classification and one rendering of a run, and one timeline builder (issue 11 point 7, issue 14).

- :func:`workbench.runtime.outcome.classify` decides how a run ended for every view: the
  result's label, the demo, the validation suites, the notebook;
- ``RunResult._repr_mimebundle_`` is the one rendering (text and HTML), ``repr`` and the CLI use its text;
- :class:`~workbench.runtime.Timeline` groups identical violations (the event budget's aggregates counted),
  bounded whatever the guest does;
- the Jupyter layer imports only what ``workbench.runtime`` exports.
"""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest

from workbench import Sandbox, probes
from workbench.events import Event
from workbench.runtime import Timeline
from workbench.runtime import RunResult, result_text
from workbench.runtime.outcome import classify
from workbench.runtime.timeline import MAX_GROUPS, MAX_MARKS

REPO = Path(__file__).resolve().parents[1]


def _event(category: str, action: str, decision: str, ts: float, **kw: object) -> Event:
    return Event(run_id="r", category=category, action=action, decision=decision, ts=ts, **kw)  # type: ignore[arg-type]


# -- one classification ------------------------------------------------------------------------------
def test_an_interrupted_run_says_so_not_lifecycle() -> None:
    sandbox = Sandbox(["time:limit:10s"])
    done = threading.Event()

    def interrupt() -> None:  # as ■ does: cancel the run once it is going
        while not done.wait(0.05) and sandbox.cancel("interrupted by the user") == 0:
            pass

    thread = threading.Thread(target=interrupt)
    thread.start()
    result = sandbox.run(probes.infinite_loop(), name="spin")
    done.set()
    thread.join()
    assert result.outcome == "stopped: interrupted by the user"
    assert result.classify().kind == "cancelled" and result.classify().code == "lifecycle/kill"
    assert repr(result).startswith("RunResult spin: stopped: interrupted by the user (exit code none)")


def test_learn_mode_is_labelled_and_counts_what_it_recorded(workspace: Path) -> None:
    result = Sandbox([], root=workspace, on_violation="audit").run(probes.read_file("docs/readme.txt"))
    outcome = result.classify()
    assert result.ok and outcome.learn_mode and outcome.recorded == 1
    assert result.outcome == "ok · learn mode: 1 refusal recorded, none enforced"
    text = repr(result)
    assert "~ audit filesystem open /docs/readme.txt" in text and "learn mode: every access was allowed" in text
    assert "learn mode" in result._repr_mimebundle_()["text/html"]
    plain = Sandbox(["filesystem:read:/docs"], root=workspace).run(probes.read_file("readme.txt"))
    assert plain.outcome == "ok" and not plain.classify().learn_mode


def test_demo_validation_and_result_use_the_one_classifier(workspace: Path) -> None:
    from workbench.demo import _decision
    from workbench.validation.violations import classify as validation_classify

    fault = Sandbox().run(probes.unreachable(), name="trap")
    bomb = Sandbox(["memory:limit:1MB"]).run(probes.memory_bomb())
    for result in (fault, bomb):
        assert validation_classify(result) == result.classify().code
    assert fault.outcome == "fault (unreachable)" and validation_classify(fault) == "fault:unreachable"
    assert _decision(fault).startswith("fault (unreachable): ")
    assert validation_classify(bomb) == "memory/deny" and bomb.outcome == "violation"


def test_classify_orders_audit_failure_stop_fault_violation_exit() -> None:
    start = _event("lifecycle", "start", "allow", 0.0)
    deny = _event("filesystem", "open", "deny", 0.1, target="x", errno=2)
    kill = _event("time", "deadline", "kill", 0.2)
    assert classify([start, deny, kill], exit_code=None, fault_kind="x", audit_failed=True).kind == "audit-failed"
    assert classify([start, deny, kill], exit_code=None, fault_kind="x").label == "stopped (time)"
    assert classify([start, deny], exit_code=None, fault_kind="unreachable").label == "fault (unreachable)"
    assert classify([start, deny], exit_code=1).code == "filesystem/deny"
    assert classify([start], exit_code=3).label == "exit 3" and classify([start], exit_code=0).label == "ok"


# -- one rendering ----------------------------------------------------------------------------------
def test_the_mimebundle_is_the_rendering_and_repr_is_its_text(workspace: Path) -> None:
    result = Sandbox(["time:limit:100ms", "filesystem:read:/docs"], root=workspace).run(probes.infinite_loop(),
                                                                                       name="spin")
    bundle = result._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert bundle["text/plain"] == repr(result) == result_text(result)
    assert bundle["text/plain"].splitlines()[0] == "RunResult spin: stopped (time) (exit code none)"
    assert "workbench-result" in bundle["text/html"] and "time:limit:100ms" in bundle["text/html"]
    assert not hasattr(RunResult, "summary_lines") and not hasattr(RunResult, "_repr_html_")


def test_cli_prints_the_text_form(workspace: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    module = tmp_path / "reader.wat"
    module.write_text(probes.read_file("secret.txt"))
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "run", str(module), "--root", str(workspace)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=workspace)
    assert done.returncode == 3
    result = Sandbox([], root=workspace).run(probes.read_file("secret.txt"), name="reader")
    assert "\n".join(f"workbench: {line}" for line in repr(result).splitlines()) in done.stderr


def test_a_refusal_explains_eacces_where_it_is_shown(workspace: Path) -> None:
    """WASI's EACCES is 2: a Python guest prints "[Errno 2] Permission denied", read as "not found"."""
    result = Sandbox(["time:limit:5s"]).run(probes.read_file("etc/passwd"))
    text = repr(result)
    assert "! deny filesystem open /etc/passwd → EACCES" in text
    assert "WASI numbers it 2" in text and "'[Errno 2] Permission denied'" in text
    assert "WASI numbers it 2" in result._repr_mimebundle_()["text/html"]


# -- one timeline builder ---------------------------------------------------------------------------
def test_identical_violations_are_one_group_with_first_last_and_count() -> None:
    events = [_event("lifecycle", "start", "allow", 100.0)]
    events += [_event("filesystem", "open", "deny", 100.0 + i / 100, target="etc/passwd", resolved="/etc/passwd",
                      errno=2) for i in range(10)]
    # the event budget's aggregate: 150 more, the last at +2 s
    events.append(_event("filesystem", "open", "deny", 102.5, target="etc/passwd", resolved="/etc/passwd", errno=2,
                         detail={"repeated": 150, "first_ts": 100.1, "last_ts": 102.0}))
    events.append(_event("memory", "grow", "deny", 100.5, target="1 MiB"))
    events.append(_event("filesystem", "open", "allow", 100.6, target="ok"))
    groups = Timeline.from_events(events).groups()
    assert [(g.lane, g.count) for g in groups] == [("filesystem", 160), ("memory", 1)]
    passwd = groups[0]
    assert passwd.first == 0.0 and passwd.last == pytest.approx(2.0) and passwd.errno_name == "EACCES"
    assert passwd.label == "deny filesystem open /etc/passwd ×160" and len(passwd.marks) <= MAX_MARKS


def test_the_timeline_stays_bounded_whatever_the_count() -> None:
    timeline = Timeline()
    timeline.add(_event("lifecycle", "start", "allow", 0.0))
    for i in range(5_000):
        timeline.add(_event("filesystem", "open", "deny", i / 1000, target=f"f{i}", resolved=f"/f{i}"))
        timeline.add(_event("filesystem", "open", "deny", i / 1000, target="same", resolved="/same"))
    groups = timeline.groups()
    assert len(groups) <= MAX_GROUPS + 8 and sum(g.count for g in groups) == 10_000 == timeline.total
    assert max(len(g.marks) for g in groups) <= MAX_MARKS
    assert any(g.folded and g.action == "more" for g in groups)
    assert sum(len(str(g.to_dict())) for g in groups) < 200_000  # what a widget is sent stays small


def test_learn_mode_places_would_be_refusals_in_lanes() -> None:
    timeline = Timeline.from_events([_event("lifecycle", "start", "allow", 0.0),
                                     _event("filesystem", "open", "audit", 0.2, target="x"),
                                     _event("lifecycle", "cancel", "kill", 0.3, reason="interrupted by the user")])
    assert [(g.lane, g.decision) for g in timeline.groups()] == [("filesystem", "audit"), ("run", "kill")]
    assert timeline.lanes()[-1] == "run" and len(timeline.lanes()) == 8


# -- the notebook layer stays outside the core ------------------------------------------------------
def test_jupyter_imports_only_exported_runtime_names() -> None:
    import workbench.runtime as runtime

    for path in sorted((REPO / "workbench" / "jupyter").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("runtime"):
                assert node.level == 2, path
                if node.module == "runtime":
                    names = {a.name for a in node.names}
                    assert names <= set(runtime.__all__), (path.name, names - set(runtime.__all__))
                else:  # a runtime module by its own public name: only the interrupt router
                    assert node.module == "runtime.interrupt", (path.name, node.module)
            if isinstance(node, ast.Attribute) and node.attr == "signature":
                pytest.fail(f"{path.name} inspects a signature")
