"""Inheritance: the rights of a module called by another (design.md §3).

A called module gets what it asked for, intersected with its caller's
effective rights:

- asking for a right none of the caller's grants covers is an
  :class:`~workbench.errors.EscalationError` — unless one of the caller's deny
  rules blocks all of it anyway (then it gains nothing, and the deny travels);
- the caller's deny rules always travel down;
- limits are the field-wise minimum (a child without a limit gets the caller's);
- filesystem grants are re-rooted where the caller's are: a child grant
  inside a caller grant mapped with ``;host=`` is mapped to the same host
  folder, a child may not map a guest path elsewhere, and folders the caller
  mapped separately inside the child's grant are carried down as they are.

Coverage: write covers read; a folder covers anything below it; a glob covers
the same glob and an exact path it matches (what lies below that path is
carved out); a child glob is covered by a folder holding its static part;
``*.example.com`` covers ``a.example.com`` and ``*.a.example.com`` but not
``example.com``; a grant without a port covers every port; http and https are
separate; a ``;secret=NAME`` is handed down only by a caller grant carrying the same secret; ``module:call:parser`` covers ``parser.export``; env and clock
rights must match exactly.
"""

from __future__ import annotations

from typing import Sequence

from workbench.errors import EscalationError
from workbench.policy import calls, filesystem, network, paths
from workbench.policy.capability import Capability
from workbench.policy.suggest import quote

__all__ = ["attenuate"]


def _escalation(child: Capability, parent_grants: Sequence[Capability], detail: str | None = None) -> EscalationError:
    held = [str(g) for g in parent_grants if g.domain == child.domain]
    holds = ", ".join(quote(h) for h in held) if held else f"no {child.domain} rights"
    message = f"module asks for {quote(str(child))} but its caller holds {holds}"
    if detail:
        message += f" ({detail})"
    return EscalationError(
        message,
        text=str(child),
        part=str(child),
        hint="narrow the module's capability to what its caller holds, or grant it to the caller first",
    )


def _strip(host: str) -> str:
    return host.rstrip("/\\") or host[:1]


def _join(host: str, below: str) -> str:
    return host if not below else host.rstrip("/\\") + "/" + below


def _below(path: str, folder: str) -> str:
    """``path`` relative to ``folder`` (which holds it), without a leading ``/``."""
    return path[len(folder) :].lstrip("/") if folder != "/" else path.lstrip("/")


class _Mounts:
    """Where the caller's filesystem grants put guest folders on the host."""

    def __init__(self, grants: Sequence[Capability]) -> None:
        self.grants = [g for g in grants if g.domain == "filesystem"]

    def view(self, location: str) -> str | None:
        """What the caller sees at guest folder ``location``: ``host:<path>``, ``root:<guest path>``,
        or None when no caller grant holds it."""
        holders = [g for g in self.grants if paths.within(location, filesystem.static_of(g))]
        if not holders:
            return None
        mount = max(holders, key=lambda g: len(paths.segments(filesystem.static_of(g))))
        host = mount.param("host")
        if host is None:
            return f"root:{location}"
        return f"host:{_strip(_join(host, _below(location, filesystem.static_of(mount))))}"


def _filesystem(
    child: Capability, parent_grants: Sequence[Capability], parent_denies: Sequence[Capability], mounts: _Mounts
) -> list[Capability]:
    scope = child.scope or "/"
    carve: str | None = None
    for component in ("read", "write") if child.action == "write" else ("read",):
        if any(
            d.domain == "filesystem" and (d.action == "read" or component == "write") and filesystem.neutralises(d, scope)
            for d in parent_denies
        ):
            continue
        ways = {
            filesystem.covers(g, scope)
            for g in parent_grants
            if g.domain == "filesystem" and (component == "read" or g.action == "write")
        }
        if "folder" in ways:
            continue
        if "exact" in ways:
            carve = "read" if component == "read" or carve == "read" else "write"
            continue
        raise _escalation(child, parent_grants)

    static = filesystem.static_of(child)
    result: list[Capability] = []
    parent_view = mounts.view(static)
    asked_host = child.param("host")
    if parent_view is not None:
        child_view = f"host:{_strip(asked_host)}" if asked_host is not None else None
        if child_view is not None and child_view != parent_view:
            where = quote(parent_view[len("host:") :]) if parent_view.startswith("host:") else "the sandbox root"
            raise _escalation(
                child, parent_grants, f"it maps {quote(static)} to {quote(asked_host or '')}, its caller to {where}"
            )
        host = parent_view[len("host:") :] if parent_view.startswith("host:") else None
        params = (("host", host),) if host is not None else ()
        child = Capability(child.domain, child.action, child.scope, params, False)
    result.append(child)
    if carve is not None:
        result.append(Capability("filesystem", carve, _join_guest(static, "*"), (), True))

    # folders the caller mapped separately inside the child's grant keep the caller's mapping
    own_host = child.param("host")
    glob = paths.is_glob(scope)
    for grant in parent_grants:
        if grant.domain != "filesystem":
            continue
        inner = filesystem.static_of(grant)
        if inner == static or not paths.within(inner, static):
            continue
        seen_by_child = f"host:{_strip(_join(own_host, _below(inner, static)))}" if own_host else f"root:{inner}"
        if seen_by_child == mounts.view(inner):
            continue
        if glob:
            result.append(Capability("filesystem", "read", inner, (), True))
        else:
            action = "write" if child.action == "write" and grant.action == "write" else "read"
            result.append(Capability("filesystem", action, grant.scope, grant.params, False))
    return result


def _join_guest(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def _covered(child: Capability, rules: Sequence[Capability]) -> bool:
    """Some rule in ``rules`` (grants or denies of the caller) reaches all of ``child``."""
    for rule in rules:
        if rule.domain != child.domain:
            continue
        if child.domain == "network" and network.covers(rule, child) and _same_secret(rule, child):
            return True
        if child.domain == "module" and calls.covers(rule, child):
            return True
        if child.domain in ("env", "clock") and (rule.action, rule.scope) == (child.action, child.scope):
            return True
    return False


def _same_secret(rule: Capability, child: Capability) -> bool:
    """A child's ``;secret=NAME`` must be held by its caller's grant (a deny carries none and blocks
    all): otherwise a called module could name any host variable and have its value sent out."""
    wanted = child.param("secret")
    return rule.deny or wanted is None or rule.param("secret") == wanted


def attenuate(parent: Sequence[Capability], child: Sequence[Capability]) -> list[Capability]:
    """The capabilities of a module with capabilities ``child`` called by one holding ``parent``.

    Returns a list for :class:`~workbench.policy.Policy` to normalise (it keeps
    the smaller of two limits, so both sides' limits are simply passed on).
    Raises :class:`~workbench.errors.EscalationError` for the first child
    grant (in canonical order) the caller cannot hand down.
    """
    parent_grants = [c for c in parent if not c.deny and not c.is_limit]
    parent_denies = [c for c in parent if c.deny]
    mounts = _Mounts(parent_grants)
    result: list[Capability] = [c for c in parent if c.deny or c.is_limit]
    for cap in child:
        if cap.deny or cap.is_limit:
            result.append(cap)
        elif cap.domain == "filesystem":
            result.extend(_filesystem(cap, parent_grants, parent_denies, mounts))
        elif _covered(cap, parent_grants) or _covered(cap, parent_denies):
            result.append(cap)
        else:
            raise _escalation(cap, parent_grants)
    return result
