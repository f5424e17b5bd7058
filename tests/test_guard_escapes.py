"""Escapes from fine-grained filesystem rules (issue 9): each observation as an attack that must fail.

Single-file grants, globs and deny carve-outs are enforced by the WASI guard on the object a call
reaches, not on the text of its path.  Every test here is an attack that got through before:
symlink + ``..``, renames of ancestors, calls on descriptors, races with the host, symlinks
planted for a later run, single-file host mappings, deny globs written above a grant, guest names
that steer learn mode, and the interpreter's own look-ups taken for the guest's.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import pytest

from workbench import PolicyError, Sandbox
from workbench.runtime import RunResult


def py(sandbox: Sandbox, code: str) -> RunResult:
    return sandbox.run(code, lang="python")


def fs(result: RunResult, action: str | None = None) -> list[tuple[str, str, str | None, int | None]]:
    return [(e.decision, e.action, e.resolved, e.errno) for e in result.events
            if e.category == "filesystem" and e.action != "mount" and (action is None or e.action == action)]


def denied(result: RunResult) -> list[str]:
    return [f"{v.event.action if v.event else ''} {v.resolved}" for v in result.violations if v.kind == "filesystem"]


ATTEMPTS = r'''
import os
def attempt(label, step):
    try:
        value = step()
        print(label, "OK", repr(value)[:200])
    except Exception as exc:
        print(label, type(exc).__name__)
'''


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "secret.txt").write_text("DOCS-SECRET")
    (root / "secret.txt").write_text("ROOT-SECRET")
    (root / "out.txt").write_text("hello")
    (root / "work" / "sub" / "private").mkdir(parents=True)
    (root / "work" / "sub" / "ro").mkdir(parents=True)
    (root / "work" / "sub" / "private" / "k.txt").write_text("CARVED-OUT")
    (root / "work" / "sub" / "ro" / "r.txt").write_text("READ-ONLY")
    (root / "work" / "a.txt").write_text("plain")
    return root


# -- 1. '..' after a symlink, and a single-file grant turned into a folder ----------------------------

def test_single_file_grant_cannot_become_a_folder_and_reach_the_root(tree: Path) -> None:
    sandbox = Sandbox(["filesystem:write:/out.txt"], root=tree)
    result = py(sandbox, ATTEMPTS + r'''
attempt("rm", lambda: os.remove('/out.txt'))
attempt("mkdir", lambda: os.mkdir('/out.txt'))
attempt("symlink", lambda: os.symlink('../docs', '/out.txt/l'))
attempt("read", lambda: open('/out.txt/l/../secret.txt').read())
attempt("read2", lambda: open('/docs/secret.txt').read())
attempt("list", lambda: os.listdir('/'))
attempt("sibling", lambda: open('/secret.txt').read())
with open('/out.txt', 'w') as f:
    f.write('written')
''')
    assert "SECRET" not in result.stdout
    for label in ("rm", "mkdir", "symlink", "read", "read2", "list", "sibling"):
        assert f"{label} OK" not in result.stdout, result.stdout
    assert (tree / "out.txt").read_text() == "written"  # the grant itself still works
    assert sorted(p.name for p in tree.iterdir()) == ["docs", "out.txt", "secret.txt", "work"]
    # no record names a path that was never opened
    assert not any(e.resolved == "/out.txt/secret.txt" for e in result.events)
    assert "unlink /out.txt" in denied(result)


def test_a_single_file_grant_mounts_only_that_file(tree: Path) -> None:
    sandbox = Sandbox(["filesystem:read:/docs/secret.txt"], root=tree)
    (mount,) = sandbox.mounts
    assert mount.file_mount and mount.files == (("/docs/secret.txt", str(tree / "docs" / "secret.txt")),)
    (tree / "docs" / "other.txt").write_text("OTHER")
    result = py(sandbox, ATTEMPTS + r'''
attempt("granted", lambda: open('/docs/secret.txt').read())
attempt("sibling", lambda: open('/docs/other.txt').read())
attempt("list", lambda: os.listdir('/docs'))
''')
    assert "granted OK 'DOCS-SECRET'" in result.stdout
    assert "sibling OK" not in result.stdout and "list OK" not in result.stdout


def test_a_write_grant_on_a_missing_file_creates_exactly_that_file(tree: Path) -> None:
    sandbox = Sandbox(["filesystem:write:/nope"], root=tree)
    assert not (tree / "nope").exists()  # planning creates nothing
    result = py(sandbox, ATTEMPTS + r'''
attempt("write", lambda: open('/nope', 'w').write('made'))
attempt("list", lambda: os.listdir('/'))
attempt("other", lambda: open('/docs/secret.txt').read())
attempt("new", lambda: open('/other', 'w').write('x'))
''')
    assert "write OK 4" in result.stdout
    assert "list OK" not in result.stdout and "other OK" not in result.stdout and "new OK" not in result.stdout
    assert (tree / "nope").read_text() == "made"
    assert not (tree / "other").exists()
    mount_events = [e for e in result.events if e.action == "mount"]
    assert mount_events[0].detail["created"] == ["/nope"]


def test_a_read_grant_on_a_missing_file_is_refused(tree: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        Sandbox(["filesystem:read:/missing.txt"], root=tree)


# -- 2. a carve-out bypassed with a symlink and '..' ---------------------------------------------------

CARVE = ["filesystem:write:/work", "!filesystem:read:/work/sub/private"]


def test_the_guest_cannot_plant_a_symlink_into_a_carve_out(tree: Path) -> None:
    result = py(Sandbox(CARVE, root=tree), ATTEMPTS + r'''
attempt("symlink", lambda: os.symlink('sub/private', '/work/l'))
attempt("read", lambda: open('/work/l/../private/k.txt').read())
''')
    assert "CARVED-OUT" not in result.stdout and "symlink OK" not in result.stdout
    assert not os.path.lexists(tree / "work" / "l")
    assert "symlink /work/l" in denied(result)


def test_a_host_symlink_then_dotdot_cannot_reach_a_carve_out(tree: Path) -> None:
    os.symlink("sub/private", tree / "work" / "l")  # placed by the host (or an earlier run)
    result = py(Sandbox(CARVE, root=tree), ATTEMPTS + r'''
attempt("dotdot", lambda: open('/work/l/../private/k.txt').read())
attempt("direct", lambda: open('/work/l/k.txt').read())
attempt("list", lambda: os.listdir('/work/l'))
''')
    assert "CARVED-OUT" not in result.stdout and " OK" not in result.stdout
    # the record names where the path really led, never the textual /work/private/k.txt
    assert all(e.resolved != "/work/private/k.txt" for e in result.events)
    assert any(r.startswith("open /work/sub/private") for r in denied(result)), denied(result)


# -- 3. renaming an ancestor of a carve-out ------------------------------------------------------------

def test_renaming_an_ancestor_does_not_lift_a_read_carve_out(tree: Path) -> None:
    result = py(Sandbox(CARVE, root=tree), ATTEMPTS + r'''
attempt("rename", lambda: os.rename('/work/sub', '/work/moved'))
attempt("read", lambda: open('/work/moved/private/k.txt').read())
attempt("rename-in", lambda: os.rename('/work/sub/private', '/work/p2'))
''')
    assert "CARVED-OUT" not in result.stdout and "rename OK" not in result.stdout and "rename-in OK" not in result.stdout
    assert (tree / "work" / "sub" / "private" / "k.txt").read_text() == "CARVED-OUT"
    assert "rename /work/sub" in denied(result)


def test_renaming_an_ancestor_does_not_lift_a_write_carve_out(tree: Path) -> None:
    policy = ["filesystem:write:/work", "!filesystem:write:/work/sub/ro"]
    result = py(Sandbox(policy, root=tree), ATTEMPTS + r'''
attempt("rename", lambda: os.rename('/work/sub', '/work/moved'))
attempt("write", lambda: open('/work/moved/ro/r.txt', 'w').write('pwned'))
attempt("rename-file", lambda: os.rename('/work/sub/ro/r.txt', '/work/r.txt'))
attempt("replace", lambda: (open('/work/x', 'w').write('pwned'), os.rename('/work/x', '/work/sub/ro/r.txt')))
attempt("read", lambda: open('/work/sub/ro/r.txt').read())
''')
    assert (tree / "work" / "sub" / "ro" / "r.txt").read_text() == "READ-ONLY"
    assert "read OK 'READ-ONLY'" in result.stdout  # reading the write-protected file stays allowed
    for label in ("rename", "write", "rename-file", "replace"):
        assert f"{label} OK" not in result.stdout


def test_renaming_a_folder_is_allowed_when_no_rule_tells_its_contents_apart(tree: Path) -> None:
    (tree / "work" / "free" / "deep").mkdir(parents=True)
    (tree / "work" / "free" / "deep" / "f.txt").write_text("mine")
    result = py(Sandbox(CARVE, root=tree), ATTEMPTS + r'''
attempt("rename", lambda: os.rename('/work/free', '/work/renamed'))
attempt("read", lambda: open('/work/renamed/deep/f.txt').read())
''')
    assert "rename OK" in result.stdout and "read OK 'mine'" in result.stdout


def test_a_folder_descriptor_follows_a_rename(tree: Path) -> None:
    """A folder opened before a rename is judged by its new place afterwards (here: a glob deny)."""
    (tree / "work" / "d").mkdir()
    policy = ["filesystem:write:/work", "!filesystem:read:/work/locked/*.key"]
    result = py(Sandbox(policy, root=tree), ATTEMPTS + r'''
fd = os.open('/work/d', os.O_RDONLY | os.O_DIRECTORY)
attempt("rename", lambda: os.rename('/work/d', '/work/locked'))
attempt("create", lambda: os.close(os.open('k.key', os.O_CREAT | os.O_WRONLY, dir_fd=fd)))
''')
    assert "rename OK" in result.stdout
    assert "create OK" not in result.stdout
    assert not (tree / "work" / "locked" / "k.key").exists()


# -- 4. calls on a descriptor ---------------------------------------------------------------------------

def test_descriptor_calls_obey_the_rules_of_the_path_they_were_opened_for(tree: Path) -> None:
    protected = tree / "work" / "sub" / "ro" / "r.txt"
    before = protected.stat().st_mtime_ns
    policy = ["filesystem:write:/work", "!filesystem:write:/work/sub/ro"]
    result = py(Sandbox(policy, root=tree), ATTEMPTS + r'''
fd = os.open('/work/sub/ro/r.txt', os.O_RDONLY)
attempt("utime-path", lambda: os.utime('/work/sub/ro/r.txt', (0, 0)))
attempt("utime-fd", lambda: os.utime(fd, (0, 0)))
attempt("truncate-fd", lambda: os.truncate(fd, 0))
attempt("read", lambda: os.read(fd, 100))
''')
    assert protected.stat().st_mtime_ns == before and protected.read_text() == "READ-ONLY"
    assert "utime-fd OK" not in result.stdout and "utime-path OK" not in result.stdout
    assert "read OK b'READ-ONLY'" in result.stdout
    assert [v for v in denied(result) if v.startswith("utimes")] == ["utimes /work/sub/ro/r.txt"] * 2


def test_write_rights_wasmtime_treats_as_write_are_judged_as_write(tree: Path) -> None:
    """FD_DATASYNC alone is not "write" by name, but the guard judges every right that lets a
    descriptor change its file; and a write through a read descriptor is refused (recorded)."""
    from workbench.probes import _wat

    path = "/work/sub/ro/r.txt"
    wat = _wat._resolving_probe(_wat._resolved_open(path, 0, (1 << 1) | (1 << 0)), path)  # FD_READ | FD_DATASYNC
    policy = ["filesystem:write:/work", "!filesystem:write:/work/sub/ro"]
    result = Sandbox(policy, root=tree).run(wat)
    assert any(e.decision == "deny" and e.detail.get("rights") == "write" for e in result.events), fs(result)


# -- 5. a race with the host ------------------------------------------------------------------------------

def test_a_symlink_swapped_by_the_host_never_leaks_a_carve_out(tree: Path) -> None:
    docs = tree / "docs"
    (docs / "a.txt").write_text("public")
    (docs / "private").mkdir()
    (docs / "private" / "p.txt").write_text("PRIVATE")
    os.symlink("a.txt", docs / "cur")
    stop = threading.Event()

    def swap() -> None:
        targets = ("a.txt", "private/p.txt")
        i = 0
        while not stop.is_set():
            i += 1
            tmp = docs / f".cur{i % 2}"
            os.symlink(targets[i % 2], tmp)
            os.replace(tmp, docs / "cur")

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        result = py(Sandbox(["filesystem:read:/docs", "!filesystem:read:/docs/private"], root=tree), r'''
leaked = opened = 0
for _ in range(3000):
    try:
        with open('/docs/cur') as f:
            data = f.read()
    except OSError:
        continue
    opened += 1
    leaked += data == 'PRIVATE'
print(opened, leaked)
''')
    finally:
        stop.set()
        swapper.join()
    opened, leaked = map(int, result.stdout.split())
    assert leaked == 0
    assert opened > 0  # the public target was still readable between swaps


# -- 6. a symlink planted for a later run ---------------------------------------------------------------

def test_a_guest_cannot_plant_a_symlink_that_leaves_its_grant(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("OUTSIDE")
    result = py(Sandbox(["filesystem:write:/work"], root=tree), ATTEMPTS + f'''
attempt("absolute", lambda: os.symlink({str(outside)!r}, '/work/out'))
attempt("relative", lambda: os.symlink('../../outside', '/work/out2'))
attempt("inside", lambda: os.symlink('a.txt', '/work/alias'))
''')
    assert "absolute OK" not in result.stdout and "relative OK" not in result.stdout
    assert "inside OK" in result.stdout
    # granted the whole root: a link climbing above it is still refused (the text is not clamped at /)
    above = py(Sandbox(["filesystem:write:/"], root=tree), ATTEMPTS + "attempt('up', lambda: os.symlink('../outside', '/up'))")
    assert "up OK" not in above.stdout and not os.path.lexists(tree / "up")
    assert not os.path.lexists(tree / "work" / "out") and not os.path.lexists(tree / "work" / "out2")
    assert {"symlink /work/out", "symlink /work/out2"} <= set(denied(result))


def test_mount_planning_never_follows_a_symlink_out_of_the_root(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("OUTSIDE")
    os.symlink(outside, tree / "work" / "out")  # as a guest of an earlier run might have
    os.symlink("../../outside/data.txt", tree / "work" / "file-link")
    with pytest.raises(PolicyError, match="outside the sandbox root"):
        Sandbox(["filesystem:read:/work/out"], root=tree)
    with pytest.raises(PolicyError, match="outside the sandbox root|cannot be reached"):
        Sandbox(["filesystem:read:/work/file-link"], root=tree)
    # planned while the link pointed inside, swapped before the run: refused at the run
    os.remove(tree / "work" / "out")
    (tree / "work" / "out").mkdir()
    sandbox = Sandbox(["filesystem:read:/work/out"], root=tree)
    os.rmdir(tree / "work" / "out")
    os.symlink(outside, tree / "work" / "out")
    with pytest.raises(PolicyError):
        py(sandbox, "print(open('/work/out/data.txt').read())")


def test_an_explicit_host_mapping_may_name_a_folder_outside_the_root(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("OUTSIDE")
    result = py(Sandbox([f"filesystem:read:/ext;host={outside}"], root=tree), "print(open('/ext/data.txt').read())")
    assert result.stdout == "OUTSIDE\n"


# -- 7. a single-file host mapping ------------------------------------------------------------------------

def test_a_single_file_host_mapping_serves_only_that_file(tree: Path, tmp_path: Path) -> None:
    host = tmp_path / "H"
    host.mkdir()
    (host / "settings.json").write_text('{"granted": true}')
    (host / "config.json").write_text("NOT-GRANTED")
    sandbox = Sandbox([f"filesystem:read:/cfg/config.json;host={host / 'settings.json'}"], root=tree)
    result = py(sandbox, ATTEMPTS + r'''
attempt("granted", lambda: open('/cfg/config.json').read())
attempt("sibling", lambda: open('/cfg/settings.json').read())
attempt("list", lambda: os.listdir('/cfg'))
attempt("up", lambda: open('/cfg/../cfg/config.json').read())
''')
    assert "granted OK '{\"granted\": true}'" in result.stdout
    assert "NOT-GRANTED" not in result.stdout
    assert "sibling OK" not in result.stdout and "list OK" not in result.stdout


def test_a_single_file_write_grant_writes_through_to_the_host_file(tree: Path) -> None:
    sandbox = Sandbox(["filesystem:write:/docs/secret.txt"], root=tree)
    result = py(sandbox, "open('/docs/secret.txt', 'a').write(' + more')\nprint(open('/docs/secret.txt').read())")
    assert result.stdout == "DOCS-SECRET + more\n"
    assert (tree / "docs" / "secret.txt").read_text() == "DOCS-SECRET + more"


def test_a_file_that_cannot_be_linked_is_copied_for_reading_and_refused_for_writing(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_link = os.link

    def cross_device(*args: object, **kwargs: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    reader = Sandbox(["filesystem:read:/docs/secret.txt"], root=tree)
    result = py(reader, "print(open('/docs/secret.txt').read())")
    assert result.stdout == "DOCS-SECRET\n"
    assert [e.detail.get("copied") for e in result.events if e.action == "mount"] == [["/docs/secret.txt"]]
    with pytest.raises(PolicyError, match="linking"):
        py(Sandbox(["filesystem:write:/docs/secret.txt"], root=tree), "pass")
    monkeypatch.setattr(os, "link", real_link)


# -- 8. deny globs written above a grant ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("deny", "secret"),
    [
        ("!filesystem:read:/**/*.key", "src/k.key"),
        ("!filesystem:read:/proj/**/.env", "src/.env"),
        ("!filesystem:read:/*/src/private", "src/private/p.txt"),
    ],
)
@pytest.mark.parametrize("order", ["allowed-first", "denied-first"])
def test_deny_globs_above_a_grant_hold_in_any_access_order(tree: Path, deny: str, secret: str, order: str) -> None:
    src = tree / "proj" / "src"
    (src / "private").mkdir(parents=True)
    (src / "a.txt").write_text("ALLOWED")
    (tree / "proj" / secret).write_text("DENIED")
    sandbox = Sandbox(["filesystem:read:/proj/src", deny], root=tree)
    assert sandbox.mounts[0].fine
    paths = ["/proj/src/a.txt", f"/proj/{secret}"]
    if order == "denied-first":
        paths.reverse()
    result = py(sandbox, ATTEMPTS + "".join(f"attempt({p!r}, lambda: open({p!r}).read())\n" for p in paths))
    assert "/proj/src/a.txt OK 'ALLOWED'" in result.stdout
    assert "DENIED" not in result.stdout
    decisions = {e.resolved: e.decision for e in result.events if e.action == "open"}
    assert decisions == {"/proj/src/a.txt": "allow", f"/proj/{secret}": "deny"}


@pytest.mark.parametrize("order", ["allowed-first", "denied-first"])
def test_write_deny_globs_above_a_grant_hold_in_any_access_order(tree: Path, order: str) -> None:
    src = tree / "proj" / "src"
    src.mkdir(parents=True)
    (src / "k.lock").write_text("LOCKED")
    sandbox = Sandbox(["filesystem:write:/proj/src", "!filesystem:write:/**/*.lock"], root=tree)
    steps = ["attempt('a', lambda: open('/proj/src/a.txt', 'w').write('new'))",
             "attempt('lock', lambda: open('/proj/src/k.lock', 'w').write('pwned'))"]
    if order == "denied-first":
        steps.reverse()
    result = py(sandbox, ATTEMPTS + "\n".join(steps))
    assert "lock OK" not in result.stdout and "a OK" in result.stdout
    assert (src / "k.lock").read_text() == "LOCKED"
    assert (src / "a.txt").read_text() == "new"


def test_deny_glob_above_a_grant_holds_for_a_c_guest(tree: Path) -> None:
    src = tree / "proj" / "src"
    src.mkdir(parents=True)
    (src / "a.txt").write_text("ALLOWED")
    (src / "k.key").write_text("DENIED")
    c = r"""#include <stdio.h>
