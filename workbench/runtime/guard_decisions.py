"""The guard's questions to the policy, asked once where the answer cannot differ.

Why a module of its own: the guard asks "may this path be read, written, walked through?"
several times per call, for paths the guest chooses.  The policy answers purely
(:meth:`Policy.check_path`); this class adds the runtime's knowledge that makes those
questions cheap and exact:

- which grants are single files (they cover exactly their path);
- in a mount no rule can tell paths apart (not ``fine``), one answer per mount and rights;
- in a folder where only some children are named by rules (``/d`` with a carve-out
  ``/d/private``), one answer shared by every other child;
- nowhere else is an answer shared between two paths;
- which paths the language runtime looks for itself (housekeeping).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..policy.decision import SUBJECT, AccessDecision
from ..policy.suggest import quote

from ..policy.filesystem import reach
from .fdtable import MountRoot

__all__ = ["Decisions", "Verdict", "inside"]

#: entries each cache of a run may hold: a guest naming millions of places never grows the host past it
_CACHE_MAX = 4096
#: a folder where any child may be its own case (a glob could match inside)
_ALL = frozenset({"\x00all"})


def inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies below it (segment-aware)."""
    return folder == "/" or path == folder or path.startswith(folder + "/")


class Verdict(NamedTuple):
    """The policy's answer for one path, as the guard records it: allowed or not, the deciding
    rule as capability text (None: deny by default), and the decision, said of ``subject`` (a
    decision shared between paths is not copied for each one; its sentence is made when read)."""

    allowed: bool
    capability: str | None
    decision: AccessDecision
    subject: str | None = None

    @classmethod
    def of(cls, decision: AccessDecision, subject: str | None = None) -> "Verdict":
        cap = decision.capability
        return cls(decision.allowed, None if cap is None else cap.text, decision, subject)

    @property
    def reason(self) -> str:
        if self.subject is None:
            return self.decision.reason
        return self.decision.text.replace(SUBJECT, quote(self.subject))

    @classmethod
    def plain(cls, allowed: bool, reason: str) -> "Verdict":
        """A verdict no rule made (learn mode, say)."""
        return cls.of(AccessDecision(allowed, None, reason))


class Decisions:
    """Policy decisions for one run, with the caches that are safe (see the module docstring)."""

    def __init__(self, policy: Any, file_grants: frozenset[str], housekeeping: tuple[str, ...]) -> None:
        self.policy = policy
        self.file_grants = file_grants
        self.housekeeping_paths = housekeeping
        self._housekeeping_exact = frozenset(p for p in housekeeping if not p.endswith("/"))
        self._housekeeping_prefixes = tuple(p for p in housekeeping if p.endswith("/"))
        self._decisions: dict[tuple[str, bool, bool], Verdict] = {}
        self._shared: dict[tuple[str, bool, bool], AccessDecision] = {}
        self._uniform: dict[tuple[str, bool, bool], tuple[AccessDecision, str | None]] = {}  # by mount
        self._folder_rules: dict[str, frozenset[str]] = {}

    def decide(self, path: str, write: bool, directory: bool, mount: MountRoot | None = None) -> Verdict:
        """The policy's decision for one access.

        In a mount whose rules are the whole folder (not ``fine``), every path below it gets the
        same answer for the same rights; in a fine mount, so do the children of a folder that no
        rule names (:meth:`sibling_class`).  There the policy is asked once and its decision
        restated for each path (:meth:`AccessDecision.about`): the per-call cost stays a dict
        lookup.  Nowhere else is a decision shared between two paths.
        """
        if mount is not None and not mount.fine and path != mount.guest:  # the common case, first
            uniform = self._uniform.get((mount.guest, write, directory))
            if uniform is not None and inside(path, mount.guest):
                return Verdict(uniform[0].allowed, uniform[1], uniform[0], path)
        key = (path, write, directory)
        verdict = self._decisions.get(key)
        if verdict is not None:
            return verdict
        share = mount.guest if mount is not None and not mount.fine and path != mount.guest else None
        if share is not None and not inside(path, share):
            share = None
        if share is None and mount is not None and mount.fine:
            share = self.sibling_class(path)
        if share is not None:
            shared = self._shared.get((share, write, directory))
            if shared is not None:
                shared_text = None if shared.capability is None else shared.capability.text
                return Verdict(shared.allowed, shared_text, shared, path)
        decision = self.policy.check_path(path, write, directory=directory, files=self.file_grants)
        verdict = Verdict.of(decision)
        if share is not None and len(self._shared) < _CACHE_MAX:
            self._shared[(share, write, directory)] = decision
            if mount is not None and share == mount.guest:
                self._uniform[(share, write, directory)] = (decision, verdict.capability)
        elif share is None and len(self._decisions) < _CACHE_MAX:
            self._decisions[key] = verdict
        return verdict

    def sibling_class(self, path: str) -> str | None:
        """A key shared by ``path`` and every sibling no rule can tell it apart from, or None.

        In a folder with a carve-out (``/d`` with ``!filesystem:read:/d/private``), every child
        but ``private`` gets the same decision; globs that could match inside the folder make every
        child its own case.  The key is ``<folder>/*`` (never a real path's key)."""
        if path == "/" or "/" not in path:
            return None
        folder, _, name = path.rpartition("/")
        folder = folder or "/"
        special = self._folder_rules.get(folder)
        if special is None:
            special = self._special_children(folder)
            if len(self._folder_rules) < _CACHE_MAX:
                self._folder_rules[folder] = special
        if special is _ALL or name in special:
            return None
        return folder.rstrip("/") + "/*"

    def _special_children(self, folder: str) -> frozenset[str]:
        names: set[str] = set()
        for cap in self.policy.capabilities:
            if cap.domain != "filesystem" or not cap.scope:
                continue
            where = reach(cap, folder)
            if where == "glob":
                return _ALL
            if where == "below":
                names.add(cap.scope[len(folder.rstrip("/")) + 1:].split("/", 1)[0])
        return frozenset(names)

    def gate(self, kind: str, path: str) -> tuple[str, str | None] | None:
        """May a walk pass through this folder (``kind="folder"``) or follow this symlink (``"link"``)?"""
        verdict = self.decide(path, False, kind == "folder")
        if verdict.allowed:
            return None
        return verdict.reason, verdict.capability

    def housekeeping(self, path: str) -> bool:
        """Is ``path`` one the language runtime looks for itself (see :class:`Program.housekeeping`)?"""
        if not self.housekeeping_paths:
            return False
        return path in self._housekeeping_exact or (
            bool(self._housekeeping_prefixes) and path.startswith(self._housekeeping_prefixes))

    def rules_below(self, path: str) -> bool:
        """Could any rule other than a plain folder grant tell paths at or below ``path`` apart?"""
        return any(
            (where := reach(cap, path)) == "glob" or (where is not None and (cap.deny or cap.scope in self.file_grants))
            for cap in self.policy.capabilities
            if cap.domain == "filesystem" and cap.scope
        )
