"""``espsec flash-encryption``: one clear line per user error, no output left behind."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from espsec.cli.main import main
from espsec.flash_encryption import FlashCipher, FlashEncryptionKey
from espsec.flash_encryption.whole_flash import read_partition
from espsec.image.partition_table import PartitionTable


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["flash-encryption", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("bits", [256, 512])
def test_generate_key(bits: int, tmp_path: Path) -> None:
    key = tmp_path / "fe.bin"
    code, out, _ = run("generate-key", "--bits", bits, "--json", "-o", key)
    assert code == 0
    assert json.loads(out)["bits"] == bits
    assert len(key.read_bytes()) == bits // 8
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    code, _, err = run("generate-key", "--bits", bits, "-o", key)
    assert code == 2 and "refusing to overwrite" in err and err.count("\n") == 1


def test_encrypt_decrypt_round_trip(tmp_path: Path) -> None:
    key = tmp_path / "fe.bin"
    key.write_bytes(os.urandom(64))
    data = os.urandom(0x2340)
    (tmp_path / "in.bin").write_bytes(data)
    code, out, _ = run(
        "encrypt", "--key", key, "--address", "0x10000", "--json",
        "-o", tmp_path / "enc.bin", tmp_path / "in.bin",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["mode"] == "AES-256-XTS" and report["size"] == len(data)
    encrypted = (tmp_path / "enc.bin").read_bytes()
    assert encrypted == FlashCipher(key.read_bytes()).encrypt(data, 0x10000)
    code, _, _ = run(
        "decrypt", "-k", key, "--address", "65536", "-o", tmp_path / "dec.bin", tmp_path / "enc.bin"
    )
    assert code == 0 and (tmp_path / "dec.bin").read_bytes() == data


@pytest.mark.parametrize(
    ("key_size", "address", "length", "message"),
    [
        (48, "0x1000", 64, "found 48 bytes"),
        (32, "0x1004", 64, "0x1004 is not a multiple of 16"),
        (32, "0x1000", 65, "65 is not a multiple of 16"),
        (32, "0x1000", 0, "empty"),
    ],
)
def test_encrypt_errors(
    key_size: int, address: str, length: int, message: str, tmp_path: Path
) -> None:
    key = tmp_path / "k.bin"
    key.write_bytes(os.urandom(key_size))
    (tmp_path / "in.bin").write_bytes(os.urandom(length))
    code, _, err = run(
        "encrypt",
        "--key",
        key,
        "--address",
        address,
        "-o",
        tmp_path / "out.bin",
        tmp_path / "in.bin",
    )
    assert code != 0
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bin", "k.bin"]


def test_encrypt_rejects_key_size_the_chip_lacks(tmp_path: Path) -> None:
    key = tmp_path / "k.bin"
    key.write_bytes(os.urandom(64))
    (tmp_path / "in.bin").write_bytes(bytes(32))
    code, _, err = run(
        "encrypt", "--chip", "esp32c3", "--key", key, "--address", "0",
        "-o", tmp_path / "out.bin", tmp_path / "in.bin",
    )  # fmt: skip
    assert code == 1 and "ESP32-C3" in err and "512-bit" in err and err.count("\n") == 1
    assert not (tmp_path / "out.bin").exists()


def test_encrypt_flash_from_build_dir(
    tmp_path: Path, make_build_dir: Callable[..., Path], fe_csv: str
) -> None:
    build = make_build_dir(tmp_path)
    key = tmp_path / "fe.bin"
    key.write_bytes(os.urandom(32))
    out = tmp_path / "flash.bin"
    code, stdout, _ = run("encrypt-flash", "--key", key, "--build-dir", build, "--json", "-o", out)
    assert code == 0, stdout
    report = json.loads(stdout)
    assert report["chip"] == "esp32s3" and report["flash_size"] == 4 << 20
    regions = {w["region"]: w["encrypted"] for w in report["writes"]}
    assert regions == {
        "bootloader": True,
        "partition table": True,
        "otadata": True,
        "factory": True,
    }
    image = out.read_bytes()
    table = PartitionTable.from_csv(fe_csv)
    factory = table.find("factory")
    assert factory is not None
    app = (build / "app.bin").read_bytes()
    fe_key = FlashEncryptionKey(key.read_bytes())
    assert read_partition(image, fe_key, factory)[: len(app)] == app


def test_encrypt_flash_explicit_writes_and_csv(tmp_path: Path, fe_csv: str) -> None:
    key = tmp_path / "fe.bin"
    key.write_bytes(os.urandom(64))
    (tmp_path / "pt.csv").write_text(fe_csv)
    (tmp_path / "app.bin").write_bytes(os.urandom(0x1000))
    (tmp_path / "nvs.bin").write_bytes(os.urandom(0x3000))
    out = tmp_path / "flash.bin"
    code, stdout, _ = run(
        "encrypt-flash", "--key", key, "--partition-table", tmp_path / "pt.csv",
        "--write", "0x20000", tmp_path / "app.bin", "--write", "0x9000", tmp_path / "nvs.bin",
        "--flash-size", "4MB", "-o", out,
    )  # fmt: skip
    assert code == 0
    assert "encrypted" in stdout and "plain" in stdout
    image = out.read_bytes()
    assert len(image) == 4 << 20
    assert image[0x9000:0xC000] == (tmp_path / "nvs.bin").read_bytes()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--write", "0x20000", "big.bin"], "does not fit in factory"),
        (["--write", "0x300000", "app.bin"], "not inside any partition"),
        ([], "flash size is not known"),
    ],
)
def test_encrypt_flash_errors_leave_no_output(
    extra: list[str], message: str, tmp_path: Path, fe_csv: str
) -> None:
    key = tmp_path / "fe.bin"
    key.write_bytes(os.urandom(32))
    (tmp_path / "pt.csv").write_text(fe_csv)
    (tmp_path / "app.bin").write_bytes(os.urandom(0x1000))
    (tmp_path / "big.bin").write_bytes(os.urandom(0x100010))
    args = [tmp_path / a if a.endswith(".bin") else a for a in extra]
    size = [] if not extra else ["--flash-size", "4MB"]
    out = tmp_path / "flash.bin"
    code, _, err = run(
        "encrypt-flash", "--key", key, "--partition-table", tmp_path / "pt.csv", *args, *size,
        "-o", out,
    )  # fmt: skip
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".flash.bin")]


@pytest.mark.parametrize("size", ["256M", "0x10000000", "0x100000000"])
def test_encrypt_flash_refuses_a_flash_larger_than_any_chip_takes(
    size: str, tmp_path: Path, fe_csv: str
) -> None:
    key = tmp_path / "fe.bin"
    key.write_bytes(os.urandom(32))
    (tmp_path / "pt.csv").write_text(fe_csv)
    out = tmp_path / "flash.bin"
    code, _, err = run(
        "encrypt-flash", "--key", key, "--partition-table", tmp_path / "pt.csv",
        "--flash-size", size, "-o", out,
    )  # fmt: skip
    assert code == 2 and "larger than" in err and "128MB" in err and err.count("\n") == 1, err
    assert not out.exists()


def test_encrypt_writes_to_standard_output(tmp_path: Path) -> None:
    key = tmp_path / "fe.bin"
    key.write_bytes(os.urandom(32))
    data = os.urandom(0x200)
    (tmp_path / "in.bin").write_bytes(data)
    result = CliRunner().invoke(
        main,
        ["flash-encryption", "encrypt", "-k", str(key), "--address", "0x1000", "-o", "-",
         str(tmp_path / "in.bin")],
    )  # fmt: skip
    assert result.exit_code == 0
    assert result.stdout_bytes == FlashCipher(key.read_bytes()).encrypt(data, 0x1000)
    assert "encrypted 512 bytes" in result.stderr
