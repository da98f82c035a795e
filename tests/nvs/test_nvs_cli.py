"""``espsec nvs``: exit codes, one-line errors, nothing written on failure, key hygiene."""

from __future__ import annotations

import json
import stat

from click.testing import CliRunner

from espsec.cli.main import main
from espsec.flash import NorFlash
from espsec.nvs import NvsKeys, NvsStore, read_partition

CSV = (
    "key,type,encoding,value\n"
    "wifi,namespace,,\n"
    "ssid,data,string,lab\n"
    "channel,data,u8,6\n"
    "cert,data,hex2bin,00112233\n"
)


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_generate_then_dump_as_csv_and_json(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV)
    out = tmp_path / "nvs.bin"
    code, stdout, _ = run("nvs", "generate", csv, out, "--size", "0x3000")
    assert code == 0 and "written to" in stdout
    assert len(out.read_bytes()) == 0x3000
    code, stdout, _ = run("nvs", "dump", out)
    assert code == 0 and stdout == CSV
    code, stdout, _ = run("nvs", "dump", out, "--json")
    report = json.loads(stdout)
    assert report["version"] == 2 and not report["encrypted"]
    assert report["entries"][2] == {
        "namespace": "wifi",
        "key": "cert",
        "type": "blob",
        "value": "00112233",
    }


def test_encrypt_with_keys_file_decrypt_and_dump(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV)
    keys = tmp_path / "keys.bin"
    assert run("nvs", "generate-keys", keys)[0] == 0
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    enc = tmp_path / "enc.bin"
    assert run("nvs", "encrypt", csv, enc, "--size", "0x3000", "--keys", keys)[0] == 0
    assert b"lab" not in enc.read_bytes()
    code, stdout, _ = run("nvs", "dump", enc, "--keys", keys)
    assert code == 0 and stdout == CSV
    plain = tmp_path / "plain.bin"
    assert run("nvs", "decrypt", enc, plain, "--keys", keys)[0] == 0
    assert stat.S_IMODE(plain.stat().st_mode) == 0o600
    assert read_partition(plain.read_bytes()).entries[0].value == "lab"


def test_hmac_scheme_end_to_end_and_on_the_virtual_device(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV)
    hmac_key, keys = tmp_path / "hmac.bin", tmp_path / "keys.bin"
    code, _, _ = run("nvs", "generate-keys", keys, "--hmac-key", hmac_key, "--new-hmac-key")
    assert code == 0 and len(hmac_key.read_bytes()) == 32
    assert stat.S_IMODE(hmac_key.stat().st_mode) == 0o600
    assert NvsKeys.parse(keys.read_bytes()) == NvsKeys.from_hmac_key(hmac_key.read_bytes())
    enc = tmp_path / "enc.bin"
    assert run("nvs", "encrypt", csv, enc, "--size", "0x4000", "--hmac-key", hmac_key)[0] == 0
    # The device derives the same keys from its eFuse HMAC key and reads the partition.
    flash = NorFlash(enc.read_bytes())
    device_keys = NvsKeys.from_hmac_key(hmac_key.read_bytes())
    nvs = NvsStore.init(flash, keys=device_keys).open("wifi")
    assert nvs.get_str("ssid") == "lab" and nvs.get_u8("channel") == 6
    nvs.set_u8("channel", 11)
    (tmp_path / "after.bin").write_bytes(flash.snapshot())
    code, stdout, _ = run("nvs", "dump", tmp_path / "after.bin", "--hmac-key", hmac_key)
    assert code == 0 and "channel,data,u8,11" in stdout


def test_bad_csv_names_the_line_and_writes_nothing(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text(CSV + "big,data,u8,300\n")
    out = tmp_path / "nvs.bin"
    code, _, stderr = run("nvs", "generate", csv, out, "--size", "0x3000")
    assert code == 1
    assert stderr.strip().splitlines() == [
        f"error: {csv}: line 6: value of 'big' does not fit u8 (expected 0..255, found 300)"
    ]
    assert not out.exists()


def test_partition_too_small_writes_nothing(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV + "huge,data,hex2bin," + "00" * 9000 + "\n")
    out = tmp_path / "nvs.bin"
    code, _, stderr = run("nvs", "generate", csv, out, "--size", "0x3000")
    assert code == 1 and "line 6: partition too small: 'huge'" in stderr
    assert not out.exists()


def test_wrong_and_corrupt_keys_are_one_line_errors(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV)
    keys, other = tmp_path / "keys.bin", tmp_path / "other.bin"
    run("nvs", "generate-keys", keys)
    run("nvs", "generate-keys", other)
    enc = tmp_path / "enc.bin"
    run("nvs", "encrypt", csv, enc, "--size", "0x3000", "--keys", keys)
    code, _, stderr = run("nvs", "dump", enc, "--keys", other)
    assert code == 1 and "wrong NVS keys" in stderr and len(stderr.splitlines()) == 1
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"\x00" + keys.read_bytes()[1:])
    out = tmp_path / "x.bin"
    code, _, stderr = run("nvs", "encrypt", csv, out, "--size", "0x3000", "--keys", corrupt)
    assert code == 1 and f"{corrupt}: offset 0x40 crc32: nvs_keys CRC mismatch" in stderr
    assert not out.exists()
    code, _, stderr = run("nvs", "decrypt", enc, out, "--keys", other)
    assert code == 1 and not out.exists()


def test_usage_errors_exit_2(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV)
    out = tmp_path / "o.bin"
    code, _, stderr = run("nvs", "encrypt", csv, out, "--size", "0x3000")
    assert code == 2 and "--keys" in stderr
    code, _, stderr = run("nvs", "generate", csv, out, "--size", "0x2800")
    assert code == 2 and "multiple of 0x1000" in stderr
    keys = tmp_path / "keys.bin"
    run("nvs", "generate-keys", keys)
    before = keys.read_bytes()
    code, _, stderr = run("nvs", "generate-keys", keys)
    assert code == 2 and "refusing to overwrite" in stderr and keys.read_bytes() == before
