"""The guest's JSON request, read strictly into an :class:`Ask` (or refused): :func:`read_request`.

Why strict: the bytes come from the guest.  Everything that could be read two ways or cost the
host without bound is refused with a sentence saying what to fix: bytes over the size cap,
invalid UTF-8, JSON nested deeply enough to exhaust the parser, a key given twice (``"url"``
twice: which one was checked?), unknown keys, wrong types, a body given both as text and as
base64, invalid base64.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from workbench.network.limits import METHODS, NetworkLimits

__all__ = ["Ask", "EnvelopeError", "read_request"]

_KEYS = frozenset({"method", "url", "headers", "body", "body_base64"})
_EXAMPLE = '{"method": "GET", "url": "http://localhost:8080/", "headers": {"Accept": "text/plain"}}'


class EnvelopeError(ValueError):
    """A request refused before any policy check; ``url`` is the URL text when one was read."""

    def __init__(self, message: str, url: str | None = None, method: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.method = method


@dataclass(frozen=True)
class Ask:
    """What the guest asked for, with the right types (not yet checked against anything)."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise EnvelopeError(f"the key {key!r} is given twice; give each key once")
        seen[key] = value
    return seen


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def read_request(data: object, limits: NetworkLimits) -> Ask:
    """Parse one request; :class:`EnvelopeError` says what is wrong with it."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EnvelopeError(f"a request is bytes, not {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > limits.max_envelope_bytes:
        raise EnvelopeError(
            f"the request is {len(raw):,} bytes (the most is {limits.max_envelope_bytes:,}); send a smaller body"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"the request is not valid UTF-8 (byte {exc.start}); write it as UTF-8 JSON") from None
    try:
        value = _DECODER.decode(text)
    except EnvelopeError:
        raise
    except (ValueError, RecursionError) as exc:
        detail = str(exc)[:200] if isinstance(exc, ValueError) else "nested too deeply"
        raise EnvelopeError(f"the request is not valid JSON ({detail}); write it like {_EXAMPLE}") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"the request must be a JSON object, like {_EXAMPLE}")
    url = value.get("url")
    url_text = url if isinstance(url, str) else None
    method = value.get("method")
    method_text = method if isinstance(method, str) and len(method) <= 16 else None

    def fail(message: str) -> EnvelopeError:
        return EnvelopeError(message, url_text, method_text)

    unknown = [] if _KEYS.issuperset(value) else sorted(set(value) - _KEYS)
    if unknown:
        raise fail(f"unknown key {unknown[0][:40]!r}; the keys are {', '.join(sorted(_KEYS))}")
    if not isinstance(method, str):
        raise fail("'method' must be text, like \"GET\"")
    if method not in METHODS:
        hint = f"write {method.upper()!r}" if method.upper() in METHODS else f"use one of {', '.join(sorted(METHODS))}"
        raise fail(f"method {method[:20]!r} is not accepted; {hint}")
    if not isinstance(url, str):
        raise fail("'url' must be text, like \"http://localhost:8080/\"")
    headers = value.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise fail("'headers' must be an object of text values, like {\"Accept\": \"text/plain\"}")
    if "body" in value and "body_base64" in value:
        raise fail("give the body as 'body' (text) or as 'body_base64', not both")
    body = b""
    if "body" in value:
        if not isinstance(value["body"], str):
            raise fail("'body' must be text; send bytes as 'body_base64'")
        try:
            body = value["body"].encode("utf-8")
        except UnicodeEncodeError:
            raise fail("'body' holds a lone surrogate, which is not text; send bytes as 'body_base64'") from None
    elif "body_base64" in value:
        if not isinstance(value["body_base64"], str):
            raise fail("'body_base64' must be base64 text")
        try:
            body = base64.b64decode(value["body_base64"].encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise fail("'body_base64' is not valid base64") from None
    return Ask(method, url, tuple(headers.items()), body)
