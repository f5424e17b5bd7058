"""One capability: ``[!]domain:action[:scope][;param=value]...``, parsed and canonical.

Why a strict grammar with a canonical form: capability strings travel into
audit records, manifests and notebooks, and two spellings of one right must
compare equal there.  So :meth:`Capability.parse` checks everything it can
(domain, action, scope syntax, units, parameters) and stores the scope in one
canonical spelling; ``str(cap)`` writes it back and
``Capability.parse(str(cap)) == cap``.

Parsing order, and why: parameters are cut off at the first ``;`` (a host path
may hold ``:``), then the head is split on its first two colons only (a scope
may hold ``host:port``).  A consequence: scopes and parameter values cannot
contain ``;``.

Text a person cannot see is refused, never dropped: only ASCII whitespace around a
capability is trimmed, and a control, format or separator character anywhere in it
(U+2028, U+00A0, a zero-width joiner, a lone surrogate, ...) is an error naming it.
``str.strip()`` would turn ``/docs\u2028`` into ``/docs``, a grant nobody wrote.
A ``;host=`` folder must be absolute (or start at ``~``): a relative one would mean
a different folder for every working directory.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

from workbench.errors import CapabilityError
from workbench.policy.grammar import (
    CONTROL,
    DOMAIN_ORDER,
    GRAMMAR,
    LIMIT_DOMAINS,
    PAIRS,
    ActionSpec,
    Canonicaliser,
    check_length,
)
from workbench.policy.suggest import grammar_error, nearest, quote

__all__ = ["Capability", "GRAMMAR", "LIMIT_DOMAINS", "ActionSpec", "MAX_CAPABILITY_CHARS"]

#: the longest capability text accepted (two PATH_MAX-long paths fit)
MAX_CAPABILITY_CHARS = 8192
#: Unicode categories refused anywhere in a capability: controls, format characters
#: (zero-width, bidi overrides), surrogates, line and paragraph separators; and every
#: space separator except the ASCII space
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

def _unknown_domain(domain: str, action: str | None, text: str) -> CapabilityError:
    """The error for a domain not in the grammar, with the best suggestion we can find."""
    if action is not None and not re.fullmatch(r"[A-Za-z_-]+", action):
        action = None  # 'filesystemread:/docs': what follows is a scope, not an action
    if action is not None and f"{action}:{domain}" in PAIRS:
        return grammar_error(
            f"domain and action swapped in {quote(domain + ':' + action)}",
            text=text,
            part=f"{domain}:{action}",
            suggestion=f"{action}:{domain}",
        )
    owners = [d for d, actions in GRAMMAR.items() if domain in actions]
    if len(owners) == 1:
        return grammar_error(
            f"{quote(domain)} is an action, not a capability domain",
            text=text,
            part=domain,
            suggestion=f"{owners[0]}:{domain}",
        )
    squashed = {p.replace(":", ""): p for p in PAIRS}
    if action is None and (hit := nearest(domain, squashed, cutoff=0.85)) is not None:
        # 'filesystemread': the colon between domain and action went missing
        return grammar_error(f"unknown capability {quote(domain)}", text=text, part=domain, suggestion=squashed[hit])
    guess = nearest(domain, GRAMMAR)
    if guess is not None and (action is None or action in GRAMMAR[guess]):
        return grammar_error(f"unknown capability domain {quote(domain)}", text=text, part=domain, suggestion=guess)
    whole = f"{domain}:{action}" if action is not None else domain
    pair = nearest(whole, PAIRS)
    if pair is not None:
        return grammar_error(f"unknown capability {quote(whole)}", text=text, part=whole, suggestion=pair)
    return grammar_error(
        f"unknown capability domain {quote(domain)}",
        text=text,
        part=domain,
        suggestion=guess,
        hint=f"domains: {', '.join(GRAMMAR)}",
    )


def _unknown_action(domain: str, action: str, text: str) -> CapabilityError:
    actions = GRAMMAR[domain]
    guess = nearest(action, actions)
    if guess is not None:
        return grammar_error(
            f"unknown action {quote(action)} for domain {quote(domain)}", text=text, part=action, suggestion=guess
        )
    elsewhere = [pair for pair in PAIRS if pair.endswith(":" + action)]
    whole = f"{domain}:{action}"
    if elsewhere:
        return grammar_error(f"unknown capability {quote(whole)}", text=text, part=whole, suggestion=elsewhere[0])
    return grammar_error(
        f"unknown action {quote(action)} for domain {quote(domain)}",
        text=text,
        part=action,
        hint=f"{domain} actions: {', '.join(actions)}",
    )


def _check_characters(text: str) -> None:
    """Refuse text a person cannot see (see the module docstring)."""
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category in _INVISIBLE or (category == "Zs" and char != " "):
            name = unicodedata.name(char, "") if category != "Cs" else "a lone surrogate, not text"
            raise grammar_error(
                f"capability contains an invisible character U+{ord(char):04X}"
                + (f" ({name})" if name else "")
                + f" at position {index}",
                text=text,
                part=char,
                hint="write capabilities in visible characters; remove it (often pasted in by an editor)",
            )


def _host_folder(value: str, text: str) -> str:
    """A ``;host=`` folder: absolute, or under the user's home (``~``, ``~/...``)."""
    if not (value.startswith("/") or value == "~" or value.startswith("~/")):
        raise grammar_error(
            f"host folder {quote(value)} is not an absolute path",
            text=text,
            part=value,
            hint="write ';host=/full/path' or ';host=~/path': a relative folder would depend on "
            "the folder workbench was started from",
        )
    check_length(value, text, "host folder")
    return value


