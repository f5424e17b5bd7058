"""From magic options to what :class:`~workbench.Sandbox` takes: capabilities and default limits.

Pure Python (no IPython), so the mapping is tested on its own.  The shortcut
options are spelled as the capabilities they stand for, so a run's policy,
its audit records and its summary all show the same rule text:

========================  ======================
``--timeout 2s``          ``time:limit:2s``
``--memory 64MB``         ``memory:limit:64MB``
``--cpu 50%``/``2s``      ``cpu:limit:50%``/``cpu:limit:2s``
``--fuel 1e9``            ``fuel:limit:1e9``
========================  ======================

Configured defaults (``%config SandboxMagics.default_memory = '64MB'``) do not
become capabilities: they are :class:`~workbench.Limits` handed to
``Sandbox(defaults=...)``, which uses them only where the policy sets no limit,
so an explicit ``--memory`` larger than the default still wins.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping

from ..errors import CapabilityError
from ..policy import Capability, Limits, Policy

__all__ = ["SHORTCUTS", "shortcut_capabilities", "default_limits", "parse_assignments", "resolve_policy"]

#: option name → capability domain of the limit it sets
SHORTCUTS: dict[str, str] = {"timeout": "time", "memory": "memory", "cpu": "cpu", "fuel": "fuel"}


def shortcut_capabilities(values: Mapping[str, str | None]) -> list[str]:
    """``{"timeout": "2s", "memory": None}`` → ``["time:limit:2s"]`` (unset options give nothing)."""
    caps = []
    for option, domain in SHORTCUTS.items():
        value = values.get(option)
        if value is not None and str(value).strip():
            caps.append(f"{domain}:limit:{str(value).strip()}")
    return caps


def default_limits(values: Mapping[str, str | None], base: Limits) -> Limits:
    """Configured defaults (same spelling as the shortcut options) over ``base``.

    Raises :class:`~workbench.errors.CapabilityError` for a value that does not
    parse, naming the setting.
    """
    caps = []
    for option, value in values.items():
        if value is None or not str(value).strip():
            continue
        text = f"{SHORTCUTS[option]}:limit:{str(value).strip()}"
        try:
            caps.append(Capability.parse(text))
        except CapabilityError as exc:
            raise CapabilityError(
                f"SandboxMagics.default_{option} = {value!r} is not valid: {exc.message}",
                text=text,
                hint=exc.hint or f"e.g. %config SandboxMagics.default_{option} = '{_EXAMPLES[option]}'",
            ) from exc
    return Limits.from_capabilities(caps).with_defaults(base)


_EXAMPLES = {"timeout": "10s", "memory": "64MB", "cpu": "50%", "fuel": "1e9"}


def parse_assignments(items: Iterable[str], option: str) -> dict[str, str]:
    """``["x=data", "n=count"]`` → ``{"x": "data", "n": "count"}``; raises ValueError naming ``option``."""
    pairs: dict[str, str] = {}
    for item in items:
        name, equals, variable = item.partition("=")
        name, variable = name.strip(), variable.strip()
        if not equals or not name.isidentifier() or not variable:
            raise ValueError(f"{option} takes NAME=VARIABLE, got {item!r}")
        pairs[name] = variable
    return pairs


def resolve_policy(
    name: str | None,
    named: Mapping[str, Policy],
    namespace: Mapping[str, Any],
) -> Policy:
    """The policy ``--policy NAME`` refers to: a ``%sandbox_policy`` name first, then a
    notebook variable holding a :class:`Policy` (or capability strings).

    Raises KeyError with a did-you-mean message when neither exists.
    """
    if name is None:
        return Policy.parse([])
    if name in named:
        return named[name]
    value = namespace.get(name)
    if isinstance(value, Policy):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return Policy.parse(value)
    close = difflib.get_close_matches(name, list(named), n=1)
    known = ", ".join(sorted(named)) or "none yet"
    suggestion = f" — did you mean {close[0]!r}?" if close else ""
    raise KeyError(
        f"unknown policy {name!r}{suggestion} (defined: {known}); "
        "define one with %sandbox_policy NAME CAP... or pass a variable holding a Policy"
    )
