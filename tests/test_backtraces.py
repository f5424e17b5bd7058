"""Backtraces everywhere (issue 13, point 2): C functions and lines, WAT names, a Python guest's traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import Sandbox
from workbench.runtime.backtraces import python_fault, source_around
from workbench.runtime.render import result_html, result_text
from workbench.runtime.wasm_facts import facts_of

TRAP = r"""#include <stdio.h>

static int depth_of(int *p) {
    return *p + 1;
}

int checked_divide(int a, int b) {
    if (b == 0)
        __builtin_trap();
    return a / b;
}

int main(void) {
    volatile int zero = 0;
    printf("%d\n", checked_divide(1, zero));
    return depth_of(0);
}
"""

WAT = """(module
  (func $inner (unreachable))
  (func $outer (call $inner))
  (func (export "_start") (call $outer)))
"""


@pytest.fixture(scope="module", autouse=True)
def c_ready() -> None:
    from workbench.languages import c as cadapter

    cadapter.compile_c("int main(void) { return 0; }\n", "warm")


def test_a_c_trap_names_its_functions_and_source_lines(tmp_path: Path) -> None:
    result = Sandbox(root=tmp_path).run(TRAP, lang="c", name="divide")
    fault = result.fault
    assert fault is not None and fault.kind == "unreachable"
    assert fault.backtrace[0] == "checked_divide (divide.c:8:11)"
    assert fault.backtrace[1] == "main (divide.c:15:20)"  # checked_divide was inlined into main: both shown
    assert fault.backtrace[2].startswith("_start (crt1-command.c:")
    assert fault.line == 8
    assert dict(fault.source)[8] == "    if (b == 0)" and min(dict(fault.source)) == 6 and max(dict(fault.source)) == 10
    text = result_text(result)
    assert ">    8 |     if (b == 0)" in text and "      9 |         __builtin_trap();" in text
    assert "&gt;    8 |     if (b == 0)" in result_html(result)
    assert "/root" not in str(fault) and ".cache" not in text  # file names only, never host folders


def test_a_wat_trap_names_functions_from_the_name_section_and_exports(tmp_path: Path) -> None:
    fault = Sandbox(root=tmp_path).run(WAT).fault
    assert fault is not None and fault.backtrace == ("inner", "outer", "_start")


def test_a_python_guests_traceback_is_the_fault(tmp_path: Path) -> None:
    code = "def ratio(x):\n    return 1 / x\n\nvalues = [1, 0]\nprint([ratio(v) for v in values])\n"
    result = Sandbox(root=tmp_path).run(code, lang="python")
    fault = result.fault
    assert fault is not None and not fault.trapped
    assert (fault.kind, fault.message) == ("exception", "ZeroDivisionError: division by zero")
    assert fault.backtrace[0] == "ratio (line 2)" and fault.backtrace[-1] == "<module> (line 5)"
    assert fault.line == 2 and dict(fault.source)[2] == "    return 1 / x"
    assert result.exit_code == 1 and result.outcome == "exit 1"  # the guest's report: the outcome is its exit
    assert ">    2 |     return 1 / x" in result_text(result)


def test_a_python_guest_that_exits_cleanly_has_no_fault(tmp_path: Path) -> None:
    assert Sandbox(root=tmp_path).run("import sys\nprint('x', file=sys.stderr)\n", lang="python").fault is None


def test_parsing_a_traceback_takes_the_last_one_and_tolerates_junk() -> None:
    text = ("Traceback (most recent call last):\n  File \"<string>\", line 1, in <module>\nKeyError: 'a'\n"
            "noise\nTraceback (most recent call last):\n  File \"<string>\", line 3, in g\nValueError: bad\n")
    fault = python_fault(text, "a\nb\nc\n")
    assert fault is not None and fault.message == "ValueError: bad" and fault.backtrace == ("g (line 3)",)
    assert python_fault("no traceback here", "") is None
    assert python_fault('  File "<string>", line 999999, in f\nE: x\n', "one line") is not None
    assert source_around("a\nb", 0) == () and source_around("a\nb", 3) == () and source_around("a\nb", 2) == ((1, "a"), (2, "b"))


@pytest.mark.parametrize("junk", [b"", b"\0asm", b"\0asm\1\0\0\0\x07\xff\xff", b"\0asm\1\0\0\0\x00\x05\x04name\x01"])
def test_module_facts_of_malformed_bytes_are_empty_not_an_error(junk: bytes) -> None:
    facts = facts_of(junk)
    assert facts.function_names == {} or isinstance(facts.function_names, dict)
