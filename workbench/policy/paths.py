"""Guest paths and globs: normalising, matching, and which folder a glob lives in.

Guest paths name places in the sandbox's virtual filesystem, never on the
host, so they are handled as plain POSIX strings on every platform.  ``.`` and
``..`` segments are refused outright rather than resolved: a capability that
needs them is either a mistake or an attempt to climb out of a grant.

Globs use wcmatch with GLOBSTAR (``**`` spans folders) and DOTGLOB (``*``
matches dot-files too, so ``!filesystem:read:/docs/*.key`` also hides
``/docs/.old.key``); brace and extended globs are off so that ``{``, ``@``
and ``!`` are ordinary characters.
"""

from __future__ import annotations

import re

from wcmatch import fnmatch, glob

from workbench.policy.suggest import grammar_error, quote

__all__ = [
    "normalize_guest_path",
    "is_glob",
    "static_part",
    "segments",
    "within",
    "glob_matches",
    "glob_matches_or_below",
    "leads_to_match",
]

GLOB_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.FORCEUNIX
_SEGMENT_FLAGS = fnmatch.DOTMATCH | fnmatch.FORCEUNIX
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalize_guest_path(path: str, *, context: str | None = None) -> str:
    """Canonical absolute guest path: ``//`` collapsed, no trailing ``/`` (except ``/``).

    Raises :class:`~workbench.errors.CapabilityError` for a relative path, a
    backslash, control characters, or ``.``/``..`` segments.
    """
    text = context or path
    if not path:
        raise grammar_error("empty guest path", text=text, part=path)
    if not path.startswith("/"):
        raise grammar_error(
            f"guest path {quote(path)} must be absolute",
            text=text,
            part=path,
            hint=f"guest paths start at the sandbox root: write {quote('/' + path)}",
        )
    if "\\" in path:
        raise grammar_error(
            f"guest path {quote(path)} contains a backslash",
            text=text,
            part=path,
            hint="guest paths use '/' on every platform",
        )
    if _CONTROL.search(path):
        raise grammar_error(f"guest path {quote(path)} contains a control character", text=text, part=path)
    parts = segments(path)
    for part in parts:
        if part in (".", ".."):
            raise grammar_error(
                f"guest path {quote(path)} contains a {quote(part)} segment",
                text=text,
                part=path,
                hint="write the path without '.' and '..'; a grant names a place, it cannot climb above it",
            )
    return "/" + "/".join(parts)


def segments(path: str) -> list[str]:
    """The non-empty segments of ``path`` (``'/a//b/' -> ['a', 'b']``)."""
    return [part for part in path.split("/") if part]


def is_glob(path: str) -> bool:
    """Whether ``path`` holds glob syntax (``*``, ``?``, ``[...]``)."""
    return bool(glob.is_magic(path, flags=GLOB_FLAGS))


def static_part(path: str) -> str:
    """The folder a glob lives in: its segments before the first one with glob syntax.

    ``/data/**/*.json -> /data``, ``/*.txt -> /``; a plain path is returned as is.
    """
    static: list[str] = []
    for part in segments(path):
        if is_glob(part):
            break
        static.append(part)
    return "/" + "/".join(static)


def within(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies below it, segment-aware (``/docs`` does not hold ``/docs2``)."""
    return folder == "/" or path == folder or path.startswith(folder + "/")


def glob_matches(path: str, pattern: str) -> bool:
    """``path`` matches the glob ``pattern`` exactly."""
    return bool(glob.globmatch(path, pattern, flags=GLOB_FLAGS))


def glob_matches_or_below(path: str, pattern: str) -> bool:
    """``path`` matches ``pattern``, or lies below a path that does.

    This is how deny globs are read: denying ``/data/*/secret`` also denies
    everything inside each matching ``secret`` folder.
    """
    rooted = pattern.rstrip("/") + "/**" if pattern != "/" else "/**"
    return bool(glob.globmatch(path, [pattern, rooted], flags=GLOB_FLAGS))


def leads_to_match(path: str, pattern: str) -> bool:
    """``path`` is a folder on the way to something ``pattern`` could match.

    Only folders at or below the glob's static folder count, so under
    ``/data/**/*.json`` the folders ``/data`` and ``/data/x`` lead to matches
    but ``/`` does not (it is outside the grant, as for a plain folder grant).
    """
    have = segments(path)
    want = segments(pattern)
    if len(have) < len(segments(static_part(pattern))):
        return False
    for index, part in enumerate(have):
        if index >= len(want):
            return False
        if want[index] == "**":
            return True
        if not fnmatch.fnmatch(part, want[index], flags=_SEGMENT_FLAGS):
            return False
    return True
