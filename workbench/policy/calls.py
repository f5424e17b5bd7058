"""Module calls: which catalog modules (and exports) a guest may call.

``module:call:parser`` allows every export of ``parser``;
``module:call:parser.parse`` allows only ``parse``.  Asking about a module as
a whole (``export=None``, e.g. before linking it) needs the module-wide grant.
"""

from __future__ import annotations

from typing import Iterable

from workbench.policy.capability import Capability
from workbench.policy.decision import AccessDecision
from workbench.policy.suggest import quote

__all__ = ["check_call", "covers"]


def _covers_scope(rule: str, target: str) -> bool:
    return rule == target or ("." not in rule and target.startswith(rule + "."))


def covers(parent: Capability, child: Capability) -> bool:
    """``parent`` (a grant or a deny) reaches everything ``child`` names."""
    return _covers_scope(parent.scope or "", child.scope or "")


def check_call(
    grants: Iterable[Capability], denies: Iterable[Capability], module: str, export: str | None = None
) -> AccessDecision:
    """Decide one call of ``module`` (``export`` of it, when given)."""
    target = module if export is None else f"{module}.{export}"
    for deny in denies:
        if deny.domain == "module" and _covers_scope(deny.scope or "", target):
            return AccessDecision.deny(f"calling {quote(target)} is denied by {quote(str(deny))}", deny)
    candidates = [g for g in grants if g.domain == "module" and _covers_scope(g.scope or "", target)]
    if candidates:
        best = max(candidates, key=lambda g: len(g.scope or ""))
        return AccessDecision.allow(best, f"calling {quote(target)} is allowed by {quote(str(best))}")
    return AccessDecision.deny(f"no module:call grant covers {quote(target)}")
