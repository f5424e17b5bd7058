"""`workbench audit show | verify | export` through an argparse parser built here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.audit import AuditKey, AuditLog
from workbench.audit.commands import register
from workbench.events import Event


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench")
    sub = p.add_subparsers(dest="command", required=True)
    register(sub)
    return p


def run(*argv: str) -> int:
    args = parser().parse_args(["audit", *argv])
    return args.handler(args)


@pytest.fixture
def log_path(tmp_path) -> Path:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(6):
        log.append(Event(run_id="A" if i < 4 else "B", category="filesystem", action="open",
                         target=f"/docs/{i}", decision="deny" if i % 2 else "allow",
                         capability="filesystem:read:/docs" if i % 2 == 0 else None,
                         reason="not granted" if i % 2 else None, ts=1_700_000_000 + i))
    log.close()
    return path


def test_show_prints_records_filtered_and_limited(log_path, capsys):
    assert run("show", str(log_path)) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 6 and "/docs/0" in out[0] and "[filesystem:read:/docs]" in out[0]
    assert "2023-11-14T22:13:20.000+00:00" in out[0]
    assert run("show", str(log_path), "--decision", "deny", "--run", "A") == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["1", "3"] and all("not granted" in x for x in out)
    assert run("show", str(log_path), "-n", "2") == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["4", "5"]
    assert run("show", str(log_path), "--run", "nobody") == 0
    assert "no matching records" in capsys.readouterr().err


def test_verify_exit_codes_and_messages(log_path, capsys):
    assert run("verify", str(log_path)) == 0
    assert capsys.readouterr().out.startswith("ok: 6 records")
    raw = log_path.read_bytes().splitlines(keepends=True)
    raw[3] = raw[3].replace(b"/docs/3", b"/docs/X")
    log_path.write_bytes(b"".join(raw))
    assert run("verify", str(log_path)) == 1
    err = capsys.readouterr().err
    assert "hash mismatch at line 4 (seq 3): record altered" in err and f"{log_path}:4 (seq 3)" in err


def test_verify_reports_a_torn_line(log_path, capsys):
    with open(log_path, "ab") as f:
        f.write(b'{"action":')
    assert run("verify", str(log_path)) == 1
    assert "torn last line: 10 bytes without newline at line 7" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["show"], ["verify"], ["export", "--format", "csv", "-o", "x.csv"]])
def test_a_missing_log_is_one_clear_message(tmp_path, capsys, command):
    code = run(*command[:1], str(tmp_path / "nope.jsonl"), *command[1:])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith(f"error: no audit log at {tmp_path / 'nope.jsonl'}")
    assert "Traceback" not in captured.err


def test_a_folder_is_not_a_log(tmp_path, capsys):
    assert run("verify", str(tmp_path)) == 2
    assert "is a folder" in capsys.readouterr().err


def test_export_parquet_keeps_types(log_path, tmp_path, capsys):
    out = tmp_path / "audit.parquet"
    assert run("export", str(log_path), "--format", "parquet", "-o", str(out)) == 0
    assert "wrote 6 records" in capsys.readouterr().out
    df = pd.read_parquet(out)
    assert len(df) == 6 and str(df["ts"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(df["decision"].dtype, pd.CategoricalDtype)
    assert list(df["seq"]) == list(range(6))
    assert list(df["caller_chain"][0]) == [] and df["errno"].dtype == "Int64"
    typed = pd.read_parquet(out, dtype_backend="pyarrow")
    assert str(typed["caller_chain"].dtype).startswith("list<")


def test_export_csv(log_path, tmp_path):
    out = tmp_path / "audit.csv"
    assert run("export", str(log_path), "--format", "csv", "-o", str(out)) == 0
    df = pd.read_csv(out)
    assert len(df) == 6 and list(df["target"]) == [f"/docs/{i}" for i in range(6)]
    assert json.loads(df["caller_chain"][0]) == [] and json.loads(df["detail"][0]) == {}


def test_export_to_a_missing_folder_is_one_clear_message(log_path, tmp_path, capsys):
    assert run("export", str(log_path), "--format", "csv", "-o", str(tmp_path / "no" / "x.csv")) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["show", "f", "-n", "0"], ["show", "f", "--decision", "maybe"],
                                  ["export", "f", "--format", "xml", "-o", "x"], ["export", "f"], []])
def test_argument_mistakes_are_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["audit", *argv])
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


# -- keys, checkpoints ------------------------------------------------------------------------------

@pytest.fixture
def keyed(tmp_path) -> tuple[Path, Path]:
    """(a keyed log, its key file), both made through the CLI's own verbs."""
    key = tmp_path / "audit.key"
    assert run("keygen", "hmac", str(key)) == 0
    log = AuditLog(tmp_path / "keyed.jsonl", key=AuditKey.from_file(key))
    for i in range(4):
        log.append(Event(run_id="A", category="env", action="expose", target=f"V{i}", decision="deny"))
    log.close()
    return log.path, key


