"""``espsec nvs``: exit codes, one-line errors, nothing written on failure, key hygiene."""

from __future__ import annotations

import json
import stat

import pytest
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
    code, stdout, _ = run("nvs", "generate", csv, "-o", out, "--size", "0x3000")
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
    assert run("nvs", "generate-keys", "-o", keys)[0] == 0
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    enc = tmp_path / "enc.bin"
    assert run("nvs", "encrypt", csv, "-o", enc, "--size", "0x3000", "--keys", keys)[0] == 0
    assert b"lab" not in enc.read_bytes()
    code, stdout, _ = run("nvs", "dump", enc, "--keys", keys)
    assert code == 0 and stdout == CSV
    plain = tmp_path / "plain.bin"
    assert run("nvs", "decrypt", enc, "-o", plain, "--keys", keys)[0] == 0
    assert stat.S_IMODE(plain.stat().st_mode) == 0o600
    assert read_partition(plain.read_bytes()).entries[0].value == "lab"


def test_hmac_scheme_end_to_end_and_on_the_virtual_device(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV)
    hmac_key, keys = tmp_path / "hmac.bin", tmp_path / "keys.bin"
    code, _, _ = run("nvs", "generate-keys", "-o", keys, "--hmac-key-output", hmac_key)
    assert code == 0 and len(hmac_key.read_bytes()) == 32
    assert stat.S_IMODE(hmac_key.stat().st_mode) == 0o600
    assert NvsKeys.parse(keys.read_bytes()) == NvsKeys.from_hmac_key(hmac_key.read_bytes())
    enc = tmp_path / "enc.bin"
    assert run("nvs", "encrypt", csv, "-o", enc, "--size", "0x4000", "--hmac-key", hmac_key)[0] == 0
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
    code, _, stderr = run("nvs", "generate", csv, "-o", out, "--size", "0x3000")
    assert code == 1
    assert stderr.strip().splitlines() == [
        f"error: {csv}: line 6: value of 'big' does not fit u8 (expected 0..255, found 300)"
    ]
    assert not out.exists()


def test_partition_too_small_writes_nothing(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV + "huge,data,hex2bin," + "00" * 9000 + "\n")
    out = tmp_path / "nvs.bin"
    code, _, stderr = run("nvs", "generate", csv, "-o", out, "--size", "0x3000")
    assert code == 1 and "line 6: partition too small: 'huge'" in stderr
    assert not out.exists()


@pytest.mark.parametrize("command", ["generate", "encrypt"])
def test_a_bad_row_after_pages_were_written_leaves_the_output_as_it_was(tmp_path, command):
    # the image goes out page by page: a late error must still write nothing
    csv = tmp_path / "in.csv"
    csv.write_text(
        CSV + "".join(f"b{i},data,hex2bin,{'ab' * 3000}\n" for i in range(200)) + "x,data,u8,-1\n"
    )
    keys = tmp_path / "keys.bin"
    assert run("nvs", "generate-keys", "-o", keys)[0] == 0
    out = tmp_path / "nvs.bin"
    out.write_bytes(b"before")
    extra = ["--keys", keys] if command == "encrypt" else []
    code, stdout, stderr = run("nvs", command, csv, "-o", out, "--size", "0x200000", *extra)
    assert code == 1 and "line 206: value of 'x' does not fit u8" in stderr
    assert out.read_bytes() == b"before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "keys.bin", "nvs.bin"]
    code, stdout, _ = run("nvs", command, csv, "-o", "-", "--size", "0x200000", *extra)
    assert code == 1 and stdout == ""


def test_wrong_and_corrupt_keys_are_one_line_errors(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV)
    keys, other = tmp_path / "keys.bin", tmp_path / "other.bin"
    run("nvs", "generate-keys", "-o", keys)
    run("nvs", "generate-keys", "-o", other)
    enc = tmp_path / "enc.bin"
    run("nvs", "encrypt", csv, "-o", enc, "--size", "0x3000", "--keys", keys)
    code, _, stderr = run("nvs", "dump", enc, "--keys", other)
    assert code == 1 and "wrong NVS keys" in stderr and len(stderr.splitlines()) == 1
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"\x00" + keys.read_bytes()[1:])
    out = tmp_path / "x.bin"
    code, _, stderr = run("nvs", "encrypt", csv, "-o", out, "--size", "0x3000", "--keys", corrupt)
    assert code == 1 and f"{corrupt}: offset 0x40 crc32: nvs_keys CRC mismatch" in stderr
    assert not out.exists()
    code, _, stderr = run("nvs", "decrypt", enc, "-o", out, "--keys", other)
    assert code == 1 and not out.exists()


