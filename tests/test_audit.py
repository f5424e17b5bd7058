"""AuditLog: records, chain, resume, rotation, torn-tail recovery, concurrency (workbench/audit/)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import workbench.audit as audit
from workbench.audit import GENESIS_HASH, AuditLog, VerifyResult, canonical_json, scrub_detail
from workbench.audit.files import head_path, rotated_path
from workbench.audit.record import RECORD_FIELDS, build_record, record_problem, to_microseconds
from workbench.events import Event, EventBus, Sample


def ev(i: int = 0, **kw) -> Event:
    base = dict(run_id="run-1", category="filesystem", action="open", target=f"/docs/f{i}.txt",
                module="main", ts=1_700_000_000.0 + i, detail={"i": i})
    base.update(kw)
    return Event(**base)


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


# -- the public surface ---------------------------------------------------------------------------

def test_all_names_are_exported_and_nothing_else_is_public():
    for name in audit.__all__:
        assert getattr(audit, name) is not None, name
    public = {n for n in dir(audit) if not n.startswith("_")}
    submodules = {"log", "record", "verify", "files", "frames", "forensics", "commands", "keys", "checkpoint",
                  "annotations", "reading", "verify_result", "frame_columns", "segments", "review"}
    assert public - submodules - {"TYPE_CHECKING", "Any"} == set(audit.__all__)


def test_importing_the_log_does_not_import_pandas():
    code = "import sys, workbench.audit; assert 'pandas' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


# -- the record -----------------------------------------------------------------------------------

def test_record_has_every_field_and_the_hash_is_sha256_of_prev_plus_rfc8785_body(tmp_path):
    import rfc8785

    log = AuditLog(tmp_path / "audit.jsonl")
    rec = log.append(ev(0, errno=2, decision="deny", capability=None, reason="not granted",
                        detail={"ratio": 0.1, "é": [1, None, True]}))
    assert list(rec) != [] and set(rec) == set(RECORD_FIELDS)
    assert rec["v"] == 2 and rec["seq"] == 0 and rec["prev_hash"] == "0" * 64 == GENESIS_HASH
    assert rec["ts"] == 1_700_000_000_000_000 and isinstance(rec["ts"], int)
    assert rec["mac"] is None  # an unkeyed log
    body = {k: v for k, v in rec.items() if k not in ("hash", "mac")}
    assert rec["hash"] == hashlib.sha256(rec["prev_hash"].encode() + rfc8785.dumps(body)).hexdigest()
    # the line on disk is the RFC 8785 form of the whole record
    assert (tmp_path / "audit.jsonl").read_bytes() == rfc8785.dumps(rec) + b"\n" == canonical_json(rec) + b"\n"


def test_timestamps_are_integer_microseconds():
    assert to_microseconds(1.5) == 1_500_000
    assert to_microseconds(1_700_000_000.123456) == 1_700_000_000_123_456


def test_secret_named_detail_keys_are_never_written(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    detail = {"name": "MODE", "value": "s3cr3t", "env_value": "s3cr3t", "fileContents": "s3cr3t",
              "data": "s3cr3t", "api-token": "s3cr3t", "Password": "s3cr3t", "secret": "s3cr3t",
              "nested": {"contents": "s3cr3t", "size": 3}, "list": [{"token": "s3cr3t"}], "bytes": 12}
    rec = log.append(ev(detail=detail))
    raw = (tmp_path / "audit.jsonl").read_text()
    assert "s3cr3t" not in raw
    assert rec["detail"]["name"] == "MODE" and rec["detail"]["bytes"] == 12
    assert rec["detail"]["nested"] == {"size": 3}
    assert rec["detail"]["redacted"] == sorted(
        ["value", "env_value", "fileContents", "data", "api-token", "Password", "secret",
         "nested.contents", "list.token"])


def test_scrub_keeps_harmless_keys_and_makes_values_json_safe():
    out = scrub_detail({"bytes": b"abc", "nan": float("nan"), "path": Path("/x"), "tags": {"b", "a"},
                        "metadata": 1, "update": 2})
    assert out == {"bytes": "<3 bytes>", "nan": "nan", "path": "/x", "tags": ["a", "b"],
                   "metadata": 1, "update": 2}
    assert scrub_detail(None) == {} and scrub_detail({}) == {}


def test_undecodable_path_is_still_logged_not_dropped(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    target = b"/docs/\xff\xfe".decode("utf-8", "surrogateescape")
    rec = log.append(ev(target=target))
    assert rec["target"] == "/docs/\\udcff\\udcfe"
    assert log.verify().ok


def test_record_problem_names_what_is_wrong():
    rec, line = build_record(ev().to_dict(), 0, GENESIS_HASH)
    body = line[:-1]
    assert record_problem(rec, body) is None
    assert record_problem([], body) == "not a JSON object"
    assert record_problem({**rec, "seq": 1}, body) == "hash mismatch"
    assert record_problem({k: v for k, v in rec.items() if k != "detail"}, body) == "missing field 'detail'"
    assert record_problem(rec, body.replace(b'"v":2', b'"v":2.0')) == "not in canonical form"
    assert record_problem({**rec, "v": 3}, body) == "unsupported schema version 3"
    assert record_problem({**rec, "mac": "x"}, body) == "mac is not null or 64 hex digits"


# -- chain, resume, subscriber --------------------------------------------------------------------

def test_clean_log_chains_and_verifies(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    recs = [log.append(ev(i)) for i in range(10)]
    assert [r["seq"] for r in recs] == list(range(10))
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(recs, recs[1:], strict=False))
    result = log.verify()
    assert isinstance(result, VerifyResult)
    assert result and result.ok and result.records == 10 and result.first_bad is None
    assert list(log.records()) == recs
    assert str(result).startswith("ok: 10 records")


def test_resume_after_reopen_keeps_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        last = [log.append(ev(i)) for i in range(3)][-1]
    reopened = AuditLog(path)
    rec = reopened.append(ev(3))
    assert rec["seq"] == 3 and rec["prev_hash"] == last["hash"]
    assert reopened.verify().records == 4


def test_two_instances_on_one_file_share_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    a, b = AuditLog(path), AuditLog(path)
    for i in range(6):
        (a if i % 2 else b).append(ev(i))
    assert [r["seq"] for r in a.records()] == list(range(6))
    assert a.verify().ok


def test_audit_log_is_an_event_bus_subscriber(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    bus = EventBus()
    bus.subscribe(log)
    bus.publish(ev(0))
    bus.publish(Sample(run_id="run-1", wall_seconds=0.1, memory_bytes=10))
    bus.publish(ev(1, decision="deny"))
    assert bus.errors == []
    assert [r["decision"] for r in log.records()] == ["allow", "deny"]
    with pytest.raises(TypeError):
        log("not an event")  # type: ignore[arg-type]


def test_reading_never_creates_files(tmp_path):
    log = AuditLog(tmp_path / "nothing.jsonl")
    assert log.verify().ok and log.verify().records == 0
    assert list(log.records()) == []
    assert list(tmp_path.iterdir()) == []


def test_bad_max_bytes_is_refused(tmp_path):
    with pytest.raises(ValueError, match="max_bytes"):
        AuditLog(tmp_path / "a.jsonl", max_bytes=0)


def test_threads_append_without_losing_or_reordering(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")

    def worker(k: int) -> None:
        for i in range(100):
            log.append(ev(i, run_id=f"t{k}"))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = log.verify()
    assert result.ok and result.records == 400


CHILD_WRITER = """
import sys
from workbench.audit import AuditLog
from workbench.events import Event
log = AuditLog(sys.argv[1], max_bytes=int(sys.argv[3]) or None)
for i in range(int(sys.argv[2])):
    log.append(Event(run_id=sys.argv[4], category="env", action="get", target=f"V{i}"))
