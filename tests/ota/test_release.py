"""Release bundles: packing, and refusal of every bundle a trusted signer did not vouch for."""

from __future__ import annotations

import dataclasses
import io
import zipfile

import pytest

from espsec import ota, secure_boot
from espsec.chips import get_chip
from espsec.errors import FormatError, UsageError, VerificationError
from espsec.image import build_app_image
from espsec.ota.release import (
    MEMBER_SECTOR,
    MEMBER_STATEMENT,
    ReleaseBundle,
    _statement_digest,
)
from espsec.secure_boot.crypto import sign_digest

HMAC_KEY = bytes(range(32))


@pytest.fixture(scope="module")
def p4_image() -> bytes:
    return build_app_image(get_chip("esp32p4"), version="2.0.0", secure_version=3, code_size=8000)


@pytest.fixture(scope="module")
def signer(sb_keys: dict[str, secure_boot.PrivateKey]) -> secure_boot.PrivateKey:
    return sb_keys["ecdsa256"]


@pytest.fixture(scope="module")
def device() -> ota.DecryptionKey:
    return ota.device_private_key(HMAC_KEY)


@pytest.fixture(scope="module")
def bundle(
    p4_image: bytes, signer: secure_boot.PrivateKey, device: ota.DecryptionKey
) -> ReleaseBundle:
    return ota.pack(p4_image, [signer], encrypt_to=[device.public_key()], include_plaintext=True)


def _digests(key: secure_boot.PrivateKey) -> list[bytes | None]:
    return [secure_boot.key_digest(key)]


def _rezip(data: bytes, replace: dict[str, bytes | None]) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if name in replace:
                if replace[name] is not None:
                    dst.writestr(name, replace[name])  # type: ignore[arg-type]
            else:
                dst.writestr(name, src.read(name))
        for name, value in replace.items():
            if name not in src.namelist() and value is not None:
                dst.writestr(name, value)
    return out.getvalue()


def test_pack_makes_a_verifiable_bundle(
    bundle: ReleaseBundle, signer: secure_boot.PrivateKey, device: ota.DecryptionKey
) -> None:
    parsed = ReleaseBundle.parse(bundle.to_bytes())
    report = ota.verify_release(parsed, key_digests=_digests(signer))
    assert report.signers == (secure_boot.key_digest(signer),)
    st = parsed.statement
    assert (st.version, st.secure_version, st.chip) == ("2.0.0", 3, "esp32p4")
    assert [p.encryption for p in st.payloads] == ["ecies-p256", "none"]
    assert st.payloads[0].recipient == ota.recipient_id(device)
    # The encrypted payload decrypts to the plain signed image, which Secure Boot accepts.
    plain = ota.decrypt_image(parsed.payloads[0], device)
    assert plain == parsed.payloads[1]
    assert secure_boot.verify(plain, keys=[signer]).ok


def test_bundle_bytes_are_deterministic(bundle: ReleaseBundle) -> None:
    assert bundle.to_bytes() == ReleaseBundle.parse(bundle.to_bytes()).to_bytes()


def test_release_signed_by_a_wrong_signer_is_refused(
    bundle: ReleaseBundle, sb_keys: dict[str, secure_boot.PrivateKey]
) -> None:
    with pytest.raises(VerificationError, match="key not trusted"):
        ota.verify_release(bundle, key_digests=_digests(sb_keys["ecdsa256-b"]))


def test_release_signed_by_a_revoked_key_is_refused(
    bundle: ReleaseBundle, signer: secure_boot.PrivateKey
) -> None:
    with pytest.raises(VerificationError, match="key revoked"):
        ota.verify_release(bundle, key_digests=_digests(signer), revoked=[0])


def test_tampered_payload_is_refused(bundle: ReleaseBundle, signer: secure_boot.PrivateKey) -> None:
    payload = bytearray(bundle.payloads[0])
    payload[-1] ^= 1
    data = _rezip(bundle.to_bytes(), {"payload-0.bin": bytes(payload)})
    with pytest.raises(VerificationError, match=r"payload-0\.bin does not match"):
        ota.verify_release(ReleaseBundle.parse(data), key_digests=_digests(signer))


def test_statement_with_raised_secure_version_is_refused(
    bundle: ReleaseBundle, signer: secure_boot.PrivateKey
) -> None:
    forged = dataclasses.replace(bundle.statement, secure_version=9).to_bytes()
    data = _rezip(bundle.to_bytes(), {MEMBER_STATEMENT: forged})
    with pytest.raises(VerificationError, match="statement is not signed"):
        ota.verify_release(ReleaseBundle.parse(data), key_digests=_digests(signer))


