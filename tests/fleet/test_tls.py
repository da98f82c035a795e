"""The transport: server certificate verification, pinning, plain HTTP refused, key files."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from espsec.errors import UsageError, VerificationError
from espsec.fleet import server as server_module
from espsec.fleet import start_server
from espsec.fleet.tls import generate_tls, renew_tls
from espsec.ota import CheckIn, FleetClient, TlsTrust, new_nonce

from .conftest import Fleet

DER = Encoding.DER


def _check_in(client: FleetClient) -> bytes:
    return client.check_in(CheckIn("dev-tls", "esp32p4", "1.0.0", 0, "valid", new_nonce()))


def test_server_certificate_from_another_ca_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    other = generate_tls(tmp_path / "other", ("127.0.0.1",))
    assert other.ca_cert is not None
    trust = TlsTrust.ca(other.ca_cert.read_bytes())
    with FleetClient(fleet.url, trust) as client, pytest.raises(VerificationError, match="trusted"):
        _check_in(client)
    with fleet.admin() as admin:
        assert admin.devices() == []  # nothing reached the server's API


def test_plain_http_is_refused_before_connecting(fleet: Fleet) -> None:
    plain = fleet.url.replace("https://", "http://")
    with pytest.raises(UsageError, match="https only"):
        FleetClient(plain, fleet.trust)
    with pytest.raises(UsageError):
        FleetClient("ftp://127.0.0.1/", fleet.trust)


def test_pinned_server_certificate_is_accepted(fleet: Fleet) -> None:
    pin = TlsTrust.pinned(fleet.server.tls.server_cert.read_bytes())
    with FleetClient(fleet.url, pin, identity=fleet.identity("dev-tls")) as client:
        assert _check_in(client)


def test_other_pinned_certificate_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    other = generate_tls(tmp_path / "other", ("127.0.0.1",))
    pin = TlsTrust.pinned(other.server_cert.read_bytes())
    with FleetClient(fleet.url, pin) as client, pytest.raises(VerificationError):
        _check_in(client)


def test_pinning_the_ca_is_not_pinning_the_server(fleet: Fleet) -> None:
    assert fleet.server.tls.ca_cert is not None
    pin = TlsTrust.pinned(fleet.server.tls.ca_cert.read_bytes())
    with FleetClient(fleet.url, pin) as client, pytest.raises(VerificationError, match="pinned"):
        _check_in(client)


def test_hostname_is_checked(fleet: Fleet) -> None:
    url = fleet.url.replace("127.0.0.1", "localhost")  # in the certificate: accepted
    with FleetClient(url, fleet.trust, identity=fleet.identity("dev-tls")) as client:
        assert _check_in(client)


def test_secret_files_are_private(fleet: Fleet) -> None:
    for name in ("manifest-key.pem", "tls/ca-key.pem", "tls/server-key.pem", "fleet.json"):
        assert (fleet.state / name).stat().st_mode & 0o077 == 0, name
    assert fleet.token not in (fleet.state / "fleet.json").read_text()


def test_trust_needs_exactly_one_anchor() -> None:
    with pytest.raises(UsageError):
        TlsTrust()


def test_certificate_for_another_hostname_is_refused(tmp_path: Path, fleet: Fleet) -> None:
    # A server whose certificate names only "localhost", reached as 127.0.0.1.
    files = generate_tls(tmp_path / "tls", ("localhost",))
    assert files.ca_cert is not None
    other = start_server(fleet.state, certfile=files.server_cert, keyfile=files.server_key)
    try:
        trust = TlsTrust.ca(files.ca_cert.read_bytes())
        with FleetClient(other.url, trust) as client, pytest.raises(VerificationError):
            _check_in(client)
        url = other.url.replace("127.0.0.1", "localhost")
        with FleetClient(url, trust, identity=fleet.identity("dev-tls")) as client:
            assert _check_in(client)
    finally:
        other.stop()


def _served_certificate(port: int, trust: TlsTrust) -> bytes:
    """The DER certificate a new TLS connection to ``port`` is served."""
    ctx = trust.context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_renewed_certificate_is_served_to_new_connections_without_a_restart(
    make_fleet: Callable[..., Fleet], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "CERT_RELOAD_S", 0.1)  # the server looks every 0.1 s
    fleet = make_fleet()
    tls_dir = fleet.state / "tls"
    old = x509.load_pem_x509_certificate((tls_dir / "server.pem").read_bytes())
    assert _served_certificate(fleet.server.port, fleet.trust) == old.public_bytes(DER)
    with FleetClient(fleet.url, fleet.trust, identity=fleet.identity("dev-tls")) as kept:
        assert _check_in(kept)  # a connection open across the renewal
        renew_tls(tls_dir, fleet.server.service.config.hostnames)
        new = x509.load_pem_x509_certificate((tls_dir / "server.pem").read_bytes())
        assert new.serial_number != old.serial_number
        ports = (fleet.server.port, fleet.server.admin_port)
        served: dict[int, bytes] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            served = {port: _served_certificate(port, fleet.trust) for port in ports}
            if set(served.values()) == {new.public_bytes(DER)}:
                break
            time.sleep(0.05)
        assert set(served.values()) == {new.public_bytes(DER)}, "the new certificate is not served"
        assert _check_in(kept)  # the open connection keeps working
    with FleetClient(fleet.url, fleet.trust, identity=fleet.identity("dev-tls")) as client:
        assert _check_in(client)  # devices trust the renewed certificate (same CA)
