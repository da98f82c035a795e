"""The one PEM loader: every wrong kind of file gives one error shape naming the file,
what was expected and what was found, and never a byte of the key."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from espsec import _pem
from espsec.errors import FormatError, KeyFormatError

P256 = (_pem.ecdsa_kind(ec.SECP256R1()),)
IMAGE_KEYS = (_pem.rsa_kind(3072), _pem.ecdsa_kind(ec.SECP256R1()))


def private_pem(key: object, fmt=serialization.PrivateFormat.PKCS8, enc=None) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, fmt, enc or serialization.NoEncryption()
    )


def public_pem(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def cert(p256: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(p256.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(p256, hashes.SHA256())
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def assert_one_shape(err: _pem.PemError, source: str, expected: str, found: str) -> None:
    assert isinstance(err, FormatError) and isinstance(err, KeyFormatError)
    assert err.source == source and err.expected == expected and err.found == found
    text = str(err)
    assert text.startswith(f"{source}: not a usable ") and "\n" not in text
    assert f"(expected {expected}, found {found})" in text


def test_loads_the_key_kinds_it_is_asked_for(p256):
    key = _pem.load_private_key(private_pem(p256), kinds=IMAGE_KEYS)
    assert key.private_numbers() == p256.private_numbers()
    public = _pem.load_public_key(public_pem(p256), kinds=P256)
    assert public.public_numbers() == p256.public_key().public_numbers()


def test_traditional_openssl_key_after_ec_parameters_block_loads(p256):
    params = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    data = params + private_pem(p256, serialization.PrivateFormat.TraditionalOpenSSL)
    assert _pem.load_private_key(data, kinds=P256).private_numbers() == p256.private_numbers()


def test_public_half_of_a_private_key_only_when_accepted(p256):
    public = _pem.load_public_key(private_pem(p256), accept_private=True)
    assert public.public_numbers() == p256.public_key().public_numbers()
    with pytest.raises(_pem.PemError) as info:
        _pem.load_public_key(private_pem(p256), kinds=P256, source="pub.pem")
    assert_one_shape(info.value, "pub.pem", "an ECDSA P-256 public key in PEM", "a private key")


@pytest.mark.parametrize(
    ("make", "found"),
    [
        (lambda k, c: public_pem(k), "a public key"),
        (lambda k, c: cert_pem(c), "an X.509 certificate"),
        (lambda k, c: b"", "an empty file"),
        (lambda k, c: b"just some text\n", "no PEM data"),
        (lambda k, c: c.public_bytes(serialization.Encoding.DER), "binary DER data, not PEM"),
        (
            lambda k, c: private_pem(k, enc=serialization.BestAvailableEncryption(b"pw")),
            "an encrypted private key",
        ),
        (
            lambda k, c: private_pem(
                k,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.BestAvailableEncryption(b"pw"),
            ),
            "an encrypted private key",
        ),
        (
            lambda k, c: b"-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n",
            "malformed PEM data",
        ),
        (
            lambda k, c: private_pem(ec.generate_private_key(ec.SECP384R1())),
            "an ECDSA P-384 private key",
        ),
        (
            lambda k, c: private_pem(rsa.generate_private_key(65537, 2048)),
            "an RSA-2048 private key",
        ),
        (lambda k, c: private_pem(ed25519.Ed25519PrivateKey.generate()), "an Ed25519 private key"),
        (
            lambda k, c: (
                b"-----BEGIN CERTIFICATE REQUEST-----\nQUJD\n-----END CERTIFICATE REQUEST-----\n"
            ),
            "a certificate signing request",
        ),
    ],
)
def test_every_wrong_private_key_file_gives_the_one_error_shape(p256, cert, make, found):
    data = make(p256, cert)
    with pytest.raises(_pem.PemError) as info:
        _pem.load_private_key(data, kinds=IMAGE_KEYS, source="key.pem")
    assert_one_shape(info.value, "key.pem", "an RSA-3072 or ECDSA P-256 private key in PEM", found)


def test_wrong_public_keys_are_named_by_kind(cert):
    rsa2048 = rsa.generate_private_key(65537, 2048)
    with pytest.raises(_pem.PemError) as info:
        _pem.load_public_key(public_pem(rsa2048), kinds=P256, source="m.pub")
    assert_one_shape(
        info.value, "m.pub", "an ECDSA P-256 public key in PEM", "an RSA-2048 public key"
    )
    with pytest.raises(_pem.PemError) as info:
        _pem.load_public_key(cert_pem(cert), kinds=P256, source="m.pub")
    assert info.value.found == "an X.509 certificate"


def test_families_accept_any_size_of_that_family():
    key = ec.generate_private_key(ec.SECP384R1())
    assert _pem.load_private_key(private_pem(key), kinds=(_pem.ECDSA,)).curve.name == "secp384r1"
    with pytest.raises(_pem.PemError) as info:
        _pem.load_private_key(private_pem(rsa.generate_private_key(65537, 2048)), kinds=("ECDSA",))
    assert info.value.expected == "an ECDSA private key in PEM"


def test_certificates_from_pem_bundle_or_der(cert, p256):
    bundle = cert_pem(cert) * 2
    assert _pem.load_certificates(bundle) == [cert, cert]
    assert _pem.load_certificate(bundle) == cert
    der = cert.public_bytes(serialization.Encoding.DER)
    assert _pem.load_certificate(der, allow_der=True) == cert


@pytest.mark.parametrize(
    ("data", "allow_der", "expected", "found"),
    [
        (b"", False, "an X.509 certificate in PEM", "an empty file"),
        (b"\x30\x82\x01\x00junk", True, "an X.509 certificate in PEM or DER", "malformed DER data"),
        (b"hello", True, "an X.509 certificate in PEM or DER", "no PEM data"),
        (
            b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n",
            False,
            "an X.509 certificate in PEM",
            "malformed PEM data",
        ),
    ],
)
def test_wrong_certificate_files_give_the_one_error_shape(data, allow_der, expected, found):
    with pytest.raises(_pem.PemError) as info:
        _pem.load_certificate(data, source="ca.pem", allow_der=allow_der)
    assert_one_shape(info.value, "ca.pem", expected, found)


def test_key_where_certificate_expected_is_named(p256):
    with pytest.raises(_pem.PemError) as info:
        _pem.load_certificates(private_pem(p256), source="ca.pem")
    assert_one_shape(info.value, "ca.pem", "an X.509 certificate in PEM", "a private key")


def test_errors_never_carry_key_material(p256):
    pem = private_pem(p256)
    body = pem.decode().splitlines()[1]
    broken = pem.replace(body.encode(), body[:20].encode() + b"!!!!" + body[24:].encode())
    for data in (broken, pem.replace(b"PRIVATE", b"PUBLIC")):
        with pytest.raises(_pem.PemError) as info:
            _pem.load_private_key(data, kinds=P256)
        text = str(info.value)
        assert body[:16] not in text and body[-16:] not in text
        assert str(p256.private_numbers().private_value) not in text


def test_der_private_keys_load_only_when_allowed(p256):
    der = p256.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = _pem.load_private_key(der, allow_der=True)
    assert key.private_numbers() == p256.private_numbers()
    with pytest.raises(_pem.PemError) as info:
        _pem.load_private_key(der, source="k.der")
    assert_one_shape(
        info.value, "k.der", "an RSA or ECDSA private key in PEM", "binary DER data, not PEM"
    )
    with pytest.raises(_pem.PemError) as info:
        _pem.load_private_key(der[:40], kinds=P256, source="k.der", allow_der=True)
    assert_one_shape(
        info.value, "k.der", "an ECDSA P-256 private key in PEM or DER", "malformed DER data"
    )


def test_is_pem_finds_a_block_after_leading_text(cert):
    assert _pem.is_pem(b"Certificate:\n  Data: ...\n" + cert_pem(cert))
    assert not _pem.is_pem(cert.public_bytes(serialization.Encoding.DER))
