"""Secrets the guest never sees: :class:`Secrets`, the placeholder, substitution and scrubbing.

A grant may carry a secret, ``network:https:api.example.com;secret=API_KEY``.  The guest writes
the placeholder ``{{secret:API_KEY}}`` in a header value (``Authorization: Bearer
{{secret:API_KEY}}``); the host replaces it with the value only in requests that a grant
carrying ``secret=API_KEY`` allows, hop by hop, so a placeholder sent (or redirected) to any
other host goes out literally.  The value comes from ``Sandbox(secrets={...})`` or, failing
that, the host environment.

Where the value could come back, the host takes it out again: every occurrence in a response
(headers and body) is replaced by the placeholder before the guest reads it, and every sentence
recorded (events, the audit log, error reasons) passes :meth:`Secrets.scrub`.  A server that
returns the value transformed (encoded, split) is beyond this: a grant with a secret trusts its
host with it.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Mapping

from workbench.errors import PolicyError

__all__ = ["Secrets", "placeholder", "SecretError"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{\{secret:([A-Za-z_][A-Za-z0-9_]*)\}\}")
_HEADER_SAFE = re.compile(r"[\x20-\x7e]+")


def placeholder(name: str) -> str:
    """What the guest writes where the value of secret ``name`` goes: ``{{secret:NAME}}``."""
    return "{{secret:" + name + "}}"


class SecretError(ValueError):
    """A secret the guest asked for that the host cannot supply (not set, or not fit for a header)."""


class Secrets:
    """Secret values by name: a mapping first, then (when ``environ`` is given) the host environment.

    Its repr names the secrets, never their values; so does every message it makes.
    """

    __slots__ = ("_mapping", "_environ")

    def __init__(self, mapping: Mapping[str, str] | None = None, *, environ: Mapping[str, str] | None = os.environ):
        checked: dict[str, str] = {}
        for name, value in (mapping or {}).items():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise PolicyError(f"secret name {name!r} is not a valid name",
                                  hint="name secrets like environment variables: letters, digits and '_'")
            if not isinstance(value, str):
                raise PolicyError(f"the value of secret {name!r} must be text, not {type(value).__name__}",
                                  hint="pass secrets={'NAME': 'value'} with text values")
            checked[name] = value
        self._mapping = checked
        self._environ = environ

    @classmethod
    def of(cls, secrets: Secrets | Mapping[str, str] | None) -> Secrets:
        return secrets if isinstance(secrets, Secrets) else cls(secrets)

    def __repr__(self) -> str:
        return f"Secrets(names={sorted(self._mapping)!r}, environ={self._environ is not None})"

    def lookup(self, name: str) -> str | None:
        """The value of ``name``, or None when neither the mapping nor the environment has a non-empty one."""
        value = self._mapping.get(name)
        if value is None and self._environ is not None:
            value = self._environ.get(name)
        return value or None

    def substitute(self, value: str, allowed: frozenset[str]) -> tuple[str, frozenset[str]]:
        """``value`` with the placeholders of the ``allowed`` names replaced; and the names used.

        Placeholders of other names stay as written.  :class:`SecretError` when an allowed secret
        is not set or cannot go into a header (the message names it, never its value).
        """
        used: set[str] = set()

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in allowed:
                return match.group(0)
            secret = self.lookup(name)
            if secret is None:
                raise SecretError(
                    f"secret {name!r} is not set; set it in the host environment or pass Sandbox(secrets={{{name!r}: ...}})"
                )
            if not _HEADER_SAFE.fullmatch(secret):
                raise SecretError(f"secret {name!r} holds characters a header cannot carry (controls or non-ASCII)")
            used.add(name)
            return secret

        if "{{" not in value or not allowed:
            return value, frozenset()
        return _PLACEHOLDER.sub(replace, value), frozenset(used)

    def values(self, names: Iterable[str]) -> list[tuple[str, str]]:
        """(name, value) of the named secrets that are set, longest value first (for scrubbing)."""
        found = [(n, v) for n in set(names) if (v := self.lookup(n)) is not None]
        return sorted(found, key=lambda item: -len(item[1]))

    @staticmethod
    def scrub(text: str, values: list[tuple[str, str]]) -> str:
        """``text`` with every secret value replaced by its placeholder."""
        for name, value in values:
            if value in text:
                text = text.replace(value, placeholder(name))
        return text

    @staticmethod
    def scrub_bytes(data: bytes, values: list[tuple[str, str]]) -> bytes:
        for name, value in values:
            raw = value.encode()
            if raw in data:
                data = data.replace(raw, placeholder(name).encode())
        return data
