"""``--pkcs11-uri`` on ``secure-boot sign`` and ``ota pack``: keys that never leave a token."""

from __future__ import annotations

from click.testing import CliRunner

from espsec import ota, secure_boot
from espsec.cli.main import main


def _run(*args: object):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_secure_boot_sign_with_pkcs11_uri_verifies_with_the_public_key(
    tmp_path, softhsm, sb_key_dir, s3_app
):
    (tmp_path / "app.bin").write_bytes(s3_app)
    out = tmp_path / "signed.bin"
    result = _run(
        "secure-boot",
        "sign",
        "--pkcs11-uri",
        softhsm.uri("rsa3072"),
        "-o",
        out,
        tmp_path / "app.bin",
    )
    assert result.exit_code == 0, result.output
    result = _run("secure-boot", "verify", "-k", sb_key_dir / "rsa3072.pub.pem", out)
    assert result.exit_code == 0, result.output


def test_pkcs11_uri_with_pin_value_is_a_usage_error(tmp_path, softhsm, s3_app):
    (tmp_path / "app.bin").write_bytes(s3_app)
    uri = softhsm.uri("rsa3072", pin=False) + "&pin-value=1234"
    result = _run(
        "secure-boot", "sign", "--pkcs11-uri", uri, "-o", tmp_path / "s.bin", tmp_path / "app.bin"
    )
    assert result.exit_code == 2
    assert "1234" not in result.output
    assert not (tmp_path / "s.bin").exists()


def test_ota_pack_signs_image_and_release_statement_in_the_token(
    tmp_path, softhsm, sb_keys, p4_app
):
    (tmp_path / "app.bin").write_bytes(p4_app)
    out = tmp_path / "release.bundle"
    result = _run(
        "ota", "pack", "--pkcs11-uri", softhsm.uri("ecdsa256"), "-o", out, tmp_path / "app.bin"
    )
    assert result.exit_code == 0, result.output
    bundle = ota.ReleaseBundle.parse(out.read_bytes())
    report = ota.verify_release(bundle, keys=[sb_keys["ecdsa256"].public_key()])
    assert report.signers == (secure_boot.key_digest(sb_keys["ecdsa256"]),)


def test_ota_pack_without_any_key_is_a_usage_error(tmp_path, p4_app):
    (tmp_path / "app.bin").write_bytes(p4_app)
    result = _run("ota", "pack", "-o", tmp_path / "r.bundle", tmp_path / "app.bin")
    assert result.exit_code == 2
