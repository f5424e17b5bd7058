"""The answer to "may the guest do this?": allowed or not, which rule said so, and why.

One type for every domain (paths, hosts, calls), so the runtime can turn any
decision into an audit event the same way: ``capability`` is the rule that
decided (the deny rule that matched, or the grant that allowed; None when
nothing matched and the default, deny, applied) and ``reason`` is the
sentence a user reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.policy.capability import Capability

__all__ = ["AccessDecision", "PathDecision"]


@dataclass(frozen=True)
class AccessDecision:
    """Allowed or denied, the deciding rule (or None for deny-by-default), and a reason."""

    allowed: bool
    capability: Capability | None
    reason: str

    def __bool__(self) -> bool:
        """Truthy when allowed, so ``if policy.check_path(...):`` reads naturally."""
        return self.allowed

    @classmethod
    def allow(cls, capability: Capability, reason: str) -> AccessDecision:
        return cls(True, capability, reason)

    @classmethod
    def deny(cls, reason: str, capability: Capability | None = None) -> AccessDecision:
        return cls(False, capability, reason)


#: the name the runtime uses for filesystem decisions; the same type
PathDecision = AccessDecision
