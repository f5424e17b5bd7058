"""The keyed audit chain (issue 10, point 4): forgeries, keys, the canonical form, schema v1.

The forger here can write every file of the log and knows the format, but not
the key.  Unkeyed, each of the three forgeries of observation 4 passes
``verify()``: that is the documented limit of an unkeyed log (it catches
accidents and careless edits, not a forger with write access).  Keyed, each fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.audit import AuditKey, AuditLog, canonical_json
from workbench.audit.files import encode_head, head_path, read_head
from workbench.audit.record import SAFE_INTEGER, build_record, record_problem
from workbench.errors import AuditError, AuditKeyError
from workbench.events import Event

KEY = AuditKey(b"a test key, 32 bytes long ......")
FILES = Path(__file__).parent / "files"


def event(i: int) -> Event:
    return Event(run_id=f"run-{i // 4}", category="filesystem", action="open", target=f"/etc/shadow-{i}",
                 decision="deny" if i % 2 else "allow", errno=2 if i % 2 else 0, module="prowler",
                 detail={"i": i, "ratio": i / 3}, ts=1_700_000_000.5 + i)


def write_log(path: Path, key: AuditKey | None, n: int = 8) -> AuditLog:
    log = AuditLog(path, key=key)
    for i in range(n):
        log.append(event(i))
    log.close()
    return log


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


# -- the forger: the format in full, the key not at all ----------------------------------------------------

def reforge(record: dict[str, Any], prev: str, mac: str | None) -> tuple[dict[str, Any], bytes]:
    """``record`` re-hashed after ``prev``, as a forger without the key writes it (with a made-up ``mac``)."""
    fields = {**record, "ts": record["ts"] / 1e6}
    rebuilt, _ = build_record(fields, record["seq"], prev)  # hash recomputed; no key, so no MAC
    rebuilt["mac"] = mac
    return rebuilt, canonical_json(rebuilt) + b"\n"


def made_up_mac(strategy: str, original: dict[str, Any]) -> str | None:
    """What a forger can put in ``mac``: the old one, random hex, or nothing (pretend the log is unkeyed)."""
    return {"copied": original.get("mac"), "random": secrets.token_hex(32), "none": None}[strategy]


def rewrite_head(path: Path, last: dict[str, Any]) -> None:
    """The head file as the forger can make it: the new seq and hash, and the old head's MAC (or none)."""
    old = read_head(head_path(path))
    head_path(path).write_bytes(encode_head(last["seq"], last["hash"], old.mac if old else None))


def forge_append(path: Path, strategy: str) -> int:
    """Observation 4a: append three records with recomputed hashes (and the head to match).  Returns the first seq."""
    recs = records(path)
    prev, first = recs[-1]["hash"], recs[-1]["seq"] + 1
    with open(path, "ab") as f:
        for k in range(3):
            fields = {**event(100 + k).to_dict(), "decision": "allow", "target": "/docs/harmless"}
            rec, _ = build_record(fields, first + k, prev)
            rec, line = reforge(rec, prev, made_up_mac(strategy, recs[-1]))
            f.write(line)
            prev = rec["hash"]
    rewrite_head(path, records(path)[-1])
    return first


def forge_edit(path: Path, strategy: str) -> int:
    """Observation 4b: turn a deny into an allow, re-hash the chain after it and the head.  Returns its seq."""
    recs = records(path)
    victim = next(i for i, r in enumerate(recs) if r["decision"] == "deny" and i > 0)
    recs[victim]["decision"] = "allow"
    lines = [canonical_json(r) + b"\n" for r in recs[:victim]]
    prev = recs[victim - 1]["hash"]
    for rec in recs[victim:]:
        rec, line = reforge(rec, prev, made_up_mac(strategy, rec))
        lines.append(line)
        prev = rec["hash"]
    path.write_bytes(b"".join(lines))
    rewrite_head(path, records(path)[-1])
    return victim


def forge_cut(path: Path, strategy: str) -> int:
    """Observation 4c: cut the last record and delete the head file.  Returns the seq cut."""
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    head_path(path).unlink()
    return len(lines) - 1


FORGERIES: dict[str, Callable[[Path, str], int]] = {"append": forge_append, "edit": forge_edit, "cut": forge_cut}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_unkeyed_the_forgeries_pass_verify_which_is_the_documented_limit(tmp_path: Path, forgery: str) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=None)
    FORGERIES[forgery](path, "none")
    result = AuditLog(path).verify()
    assert result.ok, result.reason  # a forger with write access wins against an unkeyed log (docs/decisions.md)


