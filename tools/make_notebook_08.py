"""Writes notebooks/08-batch-runs.ipynb, then executes it in notebooks/ to store its outputs.

Run: ``.venv/bin/python tools/make_notebook_08.py`` (about a minute).  ``make test`` compares the
stored outputs with a fresh run (nbval, notebooks/nbval-sanitize.cfg), so every output is stable:
no timings, ports or process ids in text, outcomes that do not depend on the machine's load
(the spinners are stopped by a CPU-time budget, not a wall clock).
"""

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATH = NOTEBOOKS / "08-batch-runs.ipynb"

GENERATE = '''TASKS = {  # name: (a correct solution, the test every submission of it must pass)
    "square": ("def solve(x):\\n    return x * x\\n", "assert solve(7) == 49 and solve(-3) == 9"),
    "reverse": ("def solve(s):\\n    return s[::-1]\\n", "assert solve('abc') == 'cba' and solve('') == ''"),
    "gcd": ("def solve(a, b):\\n    while b:\\n        a, b = b, a % b\\n    return a\\n",
            "assert solve(12, 18) == 6 and solve(7, 5) == 1"),
    "vowels": ("def solve(s):\\n    return sum(c in 'aeiou' for c in s.lower())\\n",
               "assert solve('Sandbox') == 2 and solve('xyz') == 0"),
}
MISCHIEF = [  # what a few submissions do besides solving the task
    "try:\\n    print(open('/etc/passwd').read()[:20])\\nexcept OSError:\\n    pass\\n",
    "try:\\n    open('/grader/answers.txt').read()\\nexcept OSError:\\n    pass\\n",
    "try:\\n    open('/solve_cache.py', 'w').write('cached')\\nexcept OSError:\\n    pass\\n",
]


def submission(i):
    """Student i's program: a solution of one task and that task's own test (printing 'passed')."""
    task = list(TASKS)[(i + i // 10) % len(TASKS)]
    solution, test = TASKS[task]
    kind = i % 10
    if kind == 6:                      # off by one: the test fails, the program exits 1
        solution = solution.replace("return ", "return 1 + ", 1) if task != "reverse" else \\
            "def solve(s):\\n    return s[::-1] + ' '\\n"
    elif kind == 8:                    # solves it, and tries something it should not
        solution = MISCHIEF[i // 10 % len(MISCHIEF)] + solution
    elif kind == 9 and i % 50 == 9:    # never ends
        solution = "while True:\\n    pass\\n"
    elif kind == 9 and i % 50 == 29:   # asks for far more memory than granted
        solution = "hoard = bytearray(200 * 2**20)\\n" + solution
    return task, solution + test + "\\nprint('passed')\\n"


programs = pd.DataFrame([(f"s{i:03d}", *submission(i)) for i in range(200)],
                        columns=["student", "task", "source"]).set_index("student")
programs.task.value_counts().sort_index()'''

