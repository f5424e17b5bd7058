"""A :class:`Policy`: the set of capabilities one run holds, and the questions the runtime asks it.

Why a frozen, canonical value: a policy is compared (tests, caches of
compiled sandboxes), hashed, written into audit records and handed down to
called modules.  So construction normalises it once — duplicates dropped, the
larger of two equal limits dropped, canonical order — and two policies are
equal exactly when they grant the same.

Deny by default: every ``check_*`` answers "no" unless a grant says yes, and
a deny rule always wins over a grant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Iterator, Mapping, Union

from workbench.errors import CapabilityError
from workbench.policy import calls, filesystem, network
from workbench.policy.attenuation import attenuate as _attenuate
from workbench.policy.capability import Capability
from workbench.policy.decision import AccessDecision
from workbench.policy.filesystem import FsGrant
from workbench.policy.limits import Limits, limit_field, limit_value
from workbench.policy.suggest import quote

__all__ = ["Policy", "PolicySpec"]

#: what :meth:`Policy.parse` accepts
PolicySpec = Union[str, Iterable[Union[str, Capability]], "Policy", None]

# a comma separates capabilities only when a capability follows it, so an
# env value or a path may still hold commas ('env:set:LIST=a,b')
_COMMA = re.compile(r",(?=!?[A-Za-z]+:)")
# ASCII whitespace only: str.split() would also cut at U+2028 or U+00A0, silently dropping
# what a capability held (Capability.parse refuses such characters with a clear error)
_WHITESPACE = re.compile(r"[ \t\r\n]+")


def _split(text: str) -> list[str]:
    pieces: list[str] = []
    for token in _WHITESPACE.split(text):
        pieces.extend(piece.strip(",") for piece in _COMMA.split(token))
    return [piece for piece in pieces if piece]


def _check_env(caps: Iterable[Capability]) -> None:
    seen: dict[str, Capability] = {}
    for cap in caps:
        if cap.domain != "env" or cap.deny:
            continue
        name = (cap.scope or "").partition("=")[0]
        if name in seen:
            raise CapabilityError(
                f"conflicting rules for environment variable {quote(name)}: {quote(str(seen[name]))} and {quote(str(cap))}",
                text=str(cap),
                part=str(cap),
                hint="a variable is either set to one value or inherited: keep one of them",
            )
        seen[name] = cap


def _host_key(cap: Capability) -> str | None:
    host = cap.param("host")
    return None if host is None else host.rstrip("/\\") or host


def _check_mounts(caps: Iterable[Capability]) -> None:
    seen: dict[str, Capability] = {}
    for cap in caps:
        if cap.domain != "filesystem" or cap.deny:
            continue
        folder = filesystem.static_of(cap)
        other = seen.setdefault(folder, cap)
        if _host_key(other) != _host_key(cap):
            raise CapabilityError(
                f"conflicting host folders for guest path {quote(folder)}: {quote(str(other))} and {quote(str(cap))}",
                text=str(cap),
                part=str(cap),
                hint=f"a guest folder shows one host folder: give every grant rooted at {folder} the same ';host='",
            )


def _normalise(items: Iterable[Capability | str]) -> tuple[Capability, ...]:
    caps: dict[Capability, None] = {}
    for item in items:
        cap = item if isinstance(item, Capability) else Capability.parse(item)
        caps[cap] = None
    smallest: dict[str, Capability] = {}
    for cap in caps:
        if cap.is_limit:
            field = limit_field(cap)
            if field not in smallest or limit_value(cap) < limit_value(smallest[field]):
                smallest[field] = cap
    kept = [cap for cap in caps if not cap.is_limit or smallest[limit_field(cap)] == cap]
    kept.sort(key=lambda cap: cap.sort_key)
    _check_env(kept)
    _check_mounts(kept)
    return tuple(kept)


@dataclass(frozen=True)
class Policy:
    """The capabilities of one run, canonical: frozen, hashable, equal by content.

    Build it with :meth:`parse`.  ``capabilities`` are in canonical order
    (grammar order, then scope, each deny right after what it carves from).
    """

    capabilities: tuple[Capability, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.capabilities, str):
            raise TypeError("Policy(...) takes Capability objects; use Policy.parse(text) for capability strings")
        object.__setattr__(self, "capabilities", _normalise(self.capabilities))

    @classmethod
    def parse(cls, spec: PolicySpec = None) -> Policy:
        """A policy from capability strings.

        ``spec`` is a list of capabilities (strings or :class:`Capability`),
        or one string with capabilities separated by whitespace or commas, or
        None for the empty (deny-everything) policy.  In the list form an item
        is one capability and may hold spaces (``env:set:GREETING=hi there``).
        Raises :class:`~workbench.errors.CapabilityError` for the first bad one.
        """
        if spec is None:
            return cls()
        if isinstance(spec, Policy):
            return spec
        if isinstance(spec, str):
            return cls(tuple(_split(spec)))  # type: ignore[arg-type]
        return cls(tuple(spec))  # type: ignore[arg-type]

    # -- views -------------------------------------------------------------

    def to_strings(self) -> list[str]:
        """The canonical capability strings; ``Policy.parse(p.to_strings()) == p``."""
        return [str(cap) for cap in self.capabilities]

    def __str__(self) -> str:
        return " ".join(self.to_strings())

    def __repr__(self) -> str:
        return f"Policy({self.to_strings()!r})"

    def __iter__(self) -> Iterator[Capability]:
        return iter(self.capabilities)

    def __contains__(self, item: object) -> bool:
        """``"filesystem:read:/docs" in policy``: the capability is stated (not: is implied)."""
        if isinstance(item, str):
            item = Capability.parse(item)
        return item in self.capabilities

    @cached_property
    def grants(self) -> tuple[Capability, ...]:
        """Every capability that is not a deny rule (rights and limits)."""
        return tuple(cap for cap in self.capabilities if not cap.deny)

    @cached_property
    def denies(self) -> tuple[Capability, ...]:
        """The deny rules; they win over any grant."""
        return tuple(cap for cap in self.capabilities if cap.deny)

    @cached_property
    def limits(self) -> Limits:
        """The ceilings this policy states (None where it states none)."""
        return Limits.from_capabilities(self.capabilities)

    @cached_property
    def clock_precise(self) -> bool:
        """Nanosecond clocks are granted (otherwise the runtime coarsens them)."""
        return any(c.domain == "clock" for c in self.grants) and not any(c.domain == "clock" for c in self.denies)

    def filesystem_grants(self) -> list[FsGrant]:
        """The non-deny filesystem capabilities as mount points, for the runtime's preopens."""
        return [FsGrant.from_capability(cap) for cap in self.grants if cap.domain == "filesystem"]

    # -- questions the runtime asks ---------------------------------------

    def check_path(
        self, guest_path: str, write: bool = False, *, directory: bool = False, files: frozenset[str] = frozenset()
    ) -> AccessDecision:
        """May the guest open ``guest_path`` (absolute, normalised) for reading or writing?

        ``directory=True`` asks about opening or listing a folder, which a glob
        grant allows read-only for the folders on the way to its matches.
        ``files``: grant scopes the runtime found to be single files; those grants cover
        exactly their path (see :mod:`workbench.policy.filesystem`).
        """
        return filesystem.check_path(self.grants, self.denies, guest_path, write, directory=directory, files=files)

    def check_network(self, scheme: str, host: str, port: int | None = None) -> AccessDecision:
        """May the guest send an ``http``/``https`` request to ``host`` (``port`` None = the scheme's default)?"""
        return network.check_network(self.grants, self.denies, scheme, host, port)

    def check_call(self, module: str, export: str | None = None) -> AccessDecision:
        """May the guest call catalog module ``module`` (its ``export``, when given)?"""
        return calls.check_call(self.grants, self.denies, module, export)

    def environment(self, host_env: Mapping[str, str]) -> dict[str, str]:
        """The guest's environment: ``env:set`` values and ``env:inherit`` ones found in ``host_env``.

        Nothing else from the host leaks through; inherited names missing on
        the host are skipped.
        """
        denied = {(cap.action, cap.scope) for cap in self.denies if cap.domain == "env"}
        env: dict[str, str] = {}
        for cap in self.grants:
            if cap.domain != "env" or (cap.action, cap.scope) in denied:
                continue
            if cap.action == "set":
                name, _, value = (cap.scope or "").partition("=")
                env[name] = value
            elif cap.scope in host_env:
                env[cap.scope or ""] = host_env[cap.scope or ""]
        return env

    def attenuate(self, child: Policy) -> Policy:
        """The policy of a module that asked for ``child``, called by a module holding ``self``.

        Raises :class:`~workbench.errors.EscalationError` when ``child`` asks
        for a right ``self`` cannot hand down; see :mod:`workbench.policy.attenuation`.
        """
        return Policy(tuple(_attenuate(self.capabilities, Policy.parse(child).capabilities)))
