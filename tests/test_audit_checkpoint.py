"""Signed checkpoints: a log checked against an ed25519 signature, with no secret (issue 10, point 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from workbench.audit import AuditKey, AuditLog, Checkpoint, canonical_json, load_public_key, load_signing_key
from workbench.audit.files import encode_head, head_path
from workbench.audit.record import build_record
from workbench.errors import AuditError, AuditKeyError
from workbench.events import Event

KEY = AuditKey(b"checkpoint test key, 32 bytes..")


def event(i: int) -> Event:
    return Event(run_id="r", category="filesystem", action="open", target=f"/docs/{i}",
                 decision="deny" if i % 3 == 0 else "allow", ts=1_700_000_000 + i)


@pytest.fixture
def signer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def keyed_log(path: Path, n: int = 6) -> AuditLog:
    log = AuditLog(path, key=KEY)
    for i in range(n):
        log.append(event(i))
    return log


def test_a_checkpoint_pins_the_log_and_anyone_with_the_public_key_can_check_it(tmp_path: Path, signer) -> None:
    path = tmp_path / "audit.jsonl"
    log = keyed_log(path)
    checkpoint = log.checkpoint(signer)
    last = list(log.records())[-1]
    assert (checkpoint.seq, checkpoint.hash, checkpoint.keyed, checkpoint.log) == (5, last["hash"], True, "audit.jsonl")
    saved = checkpoint.save(tmp_path / "cp.json")
    loaded = Checkpoint.load(saved)
    assert loaded == checkpoint
    assert json.loads(saved.read_text())["format"] == "workbench-audit-checkpoint"
    # checked by someone without the HMAC key: the public SHA-256 chain up to the checkpoint
    result = AuditLog(path).verify(checkpoint=saved, public_key=signer.public_key())
    assert result.ok and result.checkpoint_seq == 5 and not result.authenticated, result.reason
    assert "matches the signed checkpoint at seq 5" in str(result)
    for i in range(6, 9):  # the log goes on: still matches its checkpoint
        log.append(event(i))
    assert AuditLog(path).verify(checkpoint=checkpoint, public_key=signer.public_key()).ok
    assert AuditLog(path).verify(key=KEY, checkpoint=checkpoint, public_key=signer.public_key()).authenticated


def test_a_checkpoint_catches_a_rewrite_even_by_the_key_holder(tmp_path: Path, signer) -> None:
    """Whoever holds the HMAC key can rewrite a keyed log so it verifies; not so it matches a checkpoint."""
    path = tmp_path / "audit.jsonl"
    checkpoint = keyed_log(path).checkpoint(signer)
    recs = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert recs[3]["decision"] == "deny"
    recs[3]["decision"] = "allow"
    prev, lines = "0" * 64, []
    for rec in recs:
        rec, line = build_record({**rec, "ts": rec["ts"] / 1e6}, rec["seq"], prev, KEY)
        lines.append(line)
        prev = rec["hash"]
    path.write_bytes(b"".join(lines))
    head_path(path).write_bytes(encode_head(5, prev, KEY.head_mac(5, prev)))
    assert AuditLog(path).verify(key=KEY).ok  # the key holder's forgery fools the key ...
    result = AuditLog(path).verify(checkpoint=checkpoint, public_key=signer.public_key())
    assert not result.ok and result.first_bad.seq == 5  # ... not the checkpoint signed before it
    assert "differs from the signed checkpoint" in result.reason


def test_a_checkpoint_catches_a_cut(tmp_path: Path, signer) -> None:
    path = tmp_path / "audit.jsonl"
    checkpoint = keyed_log(path).checkpoint(signer)
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    head_path(path).unlink()
    result = AuditLog(path).verify(checkpoint=checkpoint, public_key=signer.public_key())
    assert not result.ok and result.reason.startswith("file ends early") and "vouches for seq 5" in result.reason


def test_an_unkeyed_log_can_be_checkpointed_too(tmp_path: Path, signer) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(4):
        log.append(event(i))
    checkpoint = log.checkpoint(signer)
    assert not checkpoint.keyed
    raw = path.read_bytes().splitlines(keepends=True)
    rec = json.loads(raw[1])
    rec["target"] = "/docs/other"
    forged, _ = build_record({**rec, "ts": rec["ts"] / 1e6}, 1, rec["prev_hash"])
    prev, lines = forged["hash"], [raw[0], canonical_json(forged) + b"\n"]
    for line in raw[2:]:  # re-hash the rest: a sound unkeyed chain again
        rec = json.loads(line)
        rec, out = build_record({**rec, "ts": rec["ts"] / 1e6}, rec["seq"], prev)
        lines.append(out)
        prev = rec["hash"]
    path.write_bytes(b"".join(lines))
    head_path(path).unlink()
    assert AuditLog(path).verify().ok  # the unkeyed limit ...
    result = AuditLog(path).verify(checkpoint=checkpoint, public_key=signer.public_key())
    assert not result.ok and "differs from the signed checkpoint" in result.reason  # ... a checkpoint covers


def test_a_checkpoint_is_checked_against_the_key_you_trust(tmp_path: Path, signer) -> None:
    path = tmp_path / "audit.jsonl"
    log = keyed_log(path)
    checkpoint = log.checkpoint(signer)
    forger = Ed25519PrivateKey.generate()
    result = log.verify(checkpoint=log.checkpoint(forger), public_key=signer.public_key())
    assert not result.ok and "signed by another key" in result.reason
    altered = Checkpoint(**{**checkpoint.__dict__, "seq": 3})
    result = log.verify(checkpoint=altered, public_key=signer.public_key())
    assert not result.ok and "signature is not valid" in result.reason
    with pytest.raises(AuditKeyError, match="public key you trust"):
        log.verify(checkpoint=checkpoint)


def test_a_checkpoint_is_only_signed_for_a_log_that_verifies(tmp_path: Path, signer) -> None:
    path = tmp_path / "audit.jsonl"
    with pytest.raises(AuditError, match="no records"):
        AuditLog(path).checkpoint(signer)
    keyed_log(path)
    with pytest.raises(AuditKeyError, match="is keyed"):
        AuditLog(path).checkpoint(signer)  # MACs unchecked: a forger's log would be signed
    raw = path.read_bytes().splitlines(keepends=True)
    raw[2] = raw[2].replace(b"/docs/2", b"/docs/X")
    path.write_bytes(b"".join(raw))
    with pytest.raises(AuditError, match="does not verify"):
        AuditLog(path, key=KEY).checkpoint(signer)


def test_keys_load_from_pem_raw_and_hex(tmp_path: Path, signer) -> None:
    pem = signer.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    public_pem = signer.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    raw = signer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    (tmp_path / "sk.pem").write_bytes(pem)
    (tmp_path / "pk.hex").write_text(raw.hex() + "\n")
    assert load_signing_key(tmp_path / "sk.pem").private_bytes_raw() == signer.private_bytes_raw()
    for source in (public_pem, raw, tmp_path / "pk.hex", signer.public_key()):
        assert load_public_key(source).public_bytes_raw() == raw
    with pytest.raises(AuditKeyError):
        load_public_key(b"not a key at all")
    with pytest.raises(AuditKeyError):
        load_signing_key(tmp_path / "missing.pem")


@pytest.mark.parametrize("text", [
    "not json", "[]", '{"format": "other"}', "[" * 100_000 + "]" * 100_000,
    '{"format": "workbench-audit-checkpoint", "v": 2}',
    '{"format": "workbench-audit-checkpoint", "v": 1, "seq": 1}',
])
def test_a_malformed_checkpoint_is_refused(text: str) -> None:
    with pytest.raises(AuditKeyError):
        Checkpoint.from_json(text)


def test_the_checkpoint_file_is_rfc8785_and_signs_all_but_its_signature(tmp_path: Path, signer) -> None:
    import rfc8785

    checkpoint = keyed_log(tmp_path / "audit.jsonl").checkpoint(signer)
    data = json.loads(checkpoint.to_json())
    assert checkpoint.to_json().encode() == rfc8785.dumps(data) + b"\n"
    signature = bytes.fromhex(data.pop("signature"))
    signer.public_key().verify(signature, rfc8785.dumps(data))  # what another language would check