_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _secret_name(value: str, text: str) -> str:
    """A ``;secret=`` name: the host environment variable (or ``Sandbox(secrets=...)`` key) whose value
    the host puts into this grant's requests (workbench.network.secrets); the name only, never a value."""
    if not _SECRET_NAME.fullmatch(value):
        raise grammar_error(
            f"secret name {quote(value)} is not a valid name",
            text=text,
            part=value,
            hint="name the secret like an environment variable, e.g. ';secret=API_KEY'; never write its value here",
        )
    return value


#: checks (and canonical spelling) of parameter values, by parameter name
_PARAM_VALUES: dict[str, Canonicaliser] = {"host": _host_folder, "secret": _secret_name}


def _params(raw: str, spec: ActionSpec, key: str, deny: bool, text: str) -> tuple[tuple[str, str], ...]:
    found: dict[str, str] = {}
    for item in raw.split(";"):
        name, equals, value = item.partition("=")
        if not item:
            raise grammar_error("empty parameter (a stray ';')", text=text, part=";")
        if not spec.params:
            raise grammar_error(f"{key} takes no parameters, got {quote(item)}", text=text, part=item)
        if not equals or not name:
            raise grammar_error(
                f"malformed parameter {quote(item)}", text=text, part=item, hint="parameters are written ';name=value'"
            )
        if name not in spec.params:
            raise grammar_error(
                f"unknown parameter {quote(name)} for {key}",
                text=text,
                part=name,
                suggestion=nearest(name, spec.params),
                hint=f"{key} takes: {', '.join(sorted(spec.params))}",
            )
        if not value or CONTROL.search(value):
            raise grammar_error(f"parameter {quote(name)} needs a value", text=text, part=item)
        if name in found:
            raise grammar_error(f"parameter {quote(name)} given twice", text=text, part=name)
        check = _PARAM_VALUES.get(name)
        found[name] = check(value, text) if check is not None else value
    if deny and found:
        raise grammar_error(
            "a deny rule takes no parameters",
            text=text,
            part=raw,
            hint="a deny carves a path or host out of a grant; put ';host=' and ';secret=' on the grant",
        )
    return tuple(sorted(found.items()))


