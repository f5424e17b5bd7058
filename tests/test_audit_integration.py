"""The audit log as a subscriber of real runs: what the guard decided is what the log keeps."""

from __future__ import annotations

from pathlib import Path

from workbench import probes
from workbench.audit import AuditLog
from workbench.runtime import Sandbox

ESCAPES = {
    "dotdot": probes.read_file("../secret.txt"),
    "absolute": probes.read_file("/etc/passwd"),
    "root-itself": probes.read_file(".."),
    "write-under-read": probes.write_file("new.txt"),
    "through-root": probes.read_file("secret.txt", dirfd=4),
}


def test_every_denied_attempt_and_every_allowed_open_is_logged(workspace: Path, tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    sandbox = Sandbox(["filesystem:read:/docs"], root=workspace, audit=log)
    results = {name: sandbox.run(source, name=name) for name, source in ESCAPES.items()}
    allowed = sandbox.run(probes.read_file("readme.txt"), name="allowed")
    df = log.frame()
    assert log.verify().ok

    for name, result in results.items():
        denied = [e for e in result.events if e.decision == "deny"]
        assert denied, f"{name}: the guard recorded no denial"
        rows = df[(df.run_id == result.run_id) & (df.decision == "deny")]
        assert len(rows) == len(denied), name
        for _, row in rows.iterrows():
            assert row.category == "filesystem"
            assert isinstance(row.reason, str) and row.reason, f"{name}: no reason"
            assert row.errno != 0

    opens = df[(df.run_id == allowed.run_id) & (df.action == "open")]
    assert list(zip(opens.decision, opens.resolved, opens.capability, opens.errno)) == [
        ("allow", "/docs/readme.txt", "filesystem:read:/docs", 0)
    ]
    # the log holds exactly the runs' events: nothing lost, nothing added
    assert len(df) == sum(len(r.events) for r in [*results.values(), allowed])


def test_limit_violations_and_lifecycle_are_logged(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    result = Sandbox(["memory:limit:1MB"], audit=log).run(probes.memory_bomb(), name="bomb")
    df = log.frame()
    assert list(df.action) == [e.action for e in result.events]
    violation = df[df.decision == "deny"].iloc[0]
    assert (violation.category, violation.capability) == ("memory", "memory:limit:1MB")
    assert set(df.module) == {"bomb"}
    assert (df.module_sha256 == result.module_sha256).all()


def test_environment_values_never_reach_the_log(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    Sandbox(["env:set:API_TOKEN=hunter2-secret"], audit=log).run(probes.print_environ())
    text = (tmp_path / "audit.jsonl").read_text()
    assert "API_TOKEN" in text  # the name is recorded ...
    assert "hunter2-secret" not in text  # ... its value never
