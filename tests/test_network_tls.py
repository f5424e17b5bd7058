"""HTTPS: the scheme is its own grant, TLS verification is always on, and with the pin the
certificate is still checked against the *name* (SNI), not the address connected to."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer

from tests.network_helpers import ask, body, service
from workbench.network import transport


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(tmp: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``names`` (DNS names only, no IP address)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("workbench test CA")).issuer_name(_name("workbench test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def _server(cert: Path, key: Path) -> HTTPServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    server.expect_request("/").respond_with_data("secure")
    return server


@pytest.fixture()
def tls_localhost(tmp_path: Path) -> Iterator[tuple[HTTPServer, Path]]:
    ca, cert, key = _pem(tmp_path, ["localhost"])
    server = _server(cert, key)
    yield server, ca
    server.clear()
    server.stop()


def test_an_http_grant_is_not_an_https_grant_and_back(tls_localhost: tuple[HTTPServer, Path]) -> None:
    server, _ = tls_localhost
    svc, rec = service([f"network:http:localhost:{server.port}"])
    answer = ask(svc, f"https://localhost:{server.port}/")
    assert answer["error"] == "denied" and "no network grant covers 'https://localhost" in answer["reason"]
    svc, rec = service([f"network:https:localhost:{server.port}"])
    assert ask(svc, f"http://localhost:{server.port}/")["error"] == "denied"
    assert server.log == []


def test_tls_verification_is_on(tls_localhost: tuple[HTTPServer, Path]) -> None:
    """The certificate is signed by a CA the host does not trust: the request fails, recorded."""
    server, _ = tls_localhost
    svc, rec = service([f"network:https:localhost:{server.port}"])
    answer = ask(svc, f"https://localhost:{server.port}/")
    assert answer["error"] == "unreachable" and "certificate could not be verified" in answer["reason"]
    assert rec.events[-1].detail["error"] == "unreachable" and server.log == []


def test_with_a_trusted_ca_the_pinned_connection_verifies_the_name(
    tls_localhost: tuple[HTTPServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to 127.0.0.1, the certificate names only ``localhost``: it verifies
    because the name travels as SNI and server_hostname."""
    server, ca = tls_localhost
    monkeypatch.setattr(transport, "_CONTEXT", [ssl.create_default_context(cafile=str(ca))])
    svc, rec = service([f"network:https:localhost:{server.port}"])
    answer = ask(svc, f"https://localhost:{server.port}/")
    assert answer["ok"] is True and body(answer) == b"secure", answer
    assert rec.events[0].resolved == "127.0.0.1"


def test_a_certificate_for_another_name_fails_even_from_a_trusted_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, cert, key = _pem(tmp_path, ["other.example"])
    server = _server(cert, key)
    try:
        monkeypatch.setattr(transport, "_CONTEXT", [ssl.create_default_context(cafile=str(ca))])
        svc, _ = service([f"network:https:localhost:{server.port}"])
        answer = ask(svc, f"https://localhost:{server.port}/")
        assert answer["error"] == "unreachable" and "certificate could not be verified" in answer["reason"]
    finally:
        server.clear()
        server.stop()


def test_the_default_context_verifies() -> None:
    context = transport.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True
