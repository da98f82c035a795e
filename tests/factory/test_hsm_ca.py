"""The device CA's key stays in a PKCS#11 token: certificates are signed inside it."""

from __future__ import annotations

import json

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from espsec.device.identity import read_identity
from espsec.device.virtual_device import VirtualDevice
from espsec.factory import VirtualTarget, open_factory
from espsec.identity.tls import generate_device_ca

from .kit import write_batch


def test_device_certificates_are_signed_by_the_ca_key_in_the_token(tmp_path, softhsm):
    cert, key = generate_device_ca("HSM device CA")
    softhsm.import_key(key, "device-ca")
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    spec = write_batch(
        tmp_path,
        chip="esp32p4",
        count=2,
        ca_uri=softhsm.uri("device-ca"),
        ca_files=(tmp_path / "ca.pem", tmp_path / "none"),
        keys='random = "hsm"',
    )
    with open_factory(spec) as factory:
        summary = factory.run(VirtualTarget(tmp_path / "devices"))
    assert summary.ok
    for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines():
        rec = json.loads(line)
        identity = read_identity(VirtualDevice.open(tmp_path / "devices" / rec["serial"]))
        device_cert = identity.certificate
        device_cert.verify_directly_issued_by(cert)
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert device_cert.issuer == cert.subject
        assert x509.load_pem_x509_certificate(rec["certificate"].encode()) == device_cert


def test_ca_uri_naming_another_key_than_the_certificate_is_refused(tmp_path, softhsm):
    cert, _ = generate_device_ca("some CA")
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    spec = write_batch(
        tmp_path,
        chip="esp32p4",
        count=1,
        ca_uri=softhsm.uri("ecdsa256"),
        ca_files=(tmp_path / "ca.pem", tmp_path / "none"),
    )
    with open_factory(spec) as factory:
        try:
            factory.run(VirtualTarget(tmp_path / "devices"))
        except Exception as exc:
            assert "not the CA certificate's key" in str(exc)
        else:
            raise AssertionError("a CA key that is not the certificate's was accepted")