@dataclass(frozen=True)
class Capability:
    """One right (or, with ``deny=True``, one carve-out), in canonical form.

    Build it with :meth:`parse`; the fields are already canonical there, which
    is what makes ``==`` and ``hash`` mean "the same right".
    """

    domain: str
    action: str
    scope: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    deny: bool = False

    @classmethod
    def parse(cls, text: str) -> Capability:
        """Parse ``[!]domain:action[:scope][;param=value]...``.

        Raises :class:`~workbench.errors.CapabilityError` with ``text`` (the
        whole capability), ``part`` (the bad piece) and ``suggestion`` (the
        nearest valid word) when it does not follow the grammar.  A
        :class:`Capability` is returned as it is.
        """
        if isinstance(text, Capability):
            return text
        if not isinstance(text, str):
            raise CapabilityError(f"a capability is text, not {type(text).__name__}")
        if len(text) > MAX_CAPABILITY_CHARS:
            raise CapabilityError(
                f"a capability of {len(text):,} characters (the most is {MAX_CAPABILITY_CHARS:,}): "
                f"{quote(text[:40])}...",
                text=text[:MAX_CAPABILITY_CHARS],
                hint="write it like 'filesystem:read:/docs'",
            )
        text = text.strip(" \t\r\n")  # ASCII only: see the module docstring
        _check_characters(text)
        if not text:
            raise grammar_error("empty capability", text=text, hint="write it like 'filesystem:read:/docs'")
        deny = text.startswith("!")
        body = text[1:] if deny else text
        if body.startswith("!") or body[:1].isspace():
            raise grammar_error("a deny rule has one '!' directly before the domain", text=text, part=text[:2])
        head, semicolon, raw_params = body.partition(";")
        pieces = head.split(":", 2)
        domain = pieces[0]
        action = pieces[1] if len(pieces) > 1 else None
        scope = pieces[2] if len(pieces) > 2 else None
        if not domain:
            raise grammar_error("missing capability domain", text=text, hint="write it like 'filesystem:read:/docs'")
        if domain not in GRAMMAR:
            raise _unknown_domain(domain, action, text)
        actions = GRAMMAR[domain]
        if not action:
            only = next(iter(actions)) if len(actions) == 1 else None
            raise grammar_error(
                f"capability {quote(head)} needs an action",
                text=text,
                part=domain,
                suggestion=f"{domain}:{only}" if only else None,
                hint=f"{domain} actions: {', '.join(actions)}",
            )
        if action not in actions:
            raise _unknown_action(domain, action, text)
        spec = actions[action]
        key = f"{domain}:{action}"
        if deny and not spec.deniable:
            raise grammar_error(
                f"{key} cannot be denied",
                text=text,
                part="!",
                hint="a limit is a ceiling, not a right: lower the limit instead of denying it",
            )
        if spec.scope is None:
            if scope is not None:
                raise grammar_error(f"{key} takes no scope, got {quote(scope)}", text=text, part=scope, suggestion=key)
        else:
            if not scope:
                raise grammar_error(
                    f"{key} needs a scope ({spec.scope_help})",
                    text=text,
                    part=key,
                    hint=f"write it like {quote(spec.example)}",
                )
            scope = spec.scope(scope, text)
        params = _params(raw_params, spec, key, deny, text) if semicolon else ()
        return cls(domain, action, scope, params, deny)

    def __str__(self) -> str:
        return self.text

    @cached_property
    def text(self) -> str:
        """The canonical capability string (what ``str()`` gives; computed once, since records
        and decisions ask for it on every guarded call)."""
        text = ("!" if self.deny else "") + f"{self.domain}:{self.action}"
        if self.scope is not None:
            text += f":{self.scope}"
        return text + "".join(f";{name}={value}" for name, value in self.params)

    @property
    def key(self) -> str:
        """``domain:action``, e.g. ``filesystem:read``."""
        return f"{self.domain}:{self.action}"

    @property
    def is_limit(self) -> bool:
        """A ceiling on resources (``memory:limit``, ...), not a right."""
        return self.action == "limit"

    def param(self, name: str) -> str | None:
        """The value of parameter ``name``, or None."""
        return dict(self.params).get(name)

    @property
    def sort_key(self) -> tuple[int, int, tuple[str, ...], bool, tuple[tuple[str, str], ...]]:
        """Canonical order: by domain and action as in the grammar, then scope, a deny
        right after the grant it carves from."""
        actions = list(GRAMMAR[self.domain])
        scope = tuple(self.scope.split("/")) if self.domain == "filesystem" and self.scope else (self.scope or "",)
        return (DOMAIN_ORDER[self.domain], actions.index(self.action), scope, self.deny, self.params)
