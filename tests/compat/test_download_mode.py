"""Real esptool and espefuse (PyPI esptool 5.6.0) drive ``device serve`` over a socket.

Each test serves a virtual device folder on a free loopback port and runs the tools
in-process through their public entry points (``esptool.main``, ``espefuse.main``: the
code their commands run) to keep the suite fast; a few run the real commands.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import espefuse
import esptool
import pytest
from esptool.util import FatalError, UnsupportedCommandError

from espsec import efuse, secure_boot
from espsec.chips import Chip, get_chip
from espsec.device import Stage, VirtualDevice
from espsec.device.download import DownloadServer
from espsec.image import build_app_image, build_bootloader_image
from espsec.image.partition_table import PartitionTable
from espsec.sdkconfig import BootloaderConfig

from .conftest import run_tool
from .test_efuse_compat import assert_same_fields

pytestmark = pytest.mark.compat

CHIPS = ("esp32s3", "esp32p4")
FLASH = 1 << 22
TABLE = PartitionTable.from_csv(
    """nvs,      data, nvs,     0x9000,  0x4000,
otadata,  data, ota,     0xd000,  0x2000,
phy_init, data, phy,     0xf000,  0x1000,
ota_0,    app,  ota_0,   0x10000, 0x30000,
ota_1,    app,  ota_1,   0x40000, 0x30000,
"""
)


def locked_config(chip: str) -> BootloaderConfig:
    """Secure Boot v2 and release-mode flash encryption (Secure Download Mode by default)."""
    return BootloaderConfig.from_options(
        idf_target=chip,
        secure_boot=True,
        secure_flash_enc_enabled=True,
        secure_flash_encryption_mode="release",
    )


class Served:
    """A device folder served on a free port, and the log of what the chip reported."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log: list[str] = []
        self.server = DownloadServer(VirtualDevice.open(folder), notify=self.log.append)
        self.url = self.server.url

    def esptool(self, *args: str, stub: bool = True) -> str:
        argv = ["--port", self.url, *([] if stub else ["--no-stub"]), *args]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            esptool.main(argv)
        return out.getvalue()

    def espefuse(self, *args: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            espefuse.main(["--port", self.url, "--do-not-confirm", *args])
        return out.getvalue()

    def device(self) -> VirtualDevice:
        return VirtualDevice.open(self.folder)


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[Served]:
    served = Served(folder)
    served.server.start()
    try:
        yield served
    finally:
        served.server.close()


@pytest.fixture(params=CHIPS)
def blank(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    VirtualDevice.create(tmp_path / "dev", request.param, FLASH)
    with serve(tmp_path / "dev") as served:
        yield served


def _rev(chip: Chip) -> int:
    """A build for the major revision of a new virtual chip (the newest: ESP32-P4 v3)."""
    return chip.latest_revision // 100 * 100


def image(size: int, seed: int = 0) -> bytes:
    """Half-compressible data, like firmware: random words between runs of zeros."""
    out = bytearray()
    block = hashlib.sha256(seed.to_bytes(4, "little")).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block + bytes(32)
    return bytes(out[:size])


# -- normal download mode ------------------------------------------------------------


@pytest.mark.parametrize("stub", [False, True], ids=["rom", "stub"])
def test_esptool_identifies_the_chip_and_reads_mac_and_flash_id(blank, stub):
    chip = get_chip(blank.device().efuses.chip)
    out = blank.esptool("chip-id", stub=stub)
    assert f"Detecting chip type... {chip.display_name}" in out
    assert "MAC:" in out
    out = blank.esptool("read-mac", stub=stub)
    assert "MAC:                00:00:00:00:00:00" in out
    out = blank.esptool("flash-id", stub=stub)
    assert "Detected flash size: 4MB" in out
    out = blank.esptool("get-security-info", stub=stub)
    assert f"Chip ID: {chip.image_chip_id}" in out
    assert "Secure Boot: Disabled" in out
    assert ("Stub flasher running" in out) is stub


@pytest.mark.slow
@pytest.mark.parametrize("stub", [False, True], ids=["rom", "stub"])
@pytest.mark.parametrize("compress", ["--compress", "--no-compress"])
def test_write_verify_read_and_erase_flash_round_trip(blank, tmp_path, stub, compress):
    data = image(0x9000 + 123, seed=1)
    (tmp_path / "in.bin").write_bytes(data)
    out = blank.esptool("write-flash", compress, "0x20000", str(tmp_path / "in.bin"), stub=stub)
    assert "Hash of data verified." in out
    flash = blank.device().flash
    assert flash.read_raw(0x20000, len(data)) == data  # flushed to the folder
    blank.esptool("verify-flash", "0x20000", str(tmp_path / "in.bin"), stub=stub)
    blank.esptool("read-flash", "0x20000", hex(len(data)), str(tmp_path / "out.bin"), stub=stub)
    assert (tmp_path / "out.bin").read_bytes() == data
    if stub:  # erase-region is a stub command (esptool refuses it with --no-stub)
        blank.esptool("erase-region", "0x21000", "0x1000")
        after = blank.device().flash.read_raw(0x20000, 0x3000)
        assert after == data[:0x1000] + b"\xff" * 0x1000 + data[0x2000:0x3000]


def test_write_flash_then_device_boot_boots_what_was_written(blank, tmp_path):
    chip = get_chip(blank.device().efuses.chip)
    files = {
        chip.bootloader_offset: build_bootloader_image(chip, min_chip_rev_full=_rev(chip)),
        0x8000: TABLE.to_bytes(),
        0x10000: build_app_image(chip, version="4.2.0", min_chip_rev_full=_rev(chip)),
    }
    args = []
    for offset, data in files.items():
        (tmp_path / f"{offset:x}.bin").write_bytes(data)
        args += [hex(offset), str(tmp_path / f"{offset:x}.bin")]
    blank.esptool("write-flash", *args)
    report = blank.device().boot()
    assert report.ok, report.refusal
    assert report.app is not None and report.app.version == "4.2.0"


@pytest.mark.slow
def test_espefuse_summary_over_the_socket_matches_espsec(blank, tmp_path):
    key = tmp_path / "hmac.key"
    key.write_bytes(bytes(range(40, 72)))
    blank.espefuse("burn-key", "BLOCK_KEY3", str(key), "HMAC_UP")
    blank.espefuse("burn-efuse", "SECURE_VERSION", "5")
    out = blank.espefuse("summary", "--format", "json")
    theirs = json.loads(out[out.index("{") :])
    assert_same_fields(theirs, efuse.summary(blank.device().efuses, all_fields=True))


@pytest.mark.slow
def test_espefuse_burns_keys_and_protection_that_the_next_boot_sees(blank, tmp_path, sb_keys):
    key = tmp_path / "fe.key"
    key.write_bytes(bytes(range(1, 33)))
    pub = tmp_path / "sb.pem"
    pub.write_bytes(secure_boot.public_key_pem(sb_keys["rsa3072"]))
    run_tool(  # the real command: several burns chained into one batch
        "espefuse", "--port", blank.url, "--do-not-confirm",
        "burn-key", "BLOCK_KEY1", key, "XTS_AES_128_KEY",
        "burn-key-digest", "BLOCK_KEY0", pub, "SECURE_BOOT_DIGEST0",
    )  # fmt: skip
    blank.espefuse("burn-efuse", "SECURE_VERSION", "3")
    blank.espefuse("write-protect-efuse", "SECURE_VERSION")
    blank.espefuse("burn-key", "BLOCK_KEY2", str(key), "HMAC_DOWN_ALL", "--no-read-protect")
    assert not blank.device().efuses.is_read_protected("BLOCK_KEY2")
    blank.espefuse("read-protect-efuse", "BLOCK_KEY2")
    dev = blank.device()
    state = efuse.security_state(dev.efuses)
    assert state.flash_encryption_key == "XTS_AES_128_KEY"
    assert state.digest_slots[0].digest == secure_boot.key_digest(sb_keys["rsa3072"]).hex()
    assert dev.efuses.hardware_block("BLOCK_KEY1") == bytes(range(1, 33))[::-1]
    assert dev.efuses.is_read_protected("BLOCK_KEY1")
    assert dev.efuses.get_int("SECURE_VERSION") == 3
    assert not dev.efuses.is_writeable("SECURE_VERSION")
    assert dev.efuses.is_read_protected("BLOCK_KEY2")
    # The burn is refused the way espsec efuse refuses it: nothing lands.
    with pytest.raises(FatalError):
        blank.espefuse("burn-efuse", "SECURE_VERSION", "7")
    assert blank.device().efuses.get_int("SECURE_VERSION") == 3


def test_controller_refuses_a_program_that_espsec_efuse_refuses(blank):
    """A raw PGM of a write-protected field (espefuse checks first; a raw host does not)."""
    blank.espefuse("write-protect-efuse", "SECURE_VERSION")
    esp = esptool.cmds.detect_chip(blank.url, connect_mode="no-reset")
    try:
        base = esp.EFUSE_BASE
        word4 = base + 0x2C + 4 * 4  # BLOCK0 word 4: SECURE_VERSION from bit 142
        esp.write_reg(base + 0x10, 1 << (142 - 128))  # EFUSE_PGM_DATA4_REG
        esp.write_reg(base + 0x1CC, 0x5A5A)  # EFUSE_CONF_REG: write op code
        esp.write_reg(base + 0x1D4, 0x2)  # EFUSE_CMD_REG: PGM_CMD, BLOCK0
        esp.write_reg(base + 0x1CC, 0x5AA5)
        esp.write_reg(base + 0x1D4, 0x1)  # READ_CMD
        assert esp.read_reg(word4) >> (142 - 128) & 1 == 0
    finally:
        esp._port.close()
    assert any("refused" in line and "SECURE_VERSION" in line for line in blank.log)
    assert blank.device().efuses.get_int("SECURE_VERSION") == 0


def test_any_ram_upload_other_than_the_stub_is_refused(blank, tmp_path):
    chip = get_chip(blank.device().efuses.chip)
    esp = esptool.cmds.detect_chip(blank.url, connect_mode="no-reset")
    try:
        start = chip.load_addresses.iram if chip.load_addresses else 0x40380000
        esp.mem_begin(64, 1, 64, start)
        esp.mem_block(b"\x00" * 64, 0)
        with pytest.raises(FatalError, match="Failed to leave RAM download mode"):
            run = struct.pack("<II", 0, start)  # MEM_END: execute at start
            esp.check_command("leave RAM download mode", 0x06, run)
    finally:
        esp._port.close()
    assert any("not esptool's flasher stub" in line for line in blank.log)


# -- locked devices -------------------------------------------------------------------


@pytest.fixture(scope="module", params=CHIPS)
def locked(request, tmp_path_factory, sb_keys) -> Path:
    """A device after its first boot with Secure Boot and release-mode flash encryption."""
    chip = get_chip(request.param)
    tmp = tmp_path_factory.mktemp(f"locked-{chip.name}")
    key = sb_keys["rsa3072"]
    dev = VirtualDevice.create(tmp / "dev", chip.name, FLASH, config=locked_config(chip.name))
    dev.write_files(
        [
            (
                chip.bootloader_offset,
                secure_boot.sign(build_bootloader_image(chip, min_chip_rev_full=_rev(chip)), [key]),
                "bl",
            ),
            (0x8000, TABLE.to_bytes(), "table"),
            (
                0x10000,
                secure_boot.sign(
                    build_app_image(chip, version="1.0.0", min_chip_rev_full=_rev(chip)), [key]
                ),
                "app",
            ),
        ]
    )
    report = dev.boot()
    assert report.ok, report.refusal
    assert report.stage(Stage.FLASH_ENCRYPTION_ENABLE) is not None
    assert efuse.security_state(dev.efuses).download_mode == "secure"
    return tmp / "dev"


@pytest.mark.slow
def test_secure_download_mode_refuses_reads_and_espefuse(locked, tmp_path):
    with serve(locked) as served:
        for args in (("read-flash", "0", "0x1000", str(tmp_path / "x.bin")), ("read-mac",)):
            for stub in (False, True):
                with pytest.raises(FatalError, match="not available in Secure Download Mode"):
                    served.esptool(*args, stub=stub)
        out = served.esptool("get-security-info", stub=False)
        assert "Secure Boot: Enabled" in out and "Flash Encryption: Enabled" in out
        assert "SECURE_DOWNLOAD_ENABLE" in out or "Secure Download" in out
        for args in (("summary",), ("burn-efuse", "SECURE_VERSION", "0xffff")):
            with pytest.raises(FatalError, match="Secure Download Mode"):
                served.espefuse(*args)
    assert efuse.security_state(VirtualDevice.open(locked).efuses).secure_version == 0


@pytest.mark.slow
def test_secure_download_mode_accepts_a_plaintext_write_that_the_boot_then_refuses(
    locked, tmp_path
):
    dev = VirtualDevice.open(locked)
    chip = dev.chip
    app = build_app_image(
        chip, version="6.6.6", min_chip_rev_full=_rev(chip)
    )  # plaintext, unsigned
    (tmp_path / "app.bin").write_bytes(app)
    with serve(locked) as served:
        out = served.esptool(
            "write-flash", "--force", "0x10000", str(tmp_path / "app.bin"), stub=False
        )
        assert "Cannot verify written data if encrypted or in secure download mode." in out
        esp = esptool.cmds.detect_chip(served.url, connect_mode="no-reset")
        try:
            assert esp.secure_download_mode
            start = esp.MEMORY_MAP[-1][0]
            for refused in (
                lambda: esp.mem_begin(64, 1, 64, start),  # no RAM loads, so no stub
                lambda: esp.read_reg(esp.EFUSE_BASE),  # no register reads
                lambda: esp.flash_md5sum(0, 0x1000),  # no MD5
                lambda: esp.flash_defl_begin(0x1000, 0x10, 0x10000),  # no compressed write
            ):
                with pytest.raises(UnsupportedCommandError, match="Secure Download Mode"):
                    refused()
            with pytest.raises(FatalError, match="enter flash download mode"):
                esp.flash_begin(0x1000, 0x10000, encrypted_write=True)  # manual encrypt off
        finally:
            esp._port.close()
    dev = VirtualDevice.open(locked)
    assert dev.flash.read_raw(0x10000, len(app)) == app
    report = dev.boot()  # the bootloader decrypts the plaintext into noise
    assert not report.ok
    assert report.app is None


@pytest.mark.slow
def test_disabled_download_mode_never_answers(tmp_path):
    dev = VirtualDevice.create(tmp_path / "dev", "esp32s3", FLASH)
    efuse.burn(dev.efuses, {"DIS_DOWNLOAD_MODE": 1})
    dev.save()
    with serve(tmp_path / "dev") as served:
        proc = run_tool(
            "esptool", "--port", served.url, "--connect-attempts", "1", "chip-id", check=False
        )
    assert proc.returncode != 0
    assert "Failed to connect" in proc.stdout + proc.stderr
    assert any("DIS_DOWNLOAD_MODE" in line for line in served.log)


def test_the_stub_table_matches_the_installed_esptool():
    import base64

    from espsec.device.download import KNOWN_STUBS

    root = Path(esptool.__file__).parent / "targets" / "stub_flasher"
    for stub in KNOWN_STUBS:
        spec = json.loads((root / stub.source).read_text())
        assert spec["entry"] == stub.entry and spec["text_start"] == stub.text_start
        assert spec["data_start"] == stub.data_start
        text = hashlib.sha256(base64.b64decode(spec["text"])).hexdigest()
        data = hashlib.sha256(base64.b64decode(spec["data"])).hexdigest()
        assert (text, data) == (stub.text_sha256, stub.data_sha256)


def test_device_serve_command_prints_the_url_first_and_serves(tmp_path):
    import subprocess
    import sys

    VirtualDevice.create(tmp_path / "dev", "esp32s3", FLASH)
    espsec = Path(sys.executable).parent / "espsec"
    cmd = [str(espsec), "device", "serve", str(tmp_path / "dev"), "--max-seconds", "20"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("socket://127.0.0.1:")
        served = Served.__new__(Served)
        served.url = url
        assert "MAC:" in served.esptool("read-mac", stub=False)
        proc.terminate()


@pytest.mark.slow
def test_espsec_efuse_on_a_device_goes_through_download_mode(tmp_path, locked):
    from click.testing import CliRunner

    from espsec.cli.main import main

    VirtualDevice.create(tmp_path / "dev", "esp32s3", FLASH)
    runner = CliRunner()
    ok = runner.invoke(main, ["efuse", "burn", "--device", str(tmp_path / "dev"), "SECURE_VERSION"])
    assert ok.exit_code == 0, ok.output
    assert VirtualDevice.open(tmp_path / "dev").efuses.get_int("SECURE_VERSION") == 1
    burn = ["efuse", "burn", "--device", str(locked), "SECURE_VERSION", "0xffff"]
    refused = runner.invoke(main, burn)
    assert refused.exit_code == 1
    assert "Secure Download Mode" in refused.output
    assert VirtualDevice.open(locked).efuses.get_int("SECURE_VERSION") != 0xFFFF
