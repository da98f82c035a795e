"""``espsec secure-boot``: exit codes, one-line errors, no partial outputs, key hygiene."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from espsec import secure_boot
from espsec.cli.main import main


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture()
def app(tmp_path: Path, s3_app: bytes) -> Path:
    path = tmp_path / "app.bin"
    path.write_bytes(s3_app)
    return path


def test_generate_key_is_0600_and_never_overwrites(tmp_path):
    key = tmp_path / "k.pem"
    code, _, _ = run("secure-boot", "generate-key", "--scheme", "ecdsa256", "-o", key)
    assert code == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    code, _, err = run("secure-boot", "generate-key", "--scheme", "ecdsa256", "-o", key)
    assert code == 2 and "refusing to overwrite" in err and str(key) in err
    assert key.read_bytes() == before


def test_sign_verify_key_digest_roundtrip(tmp_path, app, sb_key_dir, sb_keys):
    out = tmp_path / "signed.bin"
    code, _, _ = run("secure-boot", "sign", "-k", sb_key_dir / "rsa3072.pem", "-o", out, app)
    assert code == 0
    code, stdout, _ = run(
        "secure-boot", "verify", "-k", sb_key_dir / "rsa3072.pub.pem", "--json", out
    )
    assert code == 0 and json.loads(stdout)["verified_block"] == 0
    code, stdout, _ = run("secure-boot", "key-digest", "--json", sb_key_dir / "rsa3072.pub.pem")
    digest = json.loads(stdout)["key_digest"]
    assert digest == secure_boot.key_digest(sb_keys["rsa3072"]).hex()
    code, stdout, _ = run(
        "secure-boot", "verify", "--key-digest", "-", "--key-digest", digest, "--revoked", "0", out
    )
    assert code == 0 and "eFuse slot 1" in stdout
    code, _, err = run("secure-boot", "verify", "--key-digest", digest, "--revoked", "0", out)
    assert code == 1 and "key revoked" in err


def test_tampered_image_fails_with_exit_1(tmp_path, app, sb_key_dir):
    out = tmp_path / "signed.bin"
    run("secure-boot", "sign", "-k", sb_key_dir / "rsa3072.pem", "-o", out, app)
    data = bytearray(out.read_bytes())
    data[0x40] ^= 1
    out.write_bytes(bytes(data))
    code, _, err = run("secure-boot", "verify", "-k", sb_key_dir / "rsa3072.pem", out)
    assert code == 1
    expected = "no valid signature: block 0: image digest mismatch (image changed after signing)"
    assert err.strip().splitlines() == [f"error: {out}: {expected}"]


def test_external_signing_flow(tmp_path, app, sb_key_dir, sb_keys):
    digest_file = tmp_path / "digest.bin"
    padded = tmp_path / "padded.bin"
    code, _, _ = run(
        "secure-boot",
        "digest",
        "--pub-key",
        sb_key_dir / "ecdsa256.pub.pem",
        "--padded-image-output",
        padded,
        "-o",
        digest_file,
        app,
    )
    assert code == 0
    assert padded.read_bytes() == secure_boot.pad_to_sector(app.read_bytes())
    assert digest_file.read_bytes() == hashlib.sha256(padded.read_bytes()).digest()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    sig = sb_keys["ecdsa256"].sign(
        digest_file.read_bytes(), ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    )
    (tmp_path / "sig.der").write_bytes(sig)
    out = tmp_path / "signed.bin"
    code, _, err = run(
        "secure-boot",
        "sign",
        "--chip",
        "esp32s3",
        "--signature",
        tmp_path / "sig.der",
        "--pub-key",
        sb_key_dir / "ecdsa256.pub.pem",
        "-o",
        out,
        app,
    )
    assert code == 2 and "ESP32-S3 ROM does not accept" in err and not out.exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"not a key", "in PEM, found no PEM data"),
        (b"-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n", "malformed"),
    ],
)
def test_bad_key_gives_one_line_and_no_output(tmp_path, app, content, needle):
    key = tmp_path / "bad.pem"
    key.write_bytes(content)
    out = tmp_path / "signed.bin"
    code, _, err = run("secure-boot", "sign", "-k", key, "-o", out, app)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and needle in err and str(key) in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == sorted([app, key]) or set(tmp_path.iterdir()) == {app, key}


def test_not_an_esp_image(tmp_path, sb_key_dir):
    bogus = tmp_path / "bogus.bin"
    bogus.write_bytes(b"\x7fELF" + bytes(100))
    out = tmp_path / "o.bin"
    code, _, err = run("secure-boot", "sign", "-k", sb_key_dir / "rsa3072.pem", "-o", out, bogus)
    assert code == 1 and "magic" in err and str(bogus) in err
    assert "Traceback" not in err and not out.exists()


def test_verify_unaligned_signed_image(tmp_path, sb_key_dir):
    bogus = tmp_path / "short.bin"
    bogus.write_bytes(b"\xe9" + bytes(5000))
    code, _, err = run("secure-boot", "verify", "-k", sb_key_dir / "rsa3072.pem", bogus)
    assert code == 1 and "image is not signed" in err and "found 5001 bytes" in err


@pytest.mark.parametrize(
    "command",
    [("verify", "-k", "{key}"), ("info",), ("sign", "--append", "-k", "{key}", "-o", "{out}")],
    ids=["verify", "info", "sign-append"],
)
def test_unsigned_image_is_reported_as_not_signed(tmp_path, app, sb_key_dir, command):
    out = tmp_path / "out.bin"
    key = sb_key_dir / "rsa3072.pem"
    args = [str(a).format(key=key, out=out) for a in command]
    code, _, err = run("secure-boot", *args, app)
    assert code == 1 and not out.exists()
    assert err.strip().splitlines() == [
        f"error: {app}: image is not signed: no signature sector at its end (expected a "
        f"signed image: a multiple of 4096 bytes, at least 8192, found {app.stat().st_size} bytes)"
    ]


def test_fourth_block_refused(tmp_path, app, sb_key_dir):
    out = tmp_path / "s.bin"
    keys = [
        a for n in ("rsa3072", "rsa3072-b", "rsa3072-c") for a in ("-k", sb_key_dir / f"{n}.pem")
    ]
    assert run("secure-boot", "sign", *keys, "-o", out, app)[0] == 0
    out2 = tmp_path / "s2.bin"
    code, _, err = run(
        "secure-boot", "sign", "-a", "-k", sb_key_dir / "rsa3072.pem", "-o", out2, out
    )
    assert code == 2 and "at most 3" in err and not out2.exists()


def test_info_json(tmp_path, app, sb_key_dir):
    out = tmp_path / "s.bin"
    run("secure-boot", "sign", "-k", sb_key_dir / "rsa3072.pem", "-o", out, app)
    _, stdout, _ = run("secure-boot", "info", "--json", out)
    blocks = json.loads(stdout)
    assert [b["state"] for b in blocks] == ["valid", "empty", "empty"]


def test_verify_against_an_efuse_file(tmp_path, app, sb_key_dir, sb_keys):
    from espsec import efuse

    out = tmp_path / "signed.bin"
    run("secure-boot", "sign", "-k", sb_key_dir / "rsa3072.pem", "-o", out, app)
    fuses = efuse.new("esp32s3")
    efuse.burn_key_digest(
        fuses, "BLOCK_KEY1", secure_boot.key_digest(sb_keys["rsa3072"]), "SECURE_BOOT_DIGEST1"
    )
    efuse.save(fuses, tmp_path / "efuse.bin")
    code, stdout, _ = run("secure-boot", "verify", "--efuse-file", tmp_path / "efuse.bin", out)
    assert code == 0 and "eFuse slot 1" in stdout
    efuse.burn(fuses, {"SECURE_BOOT_KEY_REVOKE1": 1})
    efuse.save(fuses, tmp_path / "efuse.bin")
    code, _, err = run("secure-boot", "verify", "--efuse-file", tmp_path / "efuse.bin", out)
    assert code == 1 and "key revoked" in err


def test_digest_refuses_what_is_not_an_esp_image(tmp_path):
    bogus = tmp_path / "bogus.bin"
    bogus.write_bytes(b"")
    out = tmp_path / "d.bin"
    code, _, err = run("secure-boot", "digest", "--scheme", "rsa3072", "-o", out, bogus)
    assert code == 1 and "image header" in err and str(bogus) in err and not out.exists()


def test_digest_for_append_equals_digest_of_unsigned_image(tmp_path, app, sb_key_dir):
    signed = tmp_path / "signed.bin"
    run("secure-boot", "sign", "-k", sb_key_dir / "rsa3072.pem", "-o", signed, app)
    plain, appended = tmp_path / "d1.bin", tmp_path / "d2.bin"
    assert run("secure-boot", "digest", "--scheme", "rsa3072", "-o", plain, app)[0] == 0
    code, _, _ = run("secure-boot", "digest", "--scheme", "rsa3072", "-a", "-o", appended, signed)
    assert code == 0 and appended.read_bytes() == plain.read_bytes()


def test_key_digest_file_of_wrong_size_names_its_length(tmp_path, app, sb_key_dir):
    signed = tmp_path / "signed.bin"
    run("secure-boot", "sign", "-k", sb_key_dir / "rsa3072.pem", "-o", signed, app)
    wrong = tmp_path / "digest.bin"
    wrong.write_bytes(bytes(64))
    code, _, err = run("secure-boot", "verify", "--key-digest", wrong, signed)
    assert code == 1 and "expected 32 bytes, found 64 bytes" in err
