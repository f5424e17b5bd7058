"""The answer to "may the guest do this?": allowed or not, which rule said so, and why.

One type for every domain (paths, hosts, calls), so the runtime can turn any
decision into an audit event the same way: ``capability`` is the rule that
decided (the deny rule that matched, or the grant that allowed; None when
nothing matched and the default, deny, applied) and ``reason`` is the
sentence a user reads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from workbench.policy.capability import Capability
from workbench.policy.suggest import quote

__all__ = ["AccessDecision", "PathDecision", "SUBJECT"]

#: where a decision's text names its subject (a character no path or capability may hold)
SUBJECT = "\x00"


@dataclass(frozen=True)
class AccessDecision:
    """Allowed or denied, the deciding rule (or None for deny-by-default), and why.

    ``text`` is the reason with :data:`SUBJECT` where the thing decided on (``subject``) goes,
    so one decision can be restated for another subject that no rule tells apart
    (:meth:`about`) without rewriting sentences; :attr:`reason` formats it when shown.
    """

    allowed: bool
    capability: Capability | None
    text: str
    subject: str | None = None

    def __bool__(self) -> bool:
        """Truthy when allowed, so ``if policy.check_path(...):`` reads naturally."""
        return self.allowed

    @property
    def reason(self) -> str:
        """The sentence a user reads."""
        if self.subject is None:
            return self.text
        return self.text.replace(SUBJECT, quote(self.subject))

    def about(self, subject: str) -> AccessDecision:
        """The same decision, said of ``subject``."""
        return self if subject == self.subject else replace(self, subject=subject)

    @classmethod
    def allow(cls, capability: Capability, reason: str, subject: str | None = None) -> AccessDecision:
        return cls(True, capability, reason, subject)

    @classmethod
    def deny(cls, reason: str, capability: Capability | None = None, subject: str | None = None) -> AccessDecision:
        return cls(False, capability, reason, subject)


#: the name the runtime uses for filesystem decisions; the same type
PathDecision = AccessDecision