@pytest.mark.parametrize("strategy", ["copied", "random", "none"])
@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_keyed_every_forgery_fails_verify(tmp_path: Path, forgery: str, strategy: str) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    assert AuditLog(path, key=KEY).verify().ok
    seq = FORGERIES[forgery](path, strategy)
    result = AuditLog(path).verify(key=KEY)
    assert not result.ok, f"{forgery}/{strategy} was not caught"
    if forgery == "cut":
        assert result.reason.startswith("no head file: a keyed log always has one"), result.reason
    else:
        assert result.first_bad is not None and result.first_bad.seq == seq, result.reason
        assert result.records == seq  # every record before the forged one still verifies
        assert any(word in result.reason for word in ("MAC mismatch", "has no MAC", "key mode changes")), result.reason


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_keyed_a_check_without_the_key_says_it_did_not_authenticate(tmp_path: Path, forgery: str) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    FORGERIES[forgery](path, "copied")
    result = AuditLog(path).verify()  # no key: the same guarantee as an unkeyed log, and it says so
    assert result.ok and not result.authenticated and result.keyed
    assert any("MACs that were not checked" in note for note in result.notes)
    assert "every MAC valid" not in str(result)


def test_a_keyed_log_verifies_with_its_key_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    result = AuditLog(path, key=KEY).verify()
    assert result.ok and result.authenticated and result.keyed and result.records == 8
    assert "every MAC valid for the key" in str(result)
    for rec in records(path):
        assert rec["v"] == 2 and rec["mac"] == KEY.record_mac(rec["hash"])
    head = read_head(head_path(path))
    assert head is not None and head.seq == 7 and head.mac == KEY.head_mac(7, records(path)[-1]["hash"])


def test_another_key_fails_at_the_first_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    result = AuditLog(path).verify(key=AuditKey.generate())
    assert not result.ok and result.first_bad is not None and result.first_bad.seq == 0
    assert "MAC mismatch" in result.reason and "not the log's key" in result.reason


# -- the end of a keyed log ------------------------------------------------------------------------------

def test_keyed_cut_with_the_head_left_ends_early(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-2]))
    result = AuditLog(path).verify(key=KEY)
    assert not result.ok and result.reason.startswith("file ends early") and "2 records missing" in result.reason


def test_keyed_cut_with_a_forged_head_fails(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    forge_cut(path, "copied")
    head_path(path).write_bytes(encode_head(6, records(path)[-1]["hash"], secrets.token_hex(32)))
    result = AuditLog(path).verify(key=KEY)
    assert not result.ok and "head file has no valid MAC" in result.reason


def test_keyed_a_wiped_log_fails(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    path.write_bytes(b"")
    head_path(path).unlink()
    assert not AuditLog(path).verify(key=KEY).ok
    path.unlink()
    assert not AuditLog(path).verify(key=KEY).ok  # nothing at all: no keyed head vouches for "empty"


def test_keyed_an_old_head_put_back_far_behind_fails(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY)
    for i in range(3):
        log.append(event(i))
    old_head = head_path(path).read_bytes()
    for i in range(3, 8):
        log.append(event(i))
    log.close()
    head_path(path).write_bytes(old_head)  # genuine, but five records old
    result = AuditLog(path).verify(key=KEY)
    assert not result.ok and "records behind the log" in result.reason


def test_keyed_cut_back_to_a_saved_head_is_the_documented_limit_and_a_checkpoint_catches_it(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    signer = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY)
    for i in range(5):
        log.append(event(i))
    saved_head, saved_log = head_path(path).read_bytes(), path.read_bytes()
    for i in range(5, 8):
        log.append(event(i))
    checkpoint = log.checkpoint(signer)  # taken by someone else, after the 8 records
    log.close()
    path.write_bytes(saved_log)
    head_path(path).write_bytes(saved_head)  # the forger saved them earlier: a real state of the log
    assert AuditLog(path).verify(key=KEY).ok  # the key alone cannot tell: docs/decisions.md says so
    result = AuditLog(path).verify(key=KEY, checkpoint=checkpoint, public_key=signer.public_key())
    assert not result.ok and "signed checkpoint vouches for seq 7" in result.reason


def test_keyed_a_crash_between_a_record_and_its_head_is_a_note(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY)
    for i in range(4):
        log.append(event(i))
    one_behind = head_path(path).read_bytes()
    log.append(event(4))
    log.close()
    head_path(path).write_bytes(one_behind)  # as if the process died after the record, before the head
    result = AuditLog(path).verify(key=KEY)
    assert result.ok and any("one record behind" in note for note in result.notes)


def test_stripping_the_key_mode_is_caught(tmp_path: Path) -> None:
    """The forger rewrites the whole keyed log as an unkeyed one (every hash and the head recomputed)."""
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    prev, lines = "0" * 64, []
    for rec in records(path):
        rec, line = reforge(rec, prev, None)
        lines.append(line)
        prev = rec["hash"]
    path.write_bytes(b"".join(lines))
    head_path(path).write_bytes(encode_head(7, prev))
    assert AuditLog(path).verify().ok  # a sound unkeyed log ...
    result = AuditLog(path).verify(key=KEY)  # ... but whoever holds the key expects MACs from record 0
    assert not result.ok and result.first_bad is not None and result.first_bad.seq == 0
    assert "has no MAC" in result.reason


def test_the_key_mode_cannot_change_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY, n=4)
    forge_append(path, "none")
    result = AuditLog(path).verify()  # even without the key: a keyed log does not turn unkeyed
    assert not result.ok and "key mode changes" in result.reason and result.first_bad.seq == 4


# -- the writer never continues what it cannot vouch for --------------------------------------------------

def test_the_head_of_a_new_keyed_log_exists_before_its_first_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path, key=KEY).open()
    assert path.read_bytes() == b""
    head = read_head(head_path(path))
    assert head is not None and (head.seq, head.mac) == (-1, KEY.head_mac(-1, "0" * 64))
    assert AuditLog(path).verify(key=KEY).ok


