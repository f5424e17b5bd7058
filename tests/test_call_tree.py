"""RunResult shows its module calls as a tree (issue 12, point 3), in its text and its HTML, from one
walk of the calls: caller, then each callee with how it ended, nested as the calls were."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from typing import Any

from workbench import Sandbox
from workbench.runtime.call_record import SHOWN_CALLS, CallRecord, calls_html, calls_text

GUEST = '''
import workbench_guest
print(workbench_guest.call("wordcount", {"text": "a b a"})["words"])
for name in ("parser", "nothere"):
    try:
        workbench_guest.call(name, {"path": "/nothing.csv"})
    except OSError as exc:
        print(name, "refused")
'''


def _tree(calls: tuple[CallRecord, ...]) -> list[Any]:
    return [(c.module, c.outcome, _tree(c.calls)) for c in calls]


def _html_tree(node: ElementTree.Element) -> list[Any]:
    """(module, outcome, children) read back from the nested lists."""
    found = []
    for item in node.findall("./ul/li"):
        module = item.find("b")
        outcome = item.find("span")
        assert module is not None and outcome is not None
        found.append((module.text, outcome.text, _html_tree(item)))
    return found


def test_text_and_html_show_the_same_tree_of_a_real_run() -> None:
    sandbox = Sandbox(["module:call:wordcount", "module:call:parser", "time:limit:5m"])
    result = sandbox.run(GUEST, "python", name="caller")
    assert result.exit_code == 0 and result.stdout.splitlines()[0] == "3", result.stdout + result.stderr
    text = repr(result)
    tree = text[text.index("  calls from caller:"):].splitlines()
    assert tree == ["  calls from caller:", "    └─ wordcount: ok", "    └─ parser: escalation: module asks for "
                    "'filesystem:read:/data' but its caller holds no filesystem rights"]  # a refused call is in it
    bundle = result._repr_mimebundle_()
    page = bundle["text/html"]
    assert "calls from <b>caller</b>" in page
    for line in calls_text(result.calls):  # every line of the text is an item of the HTML
        module, outcome = line.strip()[len("└─ "):].split(": ", 1)
        assert f"<b>{module}</b>: <span" in page and outcome.replace("'", "&#x27;") in page
    again = sandbox.run(GUEST, "python", name="caller")
    assert repr(again) == text  # stable: no times, ids or addresses (nbval compares it)


def test_the_html_nests_exactly_as_the_calls_did() -> None:
    leaf = CallRecord("wordcount", ("a", "pipeline", "wordcount"), True, reason="exited 0")
    failed = CallRecord("parser", ("a", "pipeline", "parser"), False, "failed", "exit code 1: <boom> & 'quoted'")
    calls = (
        CallRecord("pipeline", ("a", "pipeline"), True, reason="exited 0 (1 refusal)", calls=(failed, leaf)),
        CallRecord("fetcher", ("a", "fetcher"), False, "denied", "no module:call grant covers 'fetcher'"),
        CallRecord("deep", ("a", "deep"), True, calls=(CallRecord("d2", ("a", "deep", "d2"), True, calls=(
            CallRecord("d3", ("a", "deep", "d2", "d3"), True),)),)),
    )
    root = ElementTree.fromstring(f"<div>{calls_html(calls)}</div>")  # well-formed: escaped, every list closed
    assert _html_tree(root) == _tree(calls)
    assert calls_text(calls) == [
        "  └─ pipeline: ok, 1 refusal", "    └─ parser: failed: exit code 1: <boom> & 'quoted'",
        "    └─ wordcount: ok", "  └─ fetcher: denied: no module:call grant covers 'fetcher'", "  └─ deep: ok",
        "    └─ d2: ok", "      └─ d3: ok"]


def test_a_guest_calling_in_a_loop_gets_a_bounded_summary() -> None:
    many = tuple(CallRecord(f"m{i}", ("a", f"m{i}"), True) for i in range(SHOWN_CALLS + 7))
    lines = calls_text(many)
    assert len(lines) == SHOWN_CALLS + 1 and lines[-1] == "  … 7 more calls"
    page = calls_html(many)
    assert page.count("<li>") == SHOWN_CALLS and "… 7 more calls" in page
    assert len(calls_text(many, limit=None)) == SHOWN_CALLS + 7
