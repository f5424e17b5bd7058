"""Adversarial filesystem tests: the guest tries to get out of its grants and cannot.

Every probe calls WASI ``path_open``/``path_link`` directly, as a guest's libc
would; ``dirfd=3`` is the first preopened (granted) folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import probes
from workbench.runtime import Sandbox

from helpers import REFUSED, assert_refused, errno_of  # noqa: F401


def test_granted_read_works(workspace: Path) -> None:
    result = Sandbox(["filesystem:read:/docs"], root=workspace).run(probes.read_file("readme.txt"))
    assert result.ok, result
    assert result.stdout == "ok: public notes\n\n"


def test_mount_summary_shows_guest_and_host(workspace: Path) -> None:
    sandbox = Sandbox(["filesystem:read:/docs", "filesystem:write:/out"], root=workspace)
    shown = [str(m) for m in sandbox.mounts]
    assert f"/docs → {workspace / 'docs'} (read-only)" in shown
    assert f"/out → {workspace / 'out'} (read-write)" in shown


def test_write_under_read_grant_is_denied(workspace: Path) -> None:
    result = Sandbox(["filesystem:read:/docs"], root=workspace).run(probes.write_file("new.txt"))
    assert_refused(result)
    assert not (workspace / "docs" / "new.txt").exists()
    overwrite = Sandbox(["filesystem:read:/docs"], root=workspace).run(probes.write_file("readme.txt", "pwned"))
    assert_refused(overwrite)
    assert (workspace / "docs" / "readme.txt").read_text() == "public notes\n"


def test_write_under_write_grant_works(workspace: Path) -> None:
    result = Sandbox(["filesystem:write:/out"], root=workspace).run(probes.write_file("made.txt", "hi\n"))
    assert result.ok, result
    assert (workspace / "out" / "made.txt").read_text() == "hi\n"


def test_dotdot_is_denied(workspace: Path) -> None:
    sandbox = Sandbox(["filesystem:read:/docs"], root=workspace)
    assert_refused(sandbox.run(probes.read_file("../secret.txt")), "TOP-SECRET")
    assert_refused(sandbox.run(probes.read_file("sub/../../secret.txt")), "TOP-SECRET")
    refused = sandbox.run(probes.read_file("../secret.txt"))
    violation = refused.violations[0]
    # what the guest asked for (relative to its /docs descriptor) and where that leads in the guest
    assert (violation.target, violation.resolved, violation.where) == ("../secret.txt", "/secret.txt", "/secret.txt")


@pytest.mark.parametrize("path", ["/etc/passwd", "/secret.txt", "ABSOLUTE"])
def test_absolute_paths_are_denied(workspace: Path, path: str) -> None:
    if path == "ABSOLUTE":
        path = str(workspace / "secret.txt")
    result = Sandbox(["filesystem:read:/docs"], root=workspace).run(probes.read_file(path))
    assert_refused(result, "TOP-SECRET", "root:")


def test_workspace_root_is_not_reachable_when_only_a_subfolder_is_granted(workspace: Path) -> None:
    sandbox = Sandbox(["filesystem:read:/docs"], root=workspace)
    assert_refused(sandbox.run(probes.read_file("..")))  # the root folder itself
    # "/" is an empty read-only stand-in (fd 4 here), so the attempt reaches the guard and is refused
    through_root = sandbox.run(probes.read_file("secret.txt", dirfd=4))
    assert_refused(through_root, "TOP-SECRET")
    assert [(v.target, v.event.resolved) for v in through_root.violations] == [("secret.txt", "/secret.txt")]
    # and with no grant at all there is no folder with anything in it
    assert_refused(Sandbox(root=workspace).run(probes.read_file("secret.txt")), "TOP-SECRET")
    assert_refused(Sandbox(root=workspace).run(probes.read_file("docs/readme.txt")), "public")


@pytest.mark.parametrize("link", ["escape", "abs-escape"])
def test_symlink_pointing_outside_is_denied(workspace: Path, link: str) -> None:
    sandbox = Sandbox(["filesystem:read:/docs"], root=workspace)
    assert_refused(sandbox.run(probes.read_file(link)), "TOP-SECRET")
    assert_refused(sandbox.run(probes.read_file(link, follow_symlinks=False)), "TOP-SECRET")


def test_guest_cannot_make_a_hard_link_to_an_outside_file(workspace: Path) -> None:
    """Creating a hard link needs both names inside preopens, so the guest cannot
    link to a file outside its grants, even with a write grant."""
    sandbox = Sandbox(["filesystem:write:/out"], root=workspace)
    for target in ("../secret.txt", str(workspace / "secret.txt"), "/secret.txt"):
        assert_refused(sandbox.run(probes.link_file(target, "stolen")))
    assert not (workspace / "out" / "stolen").exists()


def test_host_made_hard_link_shows_what_happens_and_why_it_is_safe(workspace: Path) -> None:
    """A hard link is not a pointer but a second name of the same file.  One that the
    *host* placed inside a granted folder is part of that folder, so the guest reads it,
    exactly as it would read a copy: the host granted it.  It is safe because:

    - the guest cannot create such a link itself (the test above);
    - under a read grant, it cannot write through it: the outside name is unchanged;
    - it leads nowhere else: the guest gains no name, folder or descriptor outside.
    """
    sandbox = Sandbox(["filesystem:read:/docs"], root=workspace)
    read = sandbox.run(probes.read_file("hardlink"))
    assert read.stdout == "ok: LINKED-SECRET\n\n"  # what happens: the granted name is readable
    assert_refused(sandbox.run(probes.write_file("hardlink", "tampered")))
    assert (workspace / "outside" / "linked.txt").read_text() == "LINKED-SECRET\n"
    assert_refused(sandbox.run(probes.read_file("../outside/linked.txt")), "LINKED-SECRET")


def test_tmp_is_a_private_scratch_per_run(workspace: Path) -> None:
    sandbox = Sandbox(["filesystem:write:/tmp"], root=workspace)
    assert sandbox.run(probes.write_file("note.txt", "first run\n")).ok
    second = sandbox.run(probes.read_file("note.txt"))
    assert_refused(second)  # a new run gets a new, empty /tmp
    assert not (workspace / "tmp").exists()  # and it is not <root>/tmp


def test_no_grant_means_no_filesystem(workspace: Path) -> None:
    result = Sandbox(root=workspace).run(probes.read_file("readme.txt"))
    assert_refused(result)
    assert result.mounts == ()
    assert result.violations[0].message == "no filesystem grant covers '/readme.txt'"


def test_host_param_maps_a_guest_path_to_any_folder(workspace: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "data.txt").write_text("mapped\n")
    sandbox = Sandbox([f"filesystem:read:/data;host={other}"], root=workspace)
    assert sandbox.run(probes.read_file("data.txt")).stdout == "ok: mapped\n\n"
    assert sandbox.mounts[0].guest_path == "/data"


def test_violation_messages_show_guest_paths_not_host_paths(workspace: Path) -> None:
    result = Sandbox(["filesystem:read:/docs", "memory:limit:1MB"], root=workspace).run(probes.memory_bomb())
    for violation in result.violations:
        assert str(workspace) not in violation.message
