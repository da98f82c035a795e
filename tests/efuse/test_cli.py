"""``espsec efuse``: exit codes, one-line errors that leave the file untouched, plans,
and no key material in any output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from espsec import efuse, secure_boot
from espsec.cli.main import main

KEY = bytes(range(32))


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["efuse", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def fingerprint(path: Path) -> str:
    side = efuse.sidecar_path(path)
    return hashlib.sha256(path.read_bytes() + side.read_bytes()).hexdigest()


@pytest.fixture(params=["esp32s3", "esp32p4"])
def efile(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "efuse.bin"
    code, out, _ = run("new", "--chip", request.param, "--efuse-file", path)
    assert code == 0 and "eFuse file written" in out
    return path


@pytest.fixture()
def keyfile(tmp_path: Path) -> Path:
    path = tmp_path / "key.bin"
    path.write_bytes(KEY)
    return path


def test_new_refuses_to_overwrite(efile):
    code, _, err = run("new", "--chip", "esp32s3", "--efuse-file", efile)
    assert code == 2 and "refusing to overwrite" in err


def test_summary_json_has_fields_blocks_and_security(efile):
    code, out, _ = run("summary", "--efuse-file", efile, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["fields"]["SPI_BOOT_CRYPT_CNT"]["value"] == "Disable"
    assert report["fields"]["KEY_PURPOSE_0"]["value"] == "USER"
    assert report["security"]["download_mode"] == "normal"
    assert len(report["blocks"]) == 11
    code, out, _ = run("summary", "--efuse-file", efile)
    assert code == 0 and "Flash encryption: off" in out and "SECURE_VERSION = 0 R/W" in out


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["burn", "NOPE", "1"], 2, "unknown eFuse field 'NOPE'"),
        (["burn", "SECURE_VERSION", "0x10000"], 2, "SECURE_VERSION: value 0x10000 does not fit"),
        (["burn", "SECURE_VERSION", "x"], 2, "SECURE_VERSION: 'x' is not a valid uint:16 value"),
        (["burn", "SECURE_VERSION", "1", "SECURE_BOOT_EN"], 2, "NAME VALUE pairs"),
        (["burn-key", "BLOCK_KEY0", "{key}", "NOPE"], 2, "unknown key purpose 'NOPE'"),
        (["burn-key", "BLOCK3", "{key}", "HMAC_UP"], 2, "BLOCK_USR_DATA is not a key block"),
        (["burn-key", "BLOCK_KEY0", "{key}", "XTS_AES_256_KEY"], 2, "needs a 64-byte"),
        (["burn-key", "BLOCK_KEY0", "missing.bin", "HMAC_UP"], 1, "key file not found"),
        (["burn", "KEY_PURPOSE_0", "XTS_AES_256_KEY"], 2, "not a hardware purpose"),
        (["write-protect", "WR_DIS"], 2, "WR_DIS cannot be write-protected"),
        (["write-protect", "NOPE"], 2, "unknown eFuse field or block 'NOPE'"),
        (["read-protect", "BLOCK_KEY0"], 1, "BLOCK_KEY0 holds a USER key and must stay"),
    ],
)
def test_bad_input_is_one_line_and_leaves_the_file_untouched(efile, keyfile, args, code, message):
    before = fingerprint(efile)
    args = [a.replace("{key}", str(keyfile)) for a in args]
    got, _, err = run(args[0], "--efuse-file", efile, *args[1:])
    assert got == code, err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")
    assert fingerprint(efile) == before


@pytest.mark.parametrize("purpose", ["HMAC_UP", "XTS_AES_256_KEY"])
def test_a_key_of_the_wrong_size_is_refused_naming_its_file(efile, tmp_path, purpose):
    short = tmp_path / "short.bin"
    short.write_bytes(KEY[:10])
    before = fingerprint(efile)
    code, _, err = run("burn-key", "--efuse-file", efile, "BLOCK_KEY0", short, purpose)
    assert code == 2 and err.startswith(f"error: {short}: ") and "found 10" in err
    assert fingerprint(efile) == before


def test_burn_into_used_block_is_refused_with_one_line(efile, keyfile):
    assert run("burn-key", "--efuse-file", efile, "BLOCK_KEY1", keyfile, "HMAC_UP")[0] == 0
    before = fingerprint(efile)
    code, _, err = run("burn-key", "--efuse-file", efile, "BLOCK_KEY1", keyfile, "HMAC_UP")
    assert code == 1 and "BLOCK_KEY1 is read-protected" in err and err.count("\n") == 1
    assert fingerprint(efile) == before


def files(path: Path) -> tuple[bytes, bytes]:
    return path.read_bytes(), efuse.sidecar_path(path).read_bytes()


def test_burn_that_needs_a_bit_to_go_back_to_0_exits_1_in_one_line(efile):
    """``burn SECURE_VERSION 7`` then ``4``: the field would hold 7, so 4 is refused."""
    assert run("burn", "--efuse-file", efile, "SECURE_VERSION", "7")[0] == 0
    before = files(efile)
    code, out, err = run("burn", "--efuse-file", efile, "SECURE_VERSION", "4")
    assert (code, out) == (1, "")
    assert err == (
        "error: SECURE_VERSION is 0x7: cannot burn 0x4 (bits 0,1 would need 1 -> 0 and "
        "eFuse bits only go 0 -> 1; it would stay 0x7)\n"
    )
    assert files(efile) == before


def test_counter_value_out_of_reach_exits_1_and_burns_no_other_pair(efile):
    assert run("burn", "--efuse-file", efile, "SECURE_VERSION", "3")[0] == 0
    before = files(efile)
    code, _, err = run("burn", "--efuse-file", efile, "DIS_PAD_JTAG", "1", "SECURE_VERSION", "0x5")
    assert code == 1 and err.count("\n") == 1
    assert "SECURE_VERSION is 0x3: cannot burn 0x5" in err and "it would read 0x7" in err
    assert files(efile) == before


def test_burning_the_value_already_there_says_so_and_writes_nothing(efile):
    assert run("burn", "--efuse-file", efile, "SECURE_VERSION", "7")[0] == 0
    before = files(efile)
    code, out, err = run("burn", "--efuse-file", efile, "SECURE_VERSION", "7")
    assert (code, err) == (0, "")
    assert "note: SECURE_VERSION already has this value (0x7); nothing to burn" in out
    assert out.endswith("nothing to burn\n")
    assert files(efile) == before


def test_write_protected_field_refuses_with_its_values(efile):
    assert run("write-protect", "--efuse-file", efile, "DIS_DOWNLOAD_MODE")[0] == 0
    before = files(efile)
    code, _, err = run("burn", "--efuse-file", efile, "SECURE_VERSION", "1")
    assert code == 1 and err == (
        "error: SECURE_VERSION is write-protected (WR_DIS bit 18): cannot burn 0x1 (it is 0x0)\n"
    )
    assert files(efile) == before


def test_key_over_a_key_containing_its_bits_is_refused(efile, tmp_path):
    ones, key = tmp_path / "ones.bin", tmp_path / "key.bin"
    ones.write_bytes(b"\xff" * 32)
    key.write_bytes(KEY)
    burn = ("burn-key", "--efuse-file", efile, "BLOCK_KEY1")
    assert run(*burn, ones, "HMAC_UP", "--no-read-protect")[0] == 0
    before = files(efile)
    code, _, err = run(*burn, key, "HMAC_UP", "--no-read-protect")
    assert code == 1 and err.count("\n") == 1
    assert "BLOCK_KEY1 already holds data (purpose HMAC_UP) other than this key" in err
    assert files(efile) == before


def test_burn_key_output_and_summary_never_show_the_key(efile, keyfile):
    code, out, _ = run("burn-key", "--efuse-file", efile, "BLOCK_KEY0", keyfile, "XTS_AES_128_KEY")
    assert code == 0 and "burned:" in out
    for text in (out, run("summary", "--efuse-file", efile, "--json")[1]):
        assert KEY.hex() not in text and KEY[::-1].hex() not in text
        assert " ".join(f"{b:02x}" for b in KEY[::-1]) not in text
    assert efuse.load(efile).hardware_block("BLOCK_KEY0") == KEY[::-1]


def test_policy_refusal_exits_1_and_allow_overrides(efile):
    before = fingerprint(efile)
    code, out, _ = run("burn", "--efuse-file", efile, "SECURE_BOOT_EN", "1")
    assert code == 1 and "REFUSED SB_NO_DIGEST" in out and "nothing burned" in out
    assert fingerprint(efile) == before
    code, out, _ = run(
        "burn", "--efuse-file", efile, "SECURE_BOOT_EN", "1", "--allow", "SB_NO_DIGEST"
    )
    assert code == 0 and "ALLOWED SB_NO_DIGEST" in out
    assert efuse.load(efile).get("SECURE_BOOT_EN") == 1


def test_burn_key_digest_from_pem_and_from_digest_file(tmp_path, sb_key_dir):
    path = tmp_path / "e.bin"
    run("new", "--chip", "esp32s3", "--efuse-file", path)
    pub = sb_key_dir / "rsa3072.pub.pem"
    expected = secure_boot.key_digest(secure_boot.load_public_key(pub.read_bytes()))
    code, out, _ = run(
        "burn-key-digest", "--efuse-file", path, "BLOCK_KEY1", pub, "SECURE_BOOT_DIGEST0"
    )
    assert code == 0, out
    digest = tmp_path / "digest.bin"
    digest.write_bytes(expected)
    code, _, err = run(
        "burn-key-digest",
        "--efuse-file",
        path,
        "--key-digest",
        digest,
        "BLOCK_KEY2",
        "SECURE_BOOT_DIGEST1",
    )
    assert code == 0, err
    e = efuse.load(path)
    assert e.read_block("BLOCK_KEY1") == e.read_block("BLOCK_KEY2") == expected
    digest.write_bytes(b"short")
    code, _, err = run(
        "burn-key-digest",
        "--efuse-file",
        path,
        "--key-digest",
        digest,
        "BLOCK_KEY3",
        "SECURE_BOOT_DIGEST2",
    )
    assert code == 1 and "not a key digest (expected 32 bytes, found 5 bytes)" in err


def test_p4_ecdsa_key_from_pem(tmp_path):
    path = tmp_path / "e.bin"
    run("new", "--chip", "esp32p4", "--efuse-file", path)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "ecdsa.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    code, _, err = run("burn-key", "--efuse-file", path, "BLOCK_KEY2", pem, "ECDSA_KEY")
    assert code == 0, err
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    assert efuse.load(path).hardware_block(6) == scalar[::-1]
    code, _, err = run("burn-key", "--efuse-file", path, "BLOCK_KEY3", pem, "HMAC_UP")
    assert code == 2 and "raw key bytes, found a PEM" in err


def test_write_and_read_protect_commands(efile, keyfile):
    code, out, err = run(
        "burn-key", "--efuse-file", efile, "BLOCK_KEY0", keyfile, "HMAC_UP", "--no-read-protect"
    )
    assert code == 0 and "burned:" in out and "warning KEY_READABLE" in err
    code, out, _ = run("read-protect", "--efuse-file", efile, "BLOCK_KEY0")
    assert code == 0 and "RD_DIS[0] hides BLOCK_KEY0" in out
    code, out, _ = run("write-protect", "--efuse-file", efile, "DIS_DOWNLOAD_MODE")
    assert code == 0 and "locks" in out and "SECURE_VERSION" in out
    e = efuse.load(efile)
    assert e.is_read_protected(4) and not e.is_writeable("SECURE_VERSION")


def test_plan_dry_run_then_apply(efile, tmp_path, keyfile):
    plan = tmp_path / "plan.txt"
    plan.write_text(
        "# flash encryption, development mode\n"
        f"burn-key BLOCK_KEY0 {keyfile.name} XTS_AES_128_KEY\n"
        "burn-efuse SPI_BOOT_CRYPT_CNT 1\n"
    )
    before = fingerprint(efile)
    code, out, err = run("plan", "--efuse-file", efile, plan)
    assert code == 0 and "plan ok: nothing burned" in out
    assert "SPI_BOOT_CRYPT_CNT (BLOCK0) bit 82: 0x0 -> 0x1" in out
    assert "! KEY_PURPOSE_0" in out and "warning FE_DEVELOPMENT" in err  # warnings: stderr
    assert fingerprint(efile) == before
    code, out, _ = run("plan", "--efuse-file", efile, plan, "--apply", "--json")
    report = json.loads(out)
    assert code == 0 and report["applied"] and not report["refused"]
    assert efuse.security_state(efuse.load(efile)).flash_encryption_enabled


def test_refused_plan_exits_1_even_with_apply(efile, tmp_path):
    plan = tmp_path / "plan.txt"
    plan.write_text("burn-efuse SECURE_BOOT_EN 1\n")
    before = fingerprint(efile)
    code, out, _ = run("plan", "--efuse-file", efile, plan, "--apply")
    assert code == 1 and "REFUSED SB_NO_DIGEST" in out
    assert fingerprint(efile) == before


def test_plan_errors_name_the_plan_line(efile, tmp_path):
    plan = tmp_path / "plan.txt"
    plan.write_text("burn-efuse SECURE_VERSION 1\nburn-key BLOCK_KEY0 nokey.bin HMAC_UP\n")
    code, _, err = run("plan", "--efuse-file", efile, plan)
    assert code == 1 and "nokey.bin" in err and "key file not found" in err
    plan.write_text("\nburn-efuse NOPE 1\n")
    code, _, err = run("plan", "--efuse-file", efile, plan)
    assert code == 2 and str(plan) in err and "unknown eFuse field 'NOPE'" in err
    plan.write_text("burn-efuse SECURE_VERSION 0x10000\n")  # refused on staging
    code, _, err = run("plan", "--efuse-file", efile, plan)
    assert code == 2 and err.startswith(f"error: {plan}: SECURE_VERSION") and "fit" in err


def test_security_info(efile):
    code, out, _ = run("security-info", "--efuse-file", efile, "--json")
    info = json.loads(out)
    assert code == 0 and len(bytes.fromhex(info["raw"])) == 20
    assert info["chip_id"] in (9, 18) and info["flags"] == 0
    code, out, _ = run("security-info", "--efuse-file", efile)
    assert "GET_SECURITY_INFO:" in out and "Download mode: normal" in out


def test_file_without_sidecar_needs_chip(tmp_path):
    path = tmp_path / "from-espefuse.bin"
    path.write_bytes(bytes(0x200))
    code, _, err = run("summary", "--efuse-file", path)
    assert code == 2 and "pass --chip" in err
    assert run("summary", "--efuse-file", path, "--chip", "esp32p4")[0] == 0


def test_wrong_key_pems_are_one_line_naming_the_file(tmp_path, sb_key_dir):
    path = tmp_path / "e.bin"
    run("new", "--chip", "esp32p4", "--efuse-file", path)
    before = fingerprint(path)
    pub = sb_key_dir / "ecdsa256.pub.pem"
    code, _, err = run("burn-key", "--efuse-file", path, "BLOCK_KEY2", pub, "ECDSA_KEY")
    assert code == 1 and err.count("\n") == 1
    assert f"{pub}: not a usable key file" in err and "found a public key" in err
    cert = tmp_path / "cert.pem"
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n")
    code, _, err = run(
        "burn-key-digest", "--efuse-file", path, "BLOCK_KEY1", cert, "SECURE_BOOT_DIGEST0"
    )
    assert code == 1 and err.count("\n") == 1
    assert f"{cert}: not a usable key file" in err and "found an X.509 certificate" in err
    assert fingerprint(path) == before


def test_a_random_file_is_not_an_efuse_file_for_any_supported_chip(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 3)
    code, _, err = run("summary", "--efuse-file", junk)
    assert code == 1 and err == (
        f"error: {junk}: not an eFuse file for any supported chip "
        "(expected 512 bytes, found 768 bytes)\n"
    )


def test_new_makes_the_efuse_file_and_never_writes_over_anything(tmp_path):
    path = tmp_path / "e.bin"
    code, out, _ = run("new", "--chip", "esp32s3", "--efuse-file", path, "--json")
    assert code == 0 and json.loads(out)["efuse_file"] == str(path)
    assert efuse.sidecar_path(path).stat().st_mode & 0o077 == 0
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    code, _, err = run("new", "--chip", "esp32s3", "--efuse-file", link)
    assert code == 2 and "refusing to overwrite" in err and not (tmp_path / "nowhere").exists()


def test_burn_key_digest_takes_the_digest_as_hex(efile):
    digest = bytes(range(32))
    code, _, err = run(
        "burn-key-digest", "--efuse-file", efile, "--key-digest", digest.hex(), "BLOCK_KEY1",
        "SECURE_BOOT_DIGEST0",
    )  # fmt: skip
    assert code == 0, err
    assert efuse.load(efile).read_block("BLOCK_KEY1") == digest


@pytest.mark.parametrize("port", ["socket://[::1", "socket://127.0.0.1:99999", "ftp://x"])
def test_a_malformed_port_is_a_usage_error(port):
    code, _, err = run("summary", "--port", port)
    assert code == 2 and "expected a serial port or socket://HOST:PORT" in err


def test_an_ecdsa_key_digest_on_an_rsa_only_rom_burns_with_a_warning(tmp_path, sb_key_dir):
    path = tmp_path / "e.bin"
    run("new", "--chip", "esp32s3", "--efuse-file", path)
    pub = sb_key_dir / "ecdsa256.pub.pem"
    code, out, err = run(
        "burn-key-digest", "--efuse-file", path, "BLOCK_KEY1", pub, "SECURE_BOOT_DIGEST0"
    )
    assert code == 0 and "burned:" in out
    assert "warning SB_SCHEME_UNSUPPORTED: BLOCK_KEY1: an ecdsa256 key digest on ESP32-S3" in err
    code, out, _ = run(
        "burn-key-digest", "--efuse-file", path, "BLOCK_KEY2", pub, "SECURE_BOOT_DIGEST1", "--json"
    )
    findings = json.loads(out)["findings"]
    assert {"SB_SCHEME_UNSUPPORTED"} <= {f["code"] for f in findings}


def test_a_digest_into_a_revoked_slot_burns_with_a_warning(efile):
    assert run("burn", "--efuse-file", efile, "SECURE_BOOT_KEY_REVOKE2", "1")[0] == 0
    code, out, err = run(
        "burn-key-digest", "--efuse-file", efile, "--key-digest", "ab" * 32, "BLOCK_KEY3",
        "SECURE_BOOT_DIGEST2", "--json",
    )  # fmt: skip
    assert code == 0 and "warning DIGEST_REVOKED" in err
    assert "DIGEST_REVOKED" in {f["code"] for f in json.loads(out)["findings"]}


def test_an_unknown_allow_code_is_a_usage_error_naming_the_valid_codes(efile):
    before = fingerprint(efile)
    code, _, err = run("burn", "--efuse-file", efile, "SECURE_BOOT_EN", "1", "--allow", "SB_NOPE")
    assert code == 2 and err.count("\n") == 1
    assert "unknown --allow code SB_NOPE (refusal codes: " in err and "SB_NO_DIGEST" in err
    assert fingerprint(efile) == before