def test_a_writer_refuses_another_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    before = path.read_bytes()
    other = AuditLog(path, key=AuditKey.generate())
    with pytest.raises(AuditKeyError, match="does not match"):
        other.open()
    with pytest.raises(AuditKeyError):
        other.append(event(9))  # still refused: a refusal is not remembered as "checked"
    assert path.read_bytes() == before


def test_a_keyed_writer_refuses_an_unkeyed_log_and_the_reverse(tmp_path: Path) -> None:
    plain, keyed = tmp_path / "plain.jsonl", tmp_path / "keyed.jsonl"
    write_log(plain, key=None)
    write_log(keyed, key=KEY)
    with pytest.raises(AuditError, match="is not keyed"):
        AuditLog(plain, key=KEY).open()
    with pytest.raises(AuditKeyError, match="is keyed"):
        AuditLog(keyed).append(event(9))
    empty_keyed = tmp_path / "empty.jsonl"
    AuditLog(empty_keyed, key=KEY).open()
    with pytest.raises(AuditKeyError, match="is keyed"):
        AuditLog(empty_keyed).open()  # keyed from its head on, before any record


def test_a_keyed_writer_refuses_a_log_whose_head_was_deleted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    forge_cut(path, "copied")
    before = path.read_bytes()
    with pytest.raises(AuditError, match="head file of the keyed audit log .* is missing"):
        AuditLog(path, key=KEY).append(event(9))  # writing on would hide the cut
    assert path.read_bytes() == before and not head_path(path).exists()


def test_a_sandbox_refuses_a_keyed_log_it_cannot_continue(tmp_path: Path) -> None:
    from workbench import Sandbox

    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    with pytest.raises(AuditKeyError):
        Sandbox(audit=AuditLog(path, key=AuditKey.generate()))
    with pytest.raises(AuditKeyError):
        Sandbox(audit=AuditLog(path))


def test_a_keyed_writer_keeps_a_cut_visible(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-2]))
    assert AuditLog(path, key=KEY).append(event(9))["seq"] == 8
    result = AuditLog(path).verify(key=KEY)
    assert not result.ok and "seq gap" in result.reason


def test_keyed_rotation_torn_recovery_and_runs(tmp_path: Path) -> None:
    from workbench import Sandbox, probes

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY, max_bytes=2000)
    for i in range(10):
        log.append(event(i))
    log.close()
    with open(path, "ab") as f:
        f.write(b'{"action":"op')  # a writer killed mid-write
    log = AuditLog(path, key=KEY, max_bytes=2000)
    Sandbox(audit=log).run(probes.hello())
    result = log.verify()
    assert result.ok and result.authenticated, result.reason
    assert len(result.files) > 3 and any("torn line" in n for n in result.notes)
    recovered = [r for r in log.records() if r["action"] == "recovered"]
    assert recovered and recovered[0]["mac"] == KEY.record_mac(recovered[0]["hash"])


