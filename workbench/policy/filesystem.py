"""Filesystem rights: grants as mount points (:class:`FsGrant`), path checks, and nesting.

Rules, in the order they apply:

- a deny rule wins: ``!filesystem:read:X`` blocks reading and writing at and
  below X, ``!filesystem:write:X`` blocks only writing; a deny glob also
  blocks everything below a path it matches;
- a folder grant covers the folder and everything below it, segment-aware;
- a glob grant covers exactly the paths it matches, plus read-only traversal
  of the folders on the way to a match (``directory=True``);
- writing needs a write grant (write implies read); nothing granted, nothing allowed;
- a grant named in ``files`` (a single-file grant: the runtime found a file there) covers
  exactly that path, never what might lie below it and never a folder made in its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

from workbench.caches import memoized
from workbench.policy import paths
from workbench.policy.capability import Capability
from workbench.policy.decision import SUBJECT, AccessDecision
from workbench.policy.suggest import quote

__all__ = [
    "FsGrant",
    "check_path",
    "grant_matches",
    "deny_matches",
    "covers",
    "neutralises",
    "static_of",
    "Coverage",
    "literal_grant",
    "reach",
    "Reach",
]

Coverage = Literal["folder", "exact"]
#: where a filesystem rule lies relative to a path (see :func:`reach`)
Reach = Literal["glob", "at", "below", "above"]


@memoized("path shapes")
def _shape(scope: str) -> tuple[str, bool]:
    """(static folder, is glob) of a filesystem scope; cached because checks run per syscall."""
    glob = paths.is_glob(scope)
    return (paths.static_part(scope) if glob else scope), glob


def static_of(cap: Capability) -> str:
    """The folder a filesystem capability is rooted at (a glob's static part)."""
    return _shape(cap.scope or "/")[0]


@dataclass(frozen=True)
class FsGrant:
    """A non-deny filesystem capability, seen as a mount point.

    - ``guest_path``: the folder to expose (for a glob, its static part:
      ``/data`` for ``/data/**/*.json``)
    - ``writable``: a write grant
    - ``pattern``: the glob, if the grant is one (the guard enforces it per file)
    - ``host``: the host folder from ``;host=``, or None for ``<root><guest_path>``
    - ``capability``: the capability this came from (for audit records)
    """

    guest_path: str
    writable: bool
    pattern: str | None
    host: str | None
    capability: Capability

    @classmethod
    def from_capability(cls, cap: Capability) -> FsGrant:
        static, glob = _shape(cap.scope or "/")
        return cls(static, cap.action == "write", cap.scope if glob else None, cap.param("host"), cap)


def grant_matches(cap: Capability, path: str, files: frozenset[str] = frozenset()) -> bool:
    """The grant covers ``path`` itself (folder: at or below it; glob: a match; a file: exactly it)."""
    scope = cap.scope or "/"
    if scope in files:
        return path == scope
    return paths.glob_matches(path, scope) if _shape(scope)[1] else paths.within(path, scope)


def _traverses(cap: Capability, path: str) -> bool:
    scope = cap.scope or "/"
    return _shape(scope)[1] and paths.leads_to_match(path, scope)


def deny_matches(cap: Capability, path: str) -> bool:
    """The deny rule covers ``path`` (at or below its folder, or at or below a glob match)."""
    scope = cap.scope or "/"
    return paths.glob_matches_or_below(path, scope) if _shape(scope)[1] else paths.within(path, scope)


def _specificity(cap: Capability) -> tuple[int, bool, bool]:
    static, glob = _shape(cap.scope or "/")
    return len(paths.segments(static)), not glob, cap.action == "write"


def check_path(
    grants: Iterable[Capability],
    denies: Iterable[Capability],
    guest_path: str,
    write: bool,
    *,
    directory: bool = False,
    files: frozenset[str] = frozenset(),
) -> AccessDecision:
    """Decide one access; see the module docstring for the rules.

    A path that is not absolute or holds ``.``/``..`` segments is denied, not
    raised: it comes from the guest, and a malformed request is a refusal.
    """
    if not isinstance(guest_path, str) or not guest_path.startswith("/"):
        return AccessDecision.deny(f"{guest_path!r} is not an absolute guest path")
    parts = paths.segments(guest_path)
    if any(part in (".", "..") for part in parts):
        return AccessDecision.deny(f"{quote(guest_path)} is not normalised ('.' or '..' segment)")
    path = "/" + "/".join(parts)
    for deny in denies:
        if deny.domain == "filesystem" and (write or deny.action == "read") and deny_matches(deny, path):
            return AccessDecision.deny(f"{SUBJECT} is denied by {quote(str(deny))}", deny, path)
    best: Capability | None = None
    traversal = False
    read_only: Capability | None = None
    for grant in grants:
        if grant.domain != "filesystem":
            continue
        hit = grant_matches(grant, path, files) and not (directory and grant.scope in files)
        walk = not hit and directory and not write and _traverses(grant, path)
        if not (hit or walk):
            continue
        if write and grant.action != "write":
            read_only = read_only or grant
            continue
        if best is None or (not walk, _specificity(grant)) > (not traversal, _specificity(best)):
            best, traversal = grant, walk
    if best is not None:
        if traversal:
            return AccessDecision.allow(best, f"{SUBJECT} is a folder on the way to {quote(str(best))}", path)
        verb = "writable" if write else "readable"
        return AccessDecision.allow(best, f"{SUBJECT} is {verb} under {quote(str(best))}", path)
    if read_only is not None:
        return AccessDecision.deny(
            f"{SUBJECT} is read-only under {quote(str(read_only))}; writing needs a filesystem:write grant",
            read_only,
            path,
        )
    return AccessDecision.deny(f"no filesystem grant covers {SUBJECT}", None, path)


def covers(parent: Capability, child_scope: str) -> Coverage | None:
    """How parent grant ``parent`` covers a child's filesystem scope, if it does.

    ``"folder"``: everything the child's scope allows lies in the parent's
    (a folder holding the child's folder or glob, or the very same glob).
    ``"exact"``: the child names a path the parent glob matches; only that
    path is covered, not what lies below it, so attenuation carves the rest out.
    """
    parent_scope = parent.scope or "/"
    parent_static, parent_glob = _shape(parent_scope)
    child_static, child_glob = _shape(child_scope)
    if not parent_glob:
        return "folder" if paths.within(child_static, parent_scope) else None
    if child_glob:
        return "folder" if child_scope == parent_scope else None
    return "exact" if paths.glob_matches(child_scope, parent_scope) else None


def neutralises(deny: Capability, child_scope: str) -> bool:
    """Deny rule ``deny`` blocks everything a grant of ``child_scope`` could allow.

    Such a grant gains nothing under that deny, so asking for it is not an escalation.
    """
    return deny_matches(deny, _shape(child_scope)[0])


_UNSAFE_IN_LITERALS = frozenset(";,")


def literal_grant(action: str, path: str) -> str | None:
    """``filesystem:<action>:<path>`` when that capability names exactly ``path`` and nothing else.

    None for a path the grammar cannot state literally: glob characters would make it a
    pattern, ``;`` a parameter (``;host=``), spaces or commas a second capability, and control
    characters, backslashes or ``.``/``..`` segments are refused.  Used for learn mode's
    suggestions, where the path is guest data.
    """
    if paths.is_glob(path) or any(ch in _UNSAFE_IN_LITERALS or ch.isspace() for ch in path):
        return None
    text = f"filesystem:{action}:{path}"
    try:
        cap = Capability.parse(text)
    except ValueError:
        return None
    if cap.scope != path or cap.params or paths.is_glob(cap.scope or ""):
        return None
    return text


def reach(cap: Capability, path: str) -> Reach | None:
    """Where rule ``cap`` lies relative to ``path``, for deciding whether it can tell paths there apart.

    ``"glob"``: a glob rooted at, above or below ``path`` (it could match anywhere in reach);
    ``"at"``: a plain scope equal to ``path``; ``"below"``: strictly below it; ``"above"``: a plain
    scope holding ``path`` (it treats everything there alike); None: unrelated.
    """
    scope = cap.scope or "/"
    static, glob = _shape(scope)
    if glob:
        return "glob" if paths.within(static, path) or paths.within(path, static) else None
    if scope == path:
        return "at"
    if paths.within(scope, path):
        return "below"
    if paths.within(path, scope):
        return "above"
    return None