"""


@pytest.mark.parametrize("max_bytes", [0, 20_000])
def test_processes_share_one_chain(tmp_path, max_bytes):
    path = tmp_path / "audit.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", CHILD_WRITER, str(path), "300", str(max_bytes), f"p{k}"])
             for k in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    result = AuditLog(path).verify()
    assert result.ok, result.reason
    assert result.records == 600
    if max_bytes:
        assert len(result.files) > 3


# -- rotation -------------------------------------------------------------------------------------

def rotated_log(tmp_path: Path, n: int = 20, max_bytes: int = 1500) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=max_bytes)
    for i in range(n):
        log.append(ev(i))
    return log


def test_rotation_names_files_oldest_first_and_keeps_the_chain(tmp_path):
    log = rotated_log(tmp_path)
    files = log.files()
    assert files[-1] == tmp_path / "audit.jsonl"
    assert files[:-1] == [tmp_path / f"audit.{k}.jsonl" for k in range(1, len(files))]
    assert len(files) >= 4
    assert all(f.stat().st_size <= 1500 for f in files)
    seqs = [r["seq"] for r in log.records()]
    assert seqs == list(range(20))
    first_of_second = json.loads(lines(files[1])[0])
    last_of_first = json.loads(lines(files[0])[-1])
    assert first_of_second["prev_hash"] == last_of_first["hash"]
    result = log.verify()
    assert result.ok and result.records == 20 and len(result.files) == len(files)


def test_rotation_resumes_after_reopen(tmp_path):
    rotated_log(tmp_path, 10).close()
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=1500)
    assert log.append(ev(10))["seq"] == 10
    # a live file that was just rotated away (empty) resumes from the newest rotated file
    live = tmp_path / "audit.jsonl"
    number = len(log.files())
    log.close()
    live.rename(rotated_path(live, number))
    log = AuditLog(live, max_bytes=1500)
    rec = log.append(ev(11))
    assert rec["seq"] == 11
    assert log.verify().ok


def test_a_record_bigger_than_max_bytes_gets_a_file_of_its_own(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=600)
    log.append(ev(0))
    log.append(ev(1, detail={"note": "x" * 2000}))
    log.append(ev(2))
    assert [len(lines(f)) for f in log.files()] == [1, 1, 1]
    assert log.verify().ok


def test_deleting_a_rotated_file_in_the_middle_is_detected(tmp_path):
    log = rotated_log(tmp_path)
    gone = tmp_path / "audit.2.jsonl"
    first_seq_after = json.loads(lines(tmp_path / "audit.3.jsonl")[0])["seq"]
    gone.unlink()
    result = log.verify()
    assert not result.ok
    assert result.first_bad == (tmp_path / "audit.3.jsonl", 1, first_seq_after)
    assert "seq gap" in result.reason and "audit.2.jsonl missing" in result.reason


def test_deleting_the_oldest_rotated_file_is_detected(tmp_path):
    log = rotated_log(tmp_path)
    (tmp_path / "audit.1.jsonl").unlink()
    result = log.verify()
    assert not result.ok and result.first_bad.line == 1
    assert "does not start at seq 0" in result.reason


def test_cutting_a_rotated_file_short_is_detected(tmp_path):
    log = rotated_log(tmp_path)
    first = tmp_path / "audit.1.jsonl"
    first.write_bytes(b"".join(lines(first)[:-1]))
    result = log.verify()
    assert not result.ok and result.first_bad.file == tmp_path / "audit.2.jsonl"
    assert "audit.1.jsonl ends early" in result.reason


# -- torn tails, the head file --------------------------------------------------------------------

def test_torn_last_line_is_reported_then_recovered_on_reopen(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        for i in range(5):
            log.append(ev(i))
    torn = b'{"action":"open","caller_chain":[],"capa'
    with open(path, "ab") as f:
        f.write(torn)
    result = AuditLog(path).verify()
    assert not result.ok
    assert result.first_bad == (path, 6, None)
    assert result.reason.startswith(f"torn last line: {len(torn)} bytes without newline")
    assert result.records == 5

    log = AuditLog(path)
    rec = log.append(ev(5))
    raw = lines(path)
    assert raw[5] == torn + b"\n"  # the torn bytes stay, as evidence
    recovered = json.loads(raw[6])
    assert (recovered["category"], recovered["action"], recovered["decision"]) == ("lifecycle", "recovered", "audit")
    assert recovered["seq"] == 5 and rec["seq"] == 6
    offset = sum(len(x) for x in raw[:5])
    assert recovered["detail"]["torn"] == [
        {"offset": offset, "bytes": len(torn), "sha256": hashlib.sha256(torn).hexdigest()}]
    result = log.verify()
    assert result.ok and result.records == 7
    assert any("torn line" in n for n in result.notes)
    assert [r["seq"] for r in log.records()] == list(range(7))


def test_a_whole_record_that_lost_only_its_newline_is_completed(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(3):
        log.append(ev(i))
    log.close()
    path.write_bytes(path.read_bytes()[:-1])
    result = AuditLog(path).verify()
    assert not result.ok and result.first_bad.line == 3 and result.reason.startswith("torn last line")
    log = AuditLog(path)
    assert log.append(ev(3))["seq"] == 3
    result = log.verify()
    assert result.ok and result.records == 4 and not result.notes
    assert [r["action"] for r in log.records()] == ["open"] * 4


def test_a_recovered_record_cannot_excuse_other_bytes(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append(ev(0))
    with open(path, "ab") as f:
        f.write(b'{"act')
    log = AuditLog(path)
    log.append(ev(1))
    log.close()
    raw = lines(path)
    raw[1] = b'{"acx\n'  # change the torn bytes the recovered record vouches for
    path.write_bytes(b"".join(raw))
    result = AuditLog(path).verify()
    assert not result.ok and result.first_bad.line == 2 and "not valid JSON" in result.reason


def test_torn_recovery_write_itself_torn_is_recovered_next_time(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append(ev(0))
    log.close()
    with open(path, "ab") as f:
        f.write(b'{"act' + b'\n{"action":"recov')  # a crash, then a crash during the recovery write
    log = AuditLog(path)
    log.append(ev(1))
    result = log.verify()
    assert result.ok, result.reason
    torn = json.loads(lines(path)[3])["detail"]["torn"]
    assert [t["bytes"] for t in torn] == [5, 16]


def test_cut_at_a_line_boundary_is_caught_by_the_head_file(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(5):
        log.append(ev(i))
    log.close()
    raw = lines(path)
    path.write_bytes(b"".join(raw[:3]))
    result = AuditLog(path).verify()
    assert not result.ok and result.first_bad == (path, 4, 3)
    assert result.reason.startswith("file ends early") and "2 records missing" in result.reason
    # the writer does not paper over the cut: the next record keeps the gap visible
    rec = AuditLog(path).append(ev(5))
    assert rec["seq"] == 5
    again = AuditLog(path).verify()
    assert not again.ok and again.first_bad == (path, 4, 5) and "seq gap" in again.reason


def test_without_a_head_file_verify_says_what_it_cannot_see(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append(ev(0))
    head_path(path).unlink()
    result = AuditLog(path).verify()
    assert result.ok and any("no head file" in n for n in result.notes)


def test_an_altered_head_file_fails_verify(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append(ev(0))
    log.append(ev(1))
    head = head_path(path)
    head.write_bytes(head.read_bytes().replace(b'"seq":1', b'"seq":0'))
    result = AuditLog(path).verify()
    assert not result.ok and "differs from the head file" in result.reason
    head.write_bytes(b"garbage")
    result = AuditLog(path).verify()
    assert not result.ok and "head file" in result.reason and result.first_bad is None


def test_fsync_mode_writes_the_same_chain(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", fsync=True, max_bytes=2000)
    for i in range(8):
        log.append(ev(i))
    assert log.verify().records == 8
    assert "fsync=True" in repr(log)


def test_files_left_open_by_a_dropped_log_are_closed(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(ev(0))
    fds = (log._fd, log._head_fd)
    del log
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
