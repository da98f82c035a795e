"""``espsec ota``: encrypt, decrypt, device-key, pack, inspect, verify-release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from espsec import ota, secure_boot
from espsec.chips import get_chip
from espsec.cli.main import main
from espsec.image import build_app_image

HMAC_KEY = bytes(range(32))


def _run(*args: object, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def files(tmp_path: Path, sb_key_dir: Path) -> Path:
    (tmp_path / "hmac.bin").write_bytes(HMAC_KEY)
    image = build_app_image(get_chip("esp32p4"), version="2.0.0", secure_version=3, code_size=4000)
    (tmp_path / "app.bin").write_bytes(image)
    for name in ("ecdsa256.pem", "ecdsa256.pub.pem", "rsa3072-b.pem", "rsa3072-b.pub.pem"):
        (tmp_path / name).write_bytes((sb_key_dir / name).read_bytes())
    return tmp_path


def test_device_key_encrypt_decrypt_with_hmac_key(files: Path) -> None:
    out = json.loads(
        _run(
            "ota", "device-key", "--hmac-key", files / "hmac.bin", "-o", files / "dev.pem", "--json"
        )
    )
    assert out["recipient"] == ota.recipient_id(ota.device_public_key(HMAC_KEY))
    _run("ota", "encrypt", "--key", files / "dev.pem", "-o", files / "app.enc", files / "app.bin")
    _run(
        "ota",
        "decrypt",
        "--hmac-key",
        files / "hmac.bin",
        "-o",
        files / "app.dec",
        files / "app.enc",
    )
    assert (files / "app.dec").read_bytes() == (files / "app.bin").read_bytes()


def test_rsa_encrypt_decrypt(files: Path) -> None:
    out = json.loads(
        _run(
            "ota",
            "encrypt",
            "--key",
            files / "rsa3072-b.pub.pem",
            "-o",
            files / "a.enc",
            files / "app.bin",
            "--json",
        )
    )
    assert out["scheme"] == "rsa3072"
    _run("ota", "decrypt", "--key", files / "rsa3072-b.pem", "-o", files / "a.dec", files / "a.enc")
    assert (files / "a.dec").read_bytes() == (files / "app.bin").read_bytes()


def test_decrypt_with_bad_tag_exits_1_and_writes_nothing(files: Path) -> None:
    _run(
        "ota",
        "encrypt",
        "-k",
        files / "rsa3072-b.pub.pem",
        "-o",
        files / "a.enc",
        files / "app.bin",
    )
    blob = bytearray((files / "a.enc").read_bytes())
    blob[410] ^= 1
    (files / "a.enc").write_bytes(bytes(blob))
    out = _run(
        "ota", "decrypt", "-k", files / "rsa3072-b.pem", "-o", files / "a.dec", files / "a.enc",
        code=1,
    )  # fmt: skip
    assert "GCM tag" in out
    assert not (files / "a.dec").exists()


def test_decrypt_needs_exactly_one_key(files: Path) -> None:
    _run("ota", "decrypt", "-o", files / "y", files / "app.bin", code=2)


def test_pack_inspect_and_verify_release(files: Path) -> None:
    out = json.loads(
        _run(
            "ota",
            "pack",
            "-k",
            files / "ecdsa256.pem",
            "--encrypt-to",
            files / "rsa3072-b.pub.pem",
            "--include-plaintext",
            "--signed-image-output",
            files / "signed.bin",
            "-o",
            files / "rel.zip",
            files / "app.bin",
            "--json",
        )
    )
    assert [p["encryption"] for p in out["payloads"]] == ["rsa3072", "none"]
    info = json.loads(_run("ota", "inspect", "--json", files / "rel.zip"))
    assert info["release_id"] == out["release_id"] and info["secure_version"] == 3
    text = _run("ota", "inspect", files / "signed.bin")
    assert "secure_version: 3" in text and "signature_blocks" in text
    _run("ota", "verify-release", "-k", files / "ecdsa256.pub.pem", files / "rel.zip")
    digest = secure_boot.key_digest(
        secure_boot.load_public_key((files / "ecdsa256.pub.pem").read_bytes())
    )
    _run("ota", "verify-release", "--key-digest", digest.hex(), files / "rel.zip")
    out = _run(
        "ota",
        "verify-release",
        "--key-digest",
        digest.hex(),
        "--revoked",
        "0",
        files / "rel.zip",
        code=1,
    )
    assert "revoked" in out


def test_a_short_hmac_key_is_bad_input_exit_1(files: Path) -> None:
    (files / "short.bin").write_bytes(b"123")
    for command in (("device-key",), ("decrypt", files / "app.bin")):
        out = _run("ota", *command, "--hmac-key", files / "short.bin", "-o", files / "d", code=1)
        assert out.splitlines() == [
            f"error: {files / 'short.bin'}: not an HMAC key file (expected 32 bytes, found 3 bytes)"
        ]
        assert not (files / "d").exists()


def test_pack_refuses_signed_image_without_a_plain_payload_before_writing(files: Path) -> None:
    out = _run(
        "ota",
        "pack",
        "-k",
        files / "ecdsa256.pem",
        "--encrypt-to",
        files / "rsa3072-b.pub.pem",
        "--signed-image-output",
        files / "signed.bin",
        "-o",
        files / "rel.zip",
        files / "app.bin",
        code=2,
    )
    assert "--include-plaintext" in out
    assert not (files / "rel.zip").exists() and not (files / "signed.bin").exists()


def test_verify_release_refuses_a_short_key_digest(files: Path) -> None:
    out = _run("ota", "verify-release", "--key-digest", "0011", files / "app.bin", code=2)
    assert "32 bytes" in out


def test_gcm_tag_failure_under_another_device_key_is_a_failed_check_exit_1(files: Path) -> None:
    _run("ota", "device-key", "--hmac-key", files / "hmac.bin", "-o", files / "dev.pem")
    _run("ota", "encrypt", "-k", files / "dev.pem", "-o", files / "app.enc", files / "app.bin")
    (files / "other.bin").write_bytes(bytes(32))
    out = _run(
        "ota", "decrypt", "--hmac-key", files / "other.bin", "-o", files / "app.dec",
        files / "app.enc", code=1,
    )  # fmt: skip
    assert out.splitlines() == [
        f"error: {files / 'app.enc'}: GCM tag does not verify: the image was modified or the "
        "wrong key was used"
    ]
    assert not (files / "app.dec").exists()
