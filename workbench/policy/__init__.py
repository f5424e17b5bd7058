"""Capabilities and policies: what an untrusted module may do (pure Python, no wasmtime).

- :class:`Capability`: one ``[!]domain:action[:scope][;param=value]`` rule, canonical
- :class:`Policy`: the rules of one run; answers ``check_path``, ``check_network``,
  ``check_call``, ``environment``, ``clock_precise``, ``limits``; ``attenuate``
  gives a called module its share
- :class:`Limits`: resource ceilings as exact numbers
- :class:`FsGrant`: a filesystem grant seen as a mount point
- :class:`AccessDecision` (alias :data:`PathDecision`): allowed, by which rule, why
- ``parse_size``/``format_size``, ``parse_duration``/``format_duration``: exact units

Errors: :class:`~workbench.errors.CapabilityError` for text that does not
parse, :class:`~workbench.errors.EscalationError` for a called module asking
for more than its caller holds.
"""

from workbench.policy.capability import Capability
from workbench.policy.decision import AccessDecision, PathDecision
from workbench.policy.filesystem import FsGrant
from workbench.policy.limits import Limits
from workbench.policy.policy import Policy
from workbench.policy.units import format_duration, format_size, parse_duration, parse_size

__all__ = [
    "Capability",
    "Policy",
    "Limits",
    "FsGrant",
    "AccessDecision",
    "PathDecision",
    "parse_size",
    "format_size",
    "parse_duration",
    "format_duration",
]
