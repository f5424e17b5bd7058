"""The public surface (design.md §2) is pinned: names may grow, never change silently."""

from __future__ import annotations

import workbench

CONTRACT = {"Sandbox", "Policy", "AuditLog", "RunResult", "Violation", "Event", "Sample", "Limits", "SandboxError"}


def test_the_design_contract_is_exported() -> None:
    assert CONTRACT <= set(workbench.__all__)
    for name in workbench.__all__:
        assert getattr(workbench, name) is not None, name


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(workbench) if not name.startswith("_")}
    modules = {"errors", "events", "policy", "runtime", "languages", "probes", "audit", "jupyter", "demo", "cli",
               "validation", "annotations", "caches", "batch", "network", "modules", "guest", "builtin_catalog",
               "runtimes"}
    extension_hooks = {"load_ipython_extension", "unload_ipython_extension"}
    assert public - modules - extension_hooks <= set(workbench.__all__)


def test_importing_the_core_pulls_in_no_notebook_stack() -> None:
    import subprocess
    import sys

    code = ("import sys, workbench; from workbench import Sandbox, probes; Sandbox().run(probes.hello());"
            "print(sorted(m for m in ('IPython', 'ipywidgets', 'matplotlib', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"