def test_usage_errors_exit_2(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV)
    out = tmp_path / "o.bin"
    code, _, stderr = run("nvs", "encrypt", csv, "-o", out, "--size", "0x3000")
    assert code == 2 and "--keys" in stderr
    code, _, stderr = run("nvs", "generate", csv, "-o", out, "--size", "0x2800")
    assert code == 2 and "multiple of 0x1000" in stderr
    keys = tmp_path / "keys.bin"
    run("nvs", "generate-keys", "-o", keys)
    before = keys.read_bytes()
    code, _, stderr = run("nvs", "generate-keys", "-o", keys)
    assert code == 2 and "refusing to overwrite" in stderr and keys.read_bytes() == before


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("0x1000", "at least 0x3000"),
        ("0x2000", "at least 0x3000"),
        ("0x3800", "multiple of 0x1000"),
        ("0x100000000", "larger than"),
        ("0x8001000", "larger than"),
    ],
)
def test_size_outside_what_nvs_partition_gen_and_flash_allow_is_refused_before_any_work(
    tmp_path, size, message
):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV)
    out = tmp_path / "nvs.bin"
    code, _, stderr = run("nvs", "generate", csv, "-o", out, "--size", size)
    assert code == 2 and message in stderr and len(stderr.splitlines()) == 1, stderr
    assert not out.exists()


def test_largest_flash_size_is_accepted(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV)
    code, _, stderr = run("nvs", "generate", csv, "-o", tmp_path / "n.bin", "--size", "0x8000000")
    assert code == 0, stderr
    assert (tmp_path / "n.bin").stat().st_size == 0x8000000


def test_decrypting_a_plain_partition_says_it_is_not_encrypted(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text(CSV)
    plain, keys, out = tmp_path / "plain.bin", tmp_path / "keys.bin", tmp_path / "out.bin"
    run("nvs", "generate", csv, "-o", plain, "--size", "0x3000")
    run("nvs", "generate-keys", "-o", keys)
    for command in (("decrypt", "-o", out), ("dump",)):
        code, _, stderr = run("nvs", *command, plain, "--keys", keys)
        assert code == 1 and not out.exists()
        assert stderr.splitlines() == [
            f"error: {plain}: offset 0x40: partition is not encrypted: its entries are plain "
            "(read it without keys)"
        ]


def test_generate_keys_takes_an_existing_hmac_key_or_makes_one_not_both(tmp_path):
    hmac_key = tmp_path / "hmac.bin"
    hmac_key.write_bytes(bytes(range(32)))
    code, _, stderr = run(
        "nvs", "generate-keys", "-o", tmp_path / "k.bin", "--hmac-key", hmac_key,
        "--hmac-key-output", tmp_path / "new.bin",
    )  # fmt: skip
    assert code == 2 and "not both" in stderr
    assert not (tmp_path / "k.bin").exists() and not (tmp_path / "new.bin").exists()
    code, _, _ = run("nvs", "generate-keys", "-o", tmp_path / "k.bin", "--hmac-key", hmac_key)
    assert code == 0
    assert NvsKeys.parse((tmp_path / "k.bin").read_bytes()) == NvsKeys.from_hmac_key(
        hmac_key.read_bytes()
    )


def test_a_short_hmac_key_is_bad_input_exit_1(tmp_path):
    short = tmp_path / "hmac.bin"
    short.write_bytes(bytes(16))
    code, _, stderr = run("nvs", "generate-keys", "-o", tmp_path / "k.bin", "--hmac-key", short)
    assert code == 1 and str(short) in stderr and len(stderr.splitlines()) == 1