int show(const char *p) { FILE *f = fopen(p, "r"); char b[64] = {0};
  if (!f) { printf("%s refused\n", p); return 1; } fgets(b, sizeof b, f); printf("%s %s\n", p, b); fclose(f); return 0; }
int main(void) { show("/proj/src/a.txt"); show("/proj/src/k.key"); show("/proj/src/a.txt"); return 0; }
"""
    result = Sandbox(["filesystem:read:/proj/src", "!filesystem:read:/**/*.key"], root=tree).run(c, lang="c")
    assert result.stdout.splitlines() == ["/proj/src/a.txt ALLOWED", "/proj/src/k.key refused", "/proj/src/a.txt ALLOWED"]


# -- 9. learn mode's suggestion is data, never code ---------------------------------------------------

def test_learn_mode_suggestions_never_turn_guest_names_into_globs_or_host_mappings(tree: Path, tmp_path: Path) -> None:
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    sandbox = Sandbox([], root=tree, on_violation="audit")
    result = py(sandbox, f'''
import os
open('/docs/*', 'w').write('x')
os.makedirs('/w;host={host_dir}')
open('/w;host={host_dir}/f', 'w').write('y')
open('/docs/semi;colon', 'w').write('z')
open('/docs/plain.txt', 'w').write('p')
''')
    assert result.exit_code == 0, result.stderr
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        suggestion = result.suggestion()
        policy = result.suggested_policy()
    assert policy == suggestion.policy
    caps = policy.to_strings()
    assert "filesystem:write:/docs/plain.txt" in caps
    assert not any("*" in c or ";" in c or "host=" in c for c in caps), caps
    assert {"/docs/*", f"/w;host={host_dir}/f", "/docs/semi;colon"} <= set(suggestion.omitted)
    assert all("*" in path or ";" in path for path in suggestion.omitted)  # the folders made on the way too
    assert caught and "left out" in str(caught[0].message)
    # a sandbox built from the suggestion mounts nothing outside the root
    rebuilt = Sandbox(policy, root=tree)
    assert all(m.host_path.startswith(str(tree)) or m.file_mount for m in rebuilt.mounts)


# -- 10. the interpreter's own housekeeping is not the guest's violation ----------------------------------

def test_a_syntax_error_is_shown_not_hidden_behind_a_filesystem_kill(tree: Path) -> None:
    result = Sandbox([], root=tree, on_violation="kill").run("x = (", lang="python")
    assert result.exit_code == 1
    assert "SyntaxError" in result.stderr
    assert result.violations == []
    assert result.outcome == "exit 1"
    housekeeping = [e for e in result.events if e.category == "runtime"]
    assert housekeeping and housekeeping[0].resolved == "/<string>" and housekeeping[0].decision == "audit"


def test_the_interpreters_build_paths_are_not_guest_violations(tree: Path) -> None:
    code = "import asyncio\nasync def f():\n    return 1\nprint(asyncio.run(f()))\n"
    result = Sandbox(["filesystem:read:/docs"], root=tree).run(code, lang="python")
    assert [v for v in result.violations if v.kind == "filesystem"] == []
    assert all(e.category == "runtime" for e in result.events if e.resolved and "build-staging" in e.resolved)


def test_a_guest_reading_its_own_source_name_where_granted_is_a_normal_read(tree: Path) -> None:
    (tree / "<string>").write_text("a file really called <string>")
    result = Sandbox(["filesystem:read:/"], root=tree).run("print(open('/<string>').read())", lang="python")
    assert result.stdout == "a file really called <string>\n"
