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

from ..policy.decision import AccessDecision

from ..policy import paths as guest_paths
from .fdtable import MountRoot

__all__ = ["Decisions", "Verdict", "inside"]

#: a folder where any child may be its own case (a glob could match inside)
_ALL = frozenset({"\x00all"})


def inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies below it (segment-aware)."""
    return folder == "/" or path == folder or path.startswith(folder + "/")


class Verdict(NamedTuple):
    """The policy's answer for one path, as the guard records it."""

    decision: AccessDecision

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    @property
    def capability(self) -> str | None:
        """The deciding rule as its capability text (None: deny by default)."""
        cap = self.decision.capability
        return None if cap is None else str(cap)

    @property
    def reason(self) -> str:
        return self.decision.reason

    @classmethod
    def plain(cls, allowed: bool, reason: str) -> "Verdict":
        """A verdict no rule made (learn mode, say)."""
        return cls(AccessDecision(allowed, None, reason))


class Decisions:
    """Policy decisions for one run, with the caches that are safe (see the module docstring)."""

    def __init__(self, policy: Any, file_grants: frozenset[str], housekeeping: tuple[str, ...]) -> None:
        self.policy = policy
        self.file_grants = file_grants
        self.housekeeping_paths = housekeeping
        self._decisions: dict[tuple[str, bool, bool], Verdict] = {}
        self._shared: dict[tuple[str, bool, bool], AccessDecision] = {}
        self._folder_rules: dict[str, frozenset[str]] = {}

    def decide(self, path: str, write: bool, directory: bool, mount: MountRoot | None = None) -> Verdict:
        """The policy's decision for one access.

        In a mount whose rules are the whole folder (not ``fine``), every path below it gets the
        same answer for the same rights; in a fine mount, so do the children of a folder that no
        rule names (:meth:`sibling_class`).  There the policy is asked once and its decision
        restated for each path (:meth:`AccessDecision.about`): the per-call cost stays a dict
        lookup.  Nowhere else is a decision shared between two paths.
        """
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
                return Verdict(shared.about(path))
        decision = self.policy.check_path(path, write, directory=directory, files=self.file_grants)
        verdict = Verdict(decision)
        if share is not None:
            self._shared[(share, write, directory)] = decision
        elif len(self._decisions) < 4096:
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
            special = self._folder_rules[folder] = self._special_children(folder)
        if special is _ALL or name in special:
            return None
        return folder.rstrip("/") + "/*"

    def _special_children(self, folder: str) -> frozenset[str]:
        names: set[str] = set()
        for cap in self.policy.capabilities:
            if cap.domain != "filesystem" or not cap.scope:
                continue
            scope = cap.scope
            if guest_paths.is_glob(scope):
                static = guest_paths.static_part(scope)
                if inside(static, folder) or inside(folder, static):
                    return _ALL
            elif scope != folder and inside(scope, folder):
                names.add(scope[len(folder.rstrip("/")) + 1:].split("/", 1)[0])
        return frozenset(names)

    def gate(self, kind: str, path: str) -> tuple[str, str | None] | None:
        """May a walk pass through this folder (``kind="folder"``) or follow this symlink (``"link"``)?"""
        verdict = self.decide(path, False, kind == "folder")
        if verdict.allowed:
            return None
        return verdict.reason, verdict.capability

    def housekeeping(self, path: str) -> bool:
        return any(path == item or (item.endswith("/") and path.startswith(item)) for item in self.housekeeping_paths)

    def rules_below(self, path: str) -> bool:
        """Could any rule other than a plain folder grant tell paths at or below ``path`` apart?"""
        for cap in self.policy.capabilities:
            if cap.domain != "filesystem" or not cap.scope:
                continue
            scope = cap.scope
            if guest_paths.is_glob(scope):
                static = guest_paths.static_part(scope)
                if inside(static, path) or inside(path, static):
                    return True
            elif (cap.deny or scope in self.file_grants) and (inside(scope, path) or inside(path, scope)):
                return True
        return False
