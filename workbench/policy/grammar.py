"""The capability grammar: every ``domain:action``, what its scope is, and how a scope is checked
and written canonically (:data:`GRAMMAR`).

Why apart from :class:`~workbench.policy.capability.Capability`: the parser walks any
capability text the same way, and what differs from one action to the next is this table,
one canonicaliser per kind of scope (paths, hosts, sizes, durations, shares, names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from workbench.policy import hosts, paths, units
from workbench.policy.suggest import grammar_error, quote

__all__ = [
    "GRAMMAR",
    "LIMIT_DOMAINS",
    "ActionSpec",
    "Canonicaliser",
    "NAME_MAX",
    "PATH_MAX",
    "CONTROL",
    "DOMAIN_ORDER",
    "PAIRS",
    "check_length",
]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_EXPORT = re.compile(r"[A-Za-z0-9_$-][A-Za-z0-9_$.-]*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Canonicaliser = Callable[[str, str], str]


#: the longest path component and path, in UTF-8 bytes (NAME_MAX and PATH_MAX on Linux): the host
#: refuses longer ones with ENAMETOOLONG, which would otherwise surface as a raw OSError
NAME_MAX, PATH_MAX = 255, 4096


def check_length(path: str, text: str, what: str) -> None:
    if len(path.encode()) > PATH_MAX:
        raise grammar_error(f"{what} is longer than {PATH_MAX:,} bytes", text=text, part=path)
    for part in path.split("/"):
        if len(part.encode()) > NAME_MAX:
            raise grammar_error(
                f"{what} has a name longer than {NAME_MAX} bytes: {quote(part)}",
                text=text,
                part=part,
                hint="no filesystem here holds such a name",
            )


def _path(scope: str, text: str) -> str:
    path = paths.normalize_guest_path(scope, context=text)
    check_length(path, text, "guest path")
    return path


def _host(scope: str, text: str) -> str:
    return hosts.format_host_scope(*hosts.parse_host_scope(scope, context=text))


def _env_name(name: str, text: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise grammar_error(
            f"{quote(name)} is not a valid environment variable name",
            text=text,
            part=name,
            hint="names are letters, digits and '_', not starting with a digit",
        )
    return name


def _env_set(scope: str, text: str) -> str:
    name, equals, value = scope.partition("=")
    if not equals:
        raise grammar_error(
            f"env:set needs NAME=value, got {quote(scope)}",
            text=text,
            part=scope,
            hint=f"write {quote('env:set:' + scope + '=value')}, or 'env:inherit:{scope}' to pass the host's value",
        )
    if CONTROL.search(value):
        raise grammar_error(f"the value of {quote(name)} contains a control character", text=text, part=value)
    return f"{_env_name(name, text)}={value}"


def _env_inherit(scope: str, text: str) -> str:
    if "=" in scope:
        raise grammar_error(
            f"env:inherit takes a variable name only, got {quote(scope)}",
            text=text,
            part=scope,
            hint=f"to set a value write {quote('env:set:' + scope)}",
        )
    return _env_name(scope, text)


def _positive_size(scope: str, text: str) -> str:
    size = units.size_bytes(scope, context=text)
    if size <= 0:
        raise grammar_error(f"limit {quote(scope)} must be more than zero", text=text, part=scope)
    return units.format_size(size)


def _size(scope: str, text: str) -> str:
    return units.format_size(units.size_bytes(scope, context=text))


def _positive_duration(scope: str, text: str) -> str:
    seconds = units.duration_seconds(scope, context=text)
    if seconds <= 0:
        raise grammar_error(f"limit {quote(scope)} must be more than zero", text=text, part=scope)
    return units.format_duration(seconds)


def _cpu(scope: str, text: str) -> str:
    stripped = scope.strip()
    if stripped.endswith("%"):
        share = units.percent(stripped, context=text)
        if not 0 < share <= 100:
            raise grammar_error(
                f"CPU share {quote(scope)} must be more than 0% and at most 100%",
                text=text,
                part=scope,
                hint="the share is of one core",
            )
        return f"{units.plain(share)}%"
    if re.fullmatch(r"[0-9.]+", stripped):
        raise grammar_error(
            f"cpu:limit needs a unit, got {quote(scope)}",
            text=text,
            part=scope,
            hint=f"write {quote(stripped + '%')} for a share of one core or {quote(stripped + 's')} for CPU time",
        )
    return _positive_duration(scope, text)


def _fuel(scope: str, text: str) -> str:
    return f"{units.count(scope, context=text):_}"


def _call(scope: str, text: str) -> str:
    module, dot, export = scope.partition(".")
    if not _MODULE.fullmatch(module):
        raise grammar_error(
            f"{quote(module)} is not a valid module name",
            text=text,
            part=module,
            hint="module names are letters, digits, '_' and '-'",
        )
    if dot and not _EXPORT.fullmatch(export):
        raise grammar_error(
            f"{quote(export)} is not a valid export name",
            text=text,
            part=export,
            hint="write 'module' or 'module.export'",
        )
    return scope


@dataclass(frozen=True)
class ActionSpec:
    """What one ``domain:action`` takes: its scope, its parameters, whether it can be denied."""

    scope: Canonicaliser | None
    example: str
    scope_help: str = ""
    params: frozenset[str] = frozenset()
    deniable: bool = True


#: every domain and action, in canonical order (the order of design.md §3)
GRAMMAR: dict[str, dict[str, ActionSpec]] = {
    "filesystem": {
        "read": ActionSpec(_path, "filesystem:read:/docs", "a guest path", frozenset({"host"})),
        "write": ActionSpec(_path, "filesystem:write:/tmp", "a guest path", frozenset({"host"})),
    },
    "network": {
        "http": ActionSpec(_host, "network:http:localhost", "a host[:port]", frozenset({"secret"})),
        "https": ActionSpec(_host, "network:https:*.example.com:443", "a host[:port]", frozenset({"secret"})),
    },
    "env": {
        "set": ActionSpec(_env_set, "env:set:MODE=sandbox", "NAME=value"),
        "inherit": ActionSpec(_env_inherit, "env:inherit:LANG", "a variable name"),
    },
    "memory": {"limit": ActionSpec(_positive_size, "memory:limit:100MB", "a size", deniable=False)},
    "cpu": {"limit": ActionSpec(_cpu, "cpu:limit:50%", "a share like 50% or a CPU time like 2s", deniable=False)},
    "time": {"limit": ActionSpec(_positive_duration, "time:limit:2s", "a duration", deniable=False)},
    "fuel": {"limit": ActionSpec(_fuel, "fuel:limit:1e9", "a whole number", deniable=False)},
    "output": {"limit": ActionSpec(_size, "output:limit:1MB", "a size", deniable=False)},
    "stack": {"limit": ActionSpec(_positive_size, "stack:limit:1MiB", "a size", deniable=False)},
    "module": {"call": ActionSpec(_call, "module:call:parser", "a module or module.export")},
    "clock": {"precise": ActionSpec(None, "clock:precise")},
}
LIMIT_DOMAINS = frozenset(domain for domain, actions in GRAMMAR.items() if "limit" in actions)
DOMAIN_ORDER = {domain: index for index, domain in enumerate(GRAMMAR)}
PAIRS = [f"{domain}:{action}" for domain, actions in GRAMMAR.items() for action in actions]
