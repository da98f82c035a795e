"""Secure Boot v2 signing inside a PKCS#11 token (SoftHSM2), and RFC 7512 URIs."""

from __future__ import annotations

import pytest

from espsec import secure_boot
from espsec.errors import EspsecError, UsageError, VerificationError
from espsec.secure_boot.pkcs11 import PIN_ENV, Pkcs11Signer, Pkcs11Uri, read_pin


def test_uri_parses_path_and_query_attributes_with_percent_encoding() -> None:
    uri = Pkcs11Uri.parse(
        "pkcs11:token=My%20Token;object=sb;id=%01%02;type=private"
        "?module-path=/usr/lib/x.so&pin-source=file:/run/pin"
    )
    assert uri.get("token") == "My Token"
    assert uri.key_id == b"\x01\x02"
    assert uri.get("type") == "private"
    assert uri.get("module-path") == "/usr/lib/x.so"
    assert uri.get("pin-source") == "file:/run/pin"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("token=x;object=y", "pkcs11:"),
        ("pkcs11:token=x;colour=red", "colour"),
        ("pkcs11:token=x;type=secret", "type"),
        ("pkcs11:token=x;token=y", "twice"),
        ("pkcs11:token", "NAME=VALUE"),
        ("pkcs11:slot-id=abc", "slot-id"),
    ],
)
def test_malformed_uri_is_a_one_line_usage_error_naming_the_attribute(text, named) -> None:
    with pytest.raises(UsageError, match=named):
        Pkcs11Uri.parse(text)


def test_refuses_pin_value_in_uri_because_argv_leaks() -> None:
    with pytest.raises(UsageError, match="pin-source"):
        Pkcs11Uri.parse("pkcs11:token=x;object=y?pin-value=1234")


def test_pin_comes_from_file_env_source_or_default_variable(tmp_path) -> None:
    pin = tmp_path / "pin"
    pin.write_text("s3cret\n")
    assert read_pin(Pkcs11Uri.parse(f"pkcs11:token=t?pin-source=file:{pin}"), {}) == "s3cret"
    assert read_pin(Pkcs11Uri.parse("pkcs11:token=t?pin-source=env:P"), {"P": "a"}) == "a"
    assert read_pin(Pkcs11Uri.parse("pkcs11:token=t"), {PIN_ENV: "b"}) == "b"
    assert read_pin(Pkcs11Uri.parse("pkcs11:token=t"), {}) is None
    with pytest.raises(UsageError, match="unset"):
        read_pin(Pkcs11Uri.parse("pkcs11:token=t?pin-source=env:P"), {})


@pytest.mark.parametrize("scheme", ["rsa3072", "ecdsa256", "ecdsa384"])
def test_token_signature_verifies_with_our_verifier(softhsm, sb_keys, s3_app, p4_app, scheme):
    image = s3_app if scheme == "rsa3072" else p4_app
    with Pkcs11Signer(softhsm.uri(scheme)) as signer:
        signed = secure_boot.sign(image, [signer])
    report = secure_boot.verify(signed, keys=[sb_keys[scheme].public_key()])
    assert report.ok
    assert report.verified is not None
    assert report.verified.scheme == scheme


def test_token_and_key_file_sign_one_sector_together(softhsm, sb_keys, s3_app):
    with Pkcs11Signer(softhsm.uri("rsa3072-b")) as signer:
        signed = secure_boot.sign(s3_app, [sb_keys["rsa3072"], signer])
    for name in ("rsa3072", "rsa3072-b"):
        assert secure_boot.verify(signed, keys=[sb_keys[name].public_key()]).ok


def test_public_key_comes_from_the_token(softhsm, sb_keys):
    with Pkcs11Signer(softhsm.uri("ecdsa256")) as signer:
        assert secure_boot.key_digest(signer.public_key()) == secure_boot.key_digest(
            sb_keys["ecdsa256"]
        )


def test_wrong_pin_is_refused_without_showing_it(softhsm, tmp_path):
    bad = tmp_path / "bad-pin"
    bad.write_text("0000-wrong")
    uri = softhsm.uri("rsa3072", pin=False) + f"&pin-source=file:{bad}"
    with pytest.raises(EspsecError, match="wrong PIN") as exc:
        Pkcs11Signer(uri)
    assert "0000-wrong" not in str(exc.value)


def test_missing_key_and_missing_token_are_one_line_errors(softhsm):
    with pytest.raises(EspsecError, match="not found"):
        Pkcs11Signer(softhsm.uri("no-such-key"))
    with pytest.raises(EspsecError, match="token not found"):
        Pkcs11Signer(softhsm.uri("rsa3072").replace("token=espsec-test", "token=nope"))


class _LyingSigner:
    """A signer that reports one public key and signs with another (a misconfigured HSM)."""

    def __init__(self, public, signer) -> None:
        self._public = public
        self._signer = signer

    def public_key(self):
        return self._public

    def sign_digest(self, digest: bytes) -> bytes:
        return self._signer.sign_digest(digest)


def test_rejects_signature_from_token_key_that_is_not_the_reported_one(softhsm, sb_keys, s3_app):
    with Pkcs11Signer(softhsm.uri("rsa3072-b")) as signer:
        liar = _LyingSigner(sb_keys["rsa3072"].public_key(), signer)
        with pytest.raises(VerificationError, match="failed to verify"):
            secure_boot.sign(s3_app, [liar])