cells = [
    new_markdown_cell(
        "# 08 · Batch runs: 200 programs on a Dask cluster\n\n"
        "Checking one module is a cell; grading a class is a batch. This notebook checks **200 small Python "
        "programs against their own tests**, each in its own sandbox under one policy, on a small Dask "
        "`LocalCluster` (2 worker processes), then:\n\n"
        "1. plots the outcomes and the time per job;\n"
        "2. loads the **merged audit trail**: every worker process wrote its own hash-chained segment;\n"
        "3. finds the jobs that **tried something they should not**, from the trail alone.\n\n"
        "The same code runs on a real cluster: pass a `Client` of that cluster (docs/scaling.md)."),
    new_code_cell(
        "%load_ext workbench\n"
        "import logging, pathlib, tempfile\n"
        "import pandas as pd\n"
        "from dask.distributed import Client, LocalCluster\n"
        "\n"
        "folder = pathlib.Path(tempfile.mkdtemp(prefix='batch-'))\n"
        "audit = folder / 'audit'\n"
        "cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=':0',\n"
        "                       silence_logs=logging.ERROR)\n"
        "client = Client(cluster)"),
    new_markdown_cell(
        "## The submissions\n\n"
        "Each program is a student's solution of one of four tasks followed by that task's test, as graders "
        "write them: an `assert`, then `passed`. Most are right; some are off by one; a few also try to read "
        "or write files they were never given, one never ends, one asks for 200 MB."),
    new_code_cell(GENERATE),
    new_markdown_cell(
        "## One batch, one policy\n\n"
        "`%sandbox_batch` runs a list, a Series or a DataFrame column (`--column`; the index gives the job ids) "
        "and returns the results frame. The policy grants nothing but limits: no file, no network, 64 MB of "
        "memory and half a second of CPU per program (a CPU budget, not a wall clock, so a busy machine does "
        "not change an outcome). While it runs, a progress bar counts the jobs and the link opens Dask's "
        "dashboard; ■ stops the running guests and keeps the results already in (`-o VAR` holds them)."),
    new_code_cell(
        "results = %sandbox_batch programs --column source --lang python --cpu 0.5s --memory 64MB "
        "--timeout 60s --client client --audit {audit}"),
    new_code_cell("results.outcome.value_counts().sort_index()"),
    new_markdown_cell(
        "The frame has one row per job in the order given: outcome, exit code, the heads of stdout and stderr, "
        "the violation count and the usage columns. Joined back onto the submissions, it grades them:"),
    new_code_cell(
        "graded = programs.join(results.set_index('job_id'))\n"
        "graded.groupby('task').agg(submitted=('ok', 'size'), passed=('ok', 'sum'))"),
    new_code_cell("graded.loc[~graded.ok, ['task', 'outcome', 'exit_code', 'violations']].head(8)"),
    new_markdown_cell("## Outcomes and time per job"),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "\n"
        "fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))\n"
        "results.outcome.value_counts().sort_index().plot.barh(ax=left, color='#607d8b')\n"
        "left.set_title('outcomes'); left.set_xlabel('jobs')\n"
        "seconds = results.wall_seconds\n"
        "right.hist(seconds[results.ok], bins=30, color='#2e7d32', label='passed')\n"
        "right.hist(seconds[~results.ok], bins=30, color='#c62828', alpha=0.7, label='not ok')\n"
        "right.set_xscale('symlog', linthresh=0.1); right.set_xlabel('seconds (wall clock, per job)')\n"
        "right.set_title('time per job'); right.legend()\n"
        "plt.tight_layout(); plt.show()"),
    new_markdown_cell(
        "## The merged audit trail\n\n"
        "Each worker process appended to its own segment (no file is shared across processes); the client "
        "wrote its own (batch start, manifest). `AuditLog.open_many` verifies every chain and the manifest, "
        "then loads them as one frame with a `worker` column."),
    new_code_cell(
        "from workbench import AuditLog\n"
        "from workbench.audit import AuditTrail\n"
        "\n"
        "trail = AuditLog.open_many(audit)\n"
        "AuditTrail(audit).verify().ok, trail.worker.nunique(), sorted({w.split('-')[0] for w in trail.worker})"),
    new_code_cell(
        "jobs = trail[(trail.module == 'workbench.batch') & (trail.action == 'job-end')]\n"
        "len(jobs), jobs.worker.nunique()  # each job's end, in the segment of the worker that ran it"),
    new_markdown_cell(
        "## The jobs that tried something they should not\n\n"
        "From the trail alone: every refusal and every stop, by what kind of thing was refused, counted in "
        "jobs (a run id is matched to its job through the job's end record):"),
    new_code_cell(
        "job_of_run = dict(zip(jobs.run_id, jobs.target))\n"
        "refused = trail[trail.decision.isin(['deny', 'kill'])].assign(student=lambda t: t.run_id.map(job_of_run))\n"
        "refused.groupby('category', observed=True).student.nunique()"),
    new_markdown_cell(
        "The CPU and memory refusals are the program that never ends and the one that hoards memory. The file "
        "refusals are the interesting ones: programs that tried to read what they were not given or to "
        "leave something behind. What each tried, as the sandbox resolved it:"),
    new_code_cell(
        "tried = (refused[refused.category == 'filesystem']\n"
        "         .groupby(['student', 'action', 'resolved'], observed=True).size().rename('times').reset_index())\n"
        "tried.head(8)"),
    new_markdown_cell(
        "The trail and the results frame agree, job for job: the students with a refusal in the trail are "
        "exactly the rows with violations. And the ones that tried files passed their tests (`passed` is in "
        "their output): a grader reading outcomes as pass or fail alone would have given them full marks."),
    new_code_cell(
        "set(refused.student) == set(graded.index[graded.violations > 0])"),
    new_code_cell("graded.loc[sorted(set(tried.student)), ['task', 'exit_code', 'outcome', 'stdout']].head(6)"),
    new_markdown_cell(
        "## Closing the cluster\n\n"
        "The cluster's worker processes end with it: nothing is left behind. (Python's `multiprocessing` "
        "keeps one helper of its own, the resource tracker, until the kernel exits; it runs no job.)"),
    new_code_cell(
        "import shutil, time, psutil\n"
        "client.close(); cluster.close()\n"
        "\n"
        "def left_behind():\n"
        "    return [p for p in psutil.Process().children(recursive=True)\n"
        "            if 'resource_tracker' not in ' '.join(p.cmdline())]\n"
        "\n"
        "deadline = time.monotonic() + 30\n"
        "while left_behind() and time.monotonic() < deadline:\n"
        "    time.sleep(0.1)\n"
        "shutil.rmtree(folder)\n"
        "left_behind()"),
]

nb = new_notebook(cells=cells, metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                                         "name": "python3"}})
NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
nbformat.write(nb, PATH)
print(f"wrote {PATH}")