KEYED_CHILD = """
import sys
from workbench.audit import AuditKey, AuditLog
from workbench.events import Event
log = AuditLog(sys.argv[1], key=AuditKey.from_env("TEST_AUDIT_KEY"), max_bytes=20_000)
for i in range(200):
    log.append(Event(run_id=sys.argv[2], category="env", action="get", target=f"V{i}"))
"""


def test_processes_share_one_keyed_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    env = {**os.environ, "TEST_AUDIT_KEY": KEY.secret_text().decode()}
    procs = [subprocess.Popen([sys.executable, "-c", KEYED_CHILD, str(path), f"p{k}"], env=env) for k in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    result = AuditLog(path).verify(key=KEY)
    assert result.ok and result.records == 400, result.reason


# -- keys -----------------------------------------------------------------------------------------------

def test_the_key_is_never_written_anywhere(tmp_path: Path) -> None:
    from workbench import Sandbox, probes

    key = AuditKey.generate()
    secret = key.secret_text()
    log = AuditLog(tmp_path / "logs" / "audit.jsonl", key=key, max_bytes=1500)
    for _ in range(3):
        Sandbox(["env:set:A=1"], audit=log).run(probes.print_environ())
    log.close()
    written = b"".join(p.read_bytes() for p in (tmp_path / "logs").iterdir())
    assert len(list((tmp_path / "logs").iterdir())) > 2
    assert secret not in written and secret.hex().encode() not in written
    assert secret.decode() not in repr(log) and secret.decode() not in repr(key)
    assert key.id in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_keys_from_a_file_an_environment_variable_or_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = secrets.token_hex(32)
    (tmp_path / "key").write_text(text + "\n")
    monkeypatch.setenv("WORKBENCH_AUDIT_KEY", text)
    from_file, from_env, from_bytes = AuditKey.from_file(tmp_path / "key"), AuditKey.from_env(), AuditKey(text.encode())
    assert from_file.id == from_env.id == from_bytes.id  # one trailing newline is not part of the key
    assert from_file.record_mac("ab" * 32) == from_env.record_mac("ab" * 32)
    assert AuditLog(tmp_path / "a.jsonl", key=text.encode()).key.id == from_file.id  # type: ignore[union-attr]


@pytest.mark.parametrize("make", ["short", "missing file", "unset variable", "not bytes"])
def test_bad_keys_are_refused_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: str) -> None:
    monkeypatch.delenv("WORKBENCH_AUDIT_KEY", raising=False)
    (tmp_path / "short").write_bytes(b"123456789\n")
    makers = {
        "short": lambda: AuditKey.from_file(tmp_path / "short"),
        "missing file": lambda: AuditKey.from_file(tmp_path / "nope"),
        "unset variable": lambda: AuditKey.from_env(),
        "not bytes": lambda: AuditKey("a string key that is long enough"),  # type: ignore[arg-type]
    }
    with pytest.raises(AuditKeyError) as raised:
        makers[make]()
    assert raised.value.hint and isinstance(raised.value, ValueError)