def test_keygen_writes_private_files_and_never_overwrites(tmp_path, capsys):
    key = tmp_path / "k"
    assert run("keygen", "hmac", str(key)) == 0
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text().strip()) == 64
    assert run("keygen", "hmac", str(key)) == 2 and "never overwrites" in capsys.readouterr().err
    signing = tmp_path / "sign"
    assert run("keygen", "ed25519", str(signing)) == 0
    assert signing.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "sign.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_verify_with_the_key_from_a_file_or_the_environment(keyed, monkeypatch, capsys):
    path, key = keyed
    assert run("verify", str(path), "--key-file", str(key)) == 0
    assert "every MAC valid for the key" in capsys.readouterr().out
    monkeypatch.setenv("WORKBENCH_AUDIT_KEY", key.read_text())
    assert run("verify", str(path), "--key-env") == 0
    monkeypatch.setenv("OTHER_KEY", "x" * 40)
    assert run("verify", str(path), "--key-env", "OTHER_KEY") == 1
    assert "MAC mismatch at line 1" in capsys.readouterr().err
    assert run("verify", str(path)) == 0  # without a key: ok, and it says what it did not check
    assert "MACs that were not checked" in capsys.readouterr().out


def test_verify_with_a_key_catches_a_forged_append(keyed, capsys):
    from workbench.audit.record import build_record

    path, key = keyed
    last = json.loads(path.read_bytes().splitlines()[-1])
    forged, line = build_record({"run_id": "A", "category": "env", "action": "expose", "decision": "allow",
                                 "ts": 1.7e9}, last["seq"] + 1, last["hash"])
    with open(path, "ab") as f:
        f.write(line)
    assert run("verify", str(path)) == 1  # the key mode changes: caught even without the key
    assert run("verify", str(path), "--key-file", str(key)) == 1
    assert "seq 4" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--key-file", "nope.key"], ["--key-env", "NO_SUCH_VARIABLE_HERE"]])
def test_a_missing_key_is_one_clear_message(keyed, argv, capsys, monkeypatch):
    path, _ = keyed
    monkeypatch.chdir(path.parent)
    assert run("verify", str(path), *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "hint: " in err and "Traceback" not in err


def test_checkpoint_then_verify_against_it(keyed, tmp_path, capsys):
    path, key = keyed
    assert run("keygen", "ed25519", str(tmp_path / "signer")) == 0
    cp = tmp_path / "cp.json"
    assert run("checkpoint", str(path), "--signing-key", str(tmp_path / "signer"), "-o", str(cp)) == 2
    assert "is keyed" in capsys.readouterr().err  # a keyed log is only signed once its MACs are checked
    assert run("checkpoint", str(path), "--signing-key", str(tmp_path / "signer"), "-o", str(cp),
               "--key-file", str(key)) == 0
    assert "signed seq 3" in capsys.readouterr().out
    pub = str(tmp_path / "signer.pub")
    assert run("verify", str(path), "--checkpoint", str(cp), "--public-key", pub) == 0
    assert "matches the signed checkpoint at seq 3" in capsys.readouterr().out
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    (path.parent / (path.name + ".head")).unlink()
    assert run("verify", str(path), "--checkpoint", str(cp), "--public-key", pub) == 1
    assert "vouches for seq 3" in capsys.readouterr().err
    assert run("verify", str(path), "--checkpoint", str(cp)) == 2
    assert "--public-key" in capsys.readouterr().err


def test_run_writes_a_keyed_log(tmp_path, capfd):
    from workbench import probes
    from workbench.cli import main

    module = tmp_path / "hello.wat"
    module.write_text(probes.hello())
    key, log = tmp_path / "k", tmp_path / "audit.jsonl"
    assert main(["audit", "keygen", "hmac", str(key)]) == 0
    assert main(["run", str(module), "--audit", str(log), "--audit-key-file", str(key)]) == 0
    assert AuditLog(log).verify(key=AuditKey.from_file(key)).ok
    assert main(["run", str(module), "--audit", str(log)]) == 2  # a keyed log goes on only with its key
    assert "is keyed" in capfd.readouterr().err
    assert main(["run", str(module), "--audit-key-file", str(key)]) == 2  # a key without a log
