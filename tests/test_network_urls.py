"""The guest's URL: one strict parse decides, odd spellings are refused (workbench/network/urls.py).

Oracles independent of the parser: explicit tables; the standard library's and httpx's own
parsers must read the same host and port out of every URL we accept (no parser differential on
what we send); and glibc's ``inet_aton`` (which reads ``0x7f.1`` and ``2130706433`` as 127.0.0.1)
for numeric hosts: a number is accepted only when written the one plain way.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.network.urls import MAX_URL_CHARS, UrlError, parse_url

ACCEPTED = {
    "http://example.com": "http://example.com/",
    "HTTP://EXAMPLE.COM/A?b=C#frag": "http://example.com/A?b=C",
    "http://localhost./": "http://localhost/",
    "http://localhost:80/": "http://localhost/",
    "https://localhost:443/x": "https://localhost/x",
    "https://localhost:80/x": "https://localhost:80/x",
    "http://127.0.0.1:8080/p": "http://127.0.0.1:8080/p",
    "http://[::1]:8080/": "http://[::1]:8080/",
    "http://[0:0:0:0:0:0:0:1]/": "http://[::1]/",
    "http://[::ffff:127.0.0.1]/": "http://[::ffff:7f00:1]/",
    "http://example.com?q=1": "http://example.com/?q=1",
    "http://xn--bcher-kva.example/": "http://xn--bcher-kva.example/",
    "http://a.b.c.1e/": "http://a.b.c.1e/",
    "http://example.com/%41%2f": "http://example.com/%41%2f",
    "ftp://example.com/": "ftp://example.com:0/",  # parsed; the policy refuses the scheme
}

REFUSED = {
    "http://good.com@evil.com/": "user information",
    "http://user:pass@example.com/": "user information",
    "http://evil.com\\@good.com/": "backslash",
    "http:\\\\evil.com/": "backslash",
    "http://2130706433/": "four decimal numbers",
    "http://0x7f.1/": "four decimal numbers",
    "http://0177.0.0.1/": "four decimal numbers",
    "http://127.1/": "four decimal numbers",
    "http://127.0.0.1./": "",  # accepted: see test below
    "http://0x7f000001/": "four decimal numbers",
    "http://127.0.0.01/": "four decimal numbers",
    "http://1.2.3.4.5/": "four decimal numbers",
    "http://256.0.0.1/": "four decimal numbers",
    "http://bücher.example/": "only printable ASCII",
    "http://ex ample.com/": "only printable ASCII",
    "http://example.com/a b": "only printable ASCII",
    "http://example.com/\r\nHost: evil": "only printable ASCII",
    "http://example.com\x00.evil/": "only printable ASCII",
    "http://localhost../": "not a valid host name",
    "http://*.example.com/": "not a valid host name",
    "http://exa_mple-.com/": "not a valid host name",
    "http://[fe80::1%25eth0]/": "zone ids",
    "http://[::1/": "bracketed IPv6",
    "http://[::g]/": "not a valid IPv6",
    "http://::1/": "no host",
    "http://example.com:/": "port",
    "http://example.com:0/": "port",
    "http://example.com:65536/": "port",
    "http://example.com:８０/": "only printable ASCII",
    "http://example.com:+80/": "port",
    "http://example.com/%zz": "two hex digits",
    "http:///path": "no host",
    "//example.com/": "not an absolute URL",
    "example.com": "not an absolute URL",
    "": "not an absolute URL",
}


@pytest.mark.parametrize("text, canonical", ACCEPTED.items())
def test_accepted_urls_are_canonical(text: str, canonical: str) -> None:
    assert parse_url(text).url == canonical


@pytest.mark.parametrize("text, fragment", [(t, f) for t, f in REFUSED.items() if f])
def test_odd_urls_are_refused_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(UrlError, match=None) as caught:
        parse_url(text)
    assert fragment in str(caught.value)


def test_a_trailing_dot_on_an_address_is_the_address() -> None:
    target = parse_url("http://127.0.0.1./")
    assert target.host == "127.0.0.1" and target.address == ipaddress.ip_address("127.0.0.1")


def test_non_text_and_huge_urls_are_refused() -> None:
    for value in (None, b"http://x/", 3, ["http://x/"]):
        with pytest.raises(UrlError, match="must be text"):
            parse_url(value)
    with pytest.raises(UrlError, match="characters long"):
        parse_url("http://example.com/" + "a" * MAX_URL_CHARS)


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("htps:/[]@\\.%?#0123456789abcdefxX-_*:ÿ\u0130\x00 \r\n")), max_size=40)
       .map(lambda tail: "http://" + tail) | st.text(max_size=60))
def test_every_url_we_accept_reads_the_same_to_other_parsers(text: str) -> None:
    try:
        target = parse_url(text)
    except UrlError:
        return
    url = target.url
    assert url.isascii() and url.isprintable() and "@" not in url.split("/")[2] and "\\" not in url
    assert parse_url(url) == target  # canonical: a fixed point
    if target.scheme not in ("http", "https"):
        return
    split = urllib.parse.urlsplit(url)
    assert (split.hostname, split.port or target.port) == (target.host.strip("[]"), target.port)
    parsed = httpx.URL(url)
    assert (parsed.host, parsed.port or target.port) == (target.host.strip("[]"), target.port)


def _forms(n: int) -> st.SearchStrategy[str]:
    parts = [(n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255]
    return st.sampled_from([
        str(n), hex(n), f"{parts[0]}.{n & 0xFFFFFF}", f"{parts[0]}.{parts[1]}.{n & 0xFFFF}",
        ".".join(str(p) for p in parts), ".".join(hex(p) for p in parts), ".".join(f"0{p:o}" for p in parts),
        ".".join(f"{p:03d}" for p in parts),
    ])


@settings(max_examples=800, deadline=None)
@given(st.integers(0, 2**32 - 1).flatmap(lambda n: st.tuples(st.just(n), _forms(n))))
def test_a_numeric_host_is_accepted_only_in_its_one_plain_form(case: tuple[int, str]) -> None:
    number, form = case
    try:
        libc = int(ipaddress.IPv4Address(socket.inet_aton(form)))
    except OSError:
        libc = None
    try:
        target = parse_url(f"http://{form}/")
    except UrlError as exc:
        assert "four decimal numbers" in str(exc)
        assert form != str(ipaddress.IPv4Address(number))
        return  # refused: whatever libc makes of it ('010' is 8 to inet_aton) never reaches a resolver
    assert form == str(ipaddress.IPv4Address(number)) and target.address == ipaddress.IPv4Address(number)
    assert libc == number  # and the C library reads the accepted form as the same address