# -- the canonical form is RFC 8785, whichever path computes it ----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.text() | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-SAFE_INTEGER, max_value=SAFE_INTEGER),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_json_is_rfc8785(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:  # lone surrogates: neither path may write them
        with pytest.raises(ValueError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@settings(max_examples=300, deadline=None)
@given(detail=st.dictionaries(st.text(), json_values | st.integers(), max_size=5), target=st.text(),
       keyed=st.booleans())
def test_every_record_line_is_the_rfc8785_of_the_record(detail: dict[str, Any], target: str, keyed: bool) -> None:
    fields = {**event(1).to_dict(), "detail": detail, "target": target}
    rec, line = build_record(fields, 5, "ab" * 32, KEY if keyed else None)
    assert line == rfc8785.dumps(rec) + b"\n"  # the whole record, hash and mac included
    body = {k: v for k, v in rec.items() if k not in ("hash", "mac")}
    assert rec["hash"] == hashlib.sha256(b"ab" * 32 + rfc8785.dumps(body)).hexdigest()
    assert record_problem(json.loads(line), line[:-1]) is None
    for key, value in detail.items():  # beyond 2**53: written as digits
        if type(value) is int and abs(value) > SAFE_INTEGER and key in rec["detail"]:
            assert rec["detail"][key] == str(value)


def test_non_canonical_spellings_of_json_numbers_are_caught() -> None:
    detail = {"f": 1e21, "g": 1e-7, "h": 100.0, "i": 2.0**53, "j": 1e16}
    rec, line = build_record({**event(3).to_dict(), "detail": detail}, 0, "0" * 64)
    assert b'"f":1e+21' in line and b'"g":1e-7' in line and b'"h":100' in line
    assert b'"i":9007199254740992' in line and b'"j":10000000000000000' in line
    assert record_problem(json.loads(line), line[:-1]) is None  # read back as the doubles they are
    for good, spelled in ((b'"h":100', b'"h":100.0'), (b'"g":1e-7', b'"g":1e-07'), (b'"f":1e+21', b'"f":1E+21')):
        bad = line[:-1].replace(good, spelled, 1)
        assert bad != line[:-1] and record_problem(json.loads(bad), bad) == "not in canonical form"


# -- schema v1 logs --------------------------------------------------------------------------------------

@pytest.fixture
def v1_log(tmp_path: Path) -> Path:
    """A log written by the schema-1 writer (tests/files/audit-v1.jsonl and its head, copied)."""
    path = tmp_path / "audit.jsonl"
    shutil.copy(FILES / "audit-v1.jsonl", path)
    shutil.copy(FILES / "audit-v1.jsonl.head", head_path(path))
    return path


def test_a_v1_log_still_verifies_and_loads(v1_log: Path) -> None:
    result = AuditLog(v1_log).verify()
    assert result.ok and result.records == 6, result.reason
    df = AuditLog(v1_log).frame()
    assert list(df["v"]) == [1] * 6 and df["mac"].isna().all()
    assert b'"ratio":0.0' in v1_log.read_bytes()  # v1's own canonical form (JCS would write 0)


def test_a_v1_log_is_still_tamper_evident(v1_log: Path) -> None:
    raw = v1_log.read_bytes().splitlines(keepends=True)
    raw[3] = raw[3].replace(b'"decision":"deny"', b'"decision":"allow"')
    v1_log.write_bytes(b"".join(raw))
    result = AuditLog(v1_log).verify()
    assert not result.ok and result.first_bad is not None and result.first_bad.line == 4
    assert "hash mismatch" in result.reason


def test_a_v1_log_continues_in_v2_and_never_goes_back(v1_log: Path) -> None:
    log = AuditLog(v1_log)
    rec = log.append(event(6))
    assert rec["v"] == 2 and rec["seq"] == 6 and rec["mac"] is None
    assert log.verify().ok and log.verify().records == 7
    df = log.frame()
    assert list(df["v"]) == [1] * 6 + [2] and list(df["seq"]) == list(range(7))
    with pytest.raises(AuditError, match="is not keyed"):
        AuditLog(v1_log, key=KEY).open()  # a keyed log is keyed from its first record
    # a record in the old format after a new one: refused even without a key
    old = json.loads((FILES / "audit-v1.jsonl").read_bytes().splitlines()[-1])
    old.update(seq=7, prev_hash=rec["hash"])
    body = {k: v for k, v in old.items() if k != "hash"}
    old["hash"] = hashlib.sha256(rec["hash"].encode() + json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    with open(v1_log, "ab") as f:
        f.write(json.dumps(old, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
    head_path(v1_log).write_bytes(encode_head(7, old["hash"]))
    result = AuditLog(v1_log).verify()
    assert not result.ok and "schema version goes back from 2 to 1" in result.reason


def test_a_keyed_writer_refuses_a_forged_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY)
    last = records(path)[-1]
    head_path(path).write_bytes(encode_head(last["seq"], last["hash"], secrets.token_hex(32)))
    with pytest.raises(AuditError, match="is not valid for this key"):
        AuditLog(path, key=KEY).open()


def test_the_documented_example_record_is_sound() -> None:
    """docs/audit-record.md's example line, checked by the code and by an independent RFC 8785 + sha256."""
    import re

    text = (Path(__file__).parent.parent / "docs" / "audit-record.md").read_text()
    line = re.search(r"```json\n(.*?)\n```", text, re.S).group(1).encode()  # type: ignore[union-attr]
    rec = json.loads(line)
    assert record_problem(rec, line) is None and rec["v"] == 2
    body = {k: v for k, v in rec.items() if k not in ("hash", "mac")}
    assert hashlib.sha256(rec["prev_hash"].encode() + rfc8785.dumps(body)).hexdigest() == rec["hash"]


@pytest.mark.parametrize("keyed", [False, True])
def test_frames_fast_and_slow_paths_agree_on_v1_v2_and_keyed_logs(tmp_path: Path, keyed: bool) -> None:
    import pandas as pd

    from workbench.audit.frames import _fast, _slow, _to_pandas

    path = tmp_path / "audit.jsonl"
    if keyed:
        write_log(path, key=KEY)
    else:  # a schema-1 log continued in schema 2
        shutil.copy(FILES / "audit-v1.jsonl", path)
        shutil.copy(FILES / "audit-v1.jsonl.head", head_path(path))
        log = AuditLog(path)
        for i in range(3):
            log.append(event(i))
    data = path.read_bytes()
    fast = _to_pandas(_fast(data, len(data)))  # no fallback: the fast path takes both schemas
    pd.testing.assert_frame_equal(fast, _to_pandas(_slow(data)))
    assert fast["mac"].notna().all() if keyed else (fast["mac"].isna().all() and set(fast["v"]) == {1, 2})


def test_a_line_nested_too_deep_for_the_parser_is_not_a_record_and_crashes_nothing(tmp_path: Path) -> None:
    """A forger's 400 kB of brackets: verify, the reader, frames and the writer all carry on."""
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY, n=2)
    with open(path, "ab") as f:
        f.write(b"[" * 200_000 + b"]" * 200_000 + b"\n")
    result = AuditLog(path).verify(key=KEY)
    assert not result.ok and result.first_bad.line == 3 and "not valid JSON" in result.reason
    assert len(list(AuditLog(path).records())) == 2 and len(AuditLog(path).frame()) == 2
    AuditLog(path, key=KEY).append(event(2))  # the bytes stay, named by a recovery record, as evidence
    result = AuditLog(path).verify(key=KEY)
    assert result.ok and result.records == 4 and any("torn line" in n for n in result.notes)


def test_a_head_nested_too_deep_is_an_altered_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key=KEY, n=2)
    head_path(path).write_bytes(b"[" * 100_000 + b"]" * 100_000)
    result = AuditLog(path).verify(key=KEY)
    assert not result.ok and "head file" in result.reason
    with pytest.raises(AuditError):
        AuditLog(path, key=KEY).open()


@pytest.mark.parametrize("seq", [-1, 0, 7, SAFE_INTEGER])
def test_the_head_mac_is_hmac_of_the_rfc8785_head(seq: int) -> None:
    import hmac

    for digest in ("0" * 64, "ab" * 32, "not hex"):
        expected = hmac.new(KEY.secret_text(), rfc8785.dumps({"hash": digest, "seq": seq}), hashlib.sha256)
        assert KEY.head_mac(seq, digest) == expected.hexdigest()
    assert KEY.record_mac("ab" * 32) == hmac.new(KEY.secret_text(), b"ab" * 32, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("field", ["mac", "module_sha256", "prev_hash"])
@pytest.mark.parametrize("value", [b"1234", b"true", b'"short"', b'"' + b"x" * 62 + b'\\""', b'{"a":1}', b"null",
                                   b'"' + "é".encode() * 32 + b'"', b'"' + b"y" * 64 + b'"'])
def test_frames_agree_with_the_slow_path_whatever_a_forger_puts_in_a_hex_field(
    tmp_path: Path, field: str, value: bytes
) -> None:
    """The fields the fast path cuts out by position rather than parse: any forged value, same frame."""
    import pandas as pd

    from workbench.audit import frame
    from workbench.audit.frames import _slow, _to_pandas

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY)
    for i in range(3):
        log.append(Event(**{**event(i).__dict__, "module_sha256": "ab" * 32}))
    raw = path.read_bytes().splitlines(keepends=True)
    real = json.loads(raw[1])[field].encode()
    raw[1] = raw[1].replace(f'"{field}":"'.encode() + real + b'"', f'"{field}":'.encode() + value)
    path.write_bytes(b"".join(raw))
    data = path.read_bytes()
    expected = _to_pandas(_slow(data))
    pd.testing.assert_frame_equal(frame(path), expected)
    assert expected[field].iloc[0] is not None
