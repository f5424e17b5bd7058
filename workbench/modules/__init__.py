"""The module catalog (``extensions/``), manifests, and calls between modules (``module:call``).

- :class:`Manifest`: one catalog module's ``manifest.toml``, checked (:class:`ManifestError`
  names the file, the field and a fix);
- :class:`Catalog`: the built-in ``extensions/`` folder plus the user's own folders
  (``WORKBENCH_EXTENSIONS``, paths separated by ``os.pathsep``), first match wins;
- :func:`run_module`: run a catalog module under a caller's rights (what
  ``Sandbox.run_module`` and a guest's ``module:call`` both use);
- :class:`~workbench.modules.calls.CallService`: the ``/dev/workbench/call/NAME`` node.
"""

from ..runtime.device_plan import CALLS
from .calls import MAX_CALL_DEPTH, CallService, run_module
from .catalog import Catalog, default_catalog
from .manifest import Manifest, load_manifest

CALLS["service"] = CallService  # the runtime serves /dev/workbench/call/NAME and run_module with these
CALLS["run"] = run_module

__all__ = ["Manifest", "load_manifest", "Catalog", "default_catalog", "run_module", "MAX_CALL_DEPTH"]