def test_statement_signed_by_an_untrusted_key_around_a_trusted_sector_is_refused(
    bundle: ReleaseBundle,
    signer: secure_boot.PrivateKey,
    sb_keys: dict[str, secure_boot.PrivateKey],
) -> None:
    # The attacker reuses a genuine sector but vouches for other claims with their own key.
    attacker = sb_keys["ecdsa256-c"]
    forged = dataclasses.replace(bundle.statement, secure_version=9)
    statement_bytes = forged.to_bytes()
    sig = sign_digest(attacker, _statement_digest(statement_bytes, "sha256"))
    evil = dataclasses.replace(
        bundle,
        statement_bytes=statement_bytes,
        statement=forged,
        signatures=(ota.release.StatementSignature(secure_boot.key_digest(attacker), sig),),
    )
    with pytest.raises(VerificationError, match="statement is not signed"):
        ota.verify_release(ReleaseBundle.parse(evil.to_bytes()), key_digests=_digests(signer))


def test_signer_lying_about_a_plain_image_is_caught(
    bundle: ReleaseBundle, signer: secure_boot.PrivateKey
) -> None:
    lie = dataclasses.replace(bundle.statement, version="9.9.9")
    statement_bytes = lie.to_bytes()
    sig = sign_digest(signer, _statement_digest(statement_bytes, "sha256"))
    evil = dataclasses.replace(
        bundle,
        statement_bytes=statement_bytes,
        statement=lie,
        signatures=(ota.release.StatementSignature(secure_boot.key_digest(signer), sig),),
    )
    with pytest.raises(VerificationError, match="app descriptor disagrees"):
        ota.verify_release(evil, key_digests=_digests(signer))


def test_swapped_sector_is_refused(bundle: ReleaseBundle, signer: secure_boot.PrivateKey) -> None:
    data = _rezip(bundle.to_bytes(), {MEMBER_SECTOR: b"\xff" * 4096})
    with pytest.raises(VerificationError, match=r"sector\.bin"):
        ota.verify_release(ReleaseBundle.parse(data), key_digests=_digests(signer))


def test_extra_or_missing_members_are_refused(bundle: ReleaseBundle) -> None:
    with pytest.raises(FormatError, match="do not match"):
        ReleaseBundle.parse(_rezip(bundle.to_bytes(), {"evil.sh": b"#!"}))
    with pytest.raises(FormatError, match="do not match"):
        ReleaseBundle.parse(_rezip(bundle.to_bytes(), {"payload-1.bin": None}))


def test_not_a_zip_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="ZIP"):
        ReleaseBundle.parse(b"hello")


def test_oversized_bundle_is_refused(bundle: ReleaseBundle) -> None:
    with pytest.raises(FormatError, match="too large"):
        ReleaseBundle.parse(bundle.to_bytes(), max_size=1000)


def test_encrypted_only_bundle_verifies_without_the_plaintext(
    p4_image: bytes, signer: secure_boot.PrivateKey, device: ota.DecryptionKey
) -> None:
    bundle = ota.pack(p4_image, [signer], encrypt_to=[device.public_key()])
    assert [p.encryption for p in bundle.statement.payloads] == ["ecies-p256"]
    ota.verify_release(bundle, keys=[signer.public_key()])


def test_pack_accepts_an_image_already_signed_by_the_key(
    p4_image: bytes, signer: secure_boot.PrivateKey, sb_keys: dict[str, secure_boot.PrivateKey]
) -> None:
    signed = secure_boot.sign(p4_image, [signer])
    bundle = ota.pack(signed, [signer])
    assert bundle.payloads == (signed,)
    with pytest.raises(UsageError, match="already signed"):
        ota.pack(signed, [sb_keys["ecdsa256-b"]])


def test_rsa_signed_release_for_esp32s3(
    s3_app: bytes, sb_keys: dict[str, secure_boot.PrivateKey]
) -> None:
    key = sb_keys["rsa3072"]
    bundle = ota.pack(s3_app, [key], encrypt_to=[sb_keys["rsa3072-b"].public_key()])
    report = ota.verify_release(ReleaseBundle.parse(bundle.to_bytes()), key_digests=_digests(key))
    assert report.signers and bundle.statement.chip == "esp32s3"
    assert bundle.statement.payloads[0].encryption == "rsa3072"


def test_describe_shows_version_signatures_and_encryption(bundle: ReleaseBundle) -> None:
    info = ota.describe(bundle.to_bytes())
    assert info["kind"] == "release bundle" and info["secure_version"] == 3
    assert info["signature_blocks"][0]["image_digest_matches"] is True
    enc = ota.describe(bundle.payloads[0])
    assert enc["kind"] == "pre-encrypted image" and enc["encryption"] == "ecies-p256"
    img = ota.describe(bundle.payloads[1])
    assert img["kind"] == "signed app image" and img["version"] == "2.0.0"
    with pytest.raises(FormatError):
        ota.describe(b"\0\0\0\0")


def test_compressed_or_encrypted_members_are_refused(bundle: ReleaseBundle) -> None:
    src = zipfile.ZipFile(io.BytesIO(bundle.to_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    with pytest.raises(FormatError, match="compressed or encrypted"):
        ReleaseBundle.parse(out.getvalue())
