"""Power loss: cut after every single write of a first boot and of an OTA slot switch.

Where ESP-IDF is power-loss safe (otadata updates, the rollback state machine, eFuse
batches that land block by block) the device must always come back and run an app;
where the real chip is not (a cut after first-boot encryption in place started and
before ``SPI_BOOT_CRYPT_CNT`` is burned), the report must say exactly that, and the
next power-on must fail the way the real ROM fails.
"""

from __future__ import annotations

import pytest

from espsec.device import FaultPlan, Outcome, PowerCut, Stage, VirtualDevice, WriteKind
from espsec.device.boot_select import ota
from espsec.efuse import security_state

from .kit import LOCKED, OTA0, OTA_TABLE, PLAIN, ROLLBACK, TABLE_OFFSET, app, device, signed


@pytest.fixture(scope="module")
def blank(sb_bootloader, k0) -> VirtualDevice:
    """A blank chip flashed for production: the first boot has everything to do."""
    return device(LOCKED, boot=sb_bootloader, apps={OTA0: signed(app("1.0.0", 1), k0)})


@pytest.fixture(scope="module")
def first_boot_writes(blank) -> tuple[int, int]:
    report = blank.copy().boot()
    assert report.ok
    return report.flash_writes_made, report.efuse_writes_made


def _encryption_window(report) -> bool:
    """The cut fell after in-place encryption started and before SPI_BOOT_CRYPT_CNT."""
    return any(w.what.startswith("encrypt ") and w.done for w in report.flash_writes)


def _cut_before_fe_init_wr_dis(cut) -> bool:
    """The cut stopped the ``WR_DIS`` program of ``esp_flash_encrypt_init``'s batch."""
    return "eFuse BLOCK0 (WR_DIS) (esp_flash_encrypt_init" in cut.power_cut.interrupted


@pytest.mark.slow
@pytest.mark.parametrize("defer_wr_dis", [True, False], ids=["idf-v6.1+", "idf-v6.0"])
def test_first_boot_power_cut_after_every_write(blank, first_boot_writes, defer_wr_dis):
    """ESP-IDF v6.1+ (``esp_efuse_utility_burn_chip`` defers ``WR_DIS``): a cut between
    ``esp_flash_encrypt_init``'s BLOCK0 program and its ``WR_DIS`` program leaves the XTS
    key read-protected but not write-protected; ``check_and_generate_encryption_keys``
    then fails with ``ESP_ERR_INVALID_STATE`` on every boot, and with Secure Download
    Mode already burned nothing can fix the chip. v6.0 and older burn ``WR_DIS`` with the
    rest of BLOCK0: that cut falls before BLOCK0 and the next boot starts again."""
    total = sum(first_boot_writes) + (not defer_wr_dis) * -2  # v6.0: two programs fewer
    bricked = recovered = key_lock_bricks = 0
    for n in range(total):
        dev = blank.copy()
        dev.defer_wr_dis = defer_wr_dis
        cut = dev.boot(fault_plan=FaultPlan(n), predict=False)
        assert cut.outcome is Outcome.POWER_LOST, n
        assert cut.power_cut.after_writes == n
        in_window = (
            _encryption_window(cut) and not security_state(dev.efuses).flash_encryption_enabled
        )
        again = dev.boot()
        if in_window:
            bricked += 1
            assert again.outcome is Outcome.REFUSED, n
            # the ROM reads ciphertext (or an erased sector) as plaintext; a first byte of
            # 0xE9 by chance gets it past the magic check, never past the rest
            assert again.refusal.startswith("ROM: bootloader at 0x0 refused: "), n
            assert any("in-place encryption had started" in s for s in cut.power_cut.state), n
        elif _cut_before_fe_init_wr_dis(cut):
            key_lock_bricks += 1
            assert again.outcome is Outcome.REFUSED, n
            assert again.refusal_step == "check_and_generate_encryption_keys", n
            assert dev.efuses.get_int("ENABLE_SECURITY_DOWNLOAD") == 1  # no way back in
            assert dev.boot().outcome is Outcome.REFUSED  # and it stays so
        else:
            recovered += 1
            assert again.ok, (n, again.refusal)
            assert again.app.partition == "ota_0"
            state = security_state(dev.efuses)
            assert state.secure_boot_enabled and state.flash_encryption_mode == "release", n
            assert dev.boot().efuse_burns == ()  # settled: nothing left to burn
    assert bricked and recovered
    assert key_lock_bricks == (1 if defer_wr_dis else 0)
    # the window is exactly the in-place encryption: every flash write of it but the last
    fe_flash_ops = first_boot_writes[0] - 2  # minus the otadata write of set_actual_ota_seq
    assert bricked == fe_flash_ops


def test_first_boot_power_cut_before_each_efuse_block_program(blank, first_boot_writes):
    """Every eFuse program of the first boot, ``WR_DIS`` programs included: only the cut
    before ``esp_flash_encrypt_init``'s ``WR_DIS`` (ESP-IDF v6.1+) and the one before
    ``SPI_BOOT_CRYPT_CNT`` (after encryption in place) leave the chip unbootable."""
    efuse_writes = first_boot_writes[1]
    stops = []
    for n in range(efuse_writes):
        dev = blank.copy()
        cut = dev.boot(fault_plan=FaultPlan(n, WriteKind.EFUSE), predict=False)
        assert cut.outcome is Outcome.POWER_LOST
        stops.append(cut.power_cut.interrupted)
        again = dev.boot()
        if _cut_before_fe_init_wr_dis(cut):
            assert again.refusal_step == "check_and_generate_encryption_keys", n
        elif n < efuse_writes - 1:
            assert again.ok, (n, again.refusal)  # batches before the flash is touched
        else:  # the last one is SPI_BOOT_CRYPT_CNT, after encryption in place
            assert "SPI_BOOT_CRYPT_CNT" in cut.power_cut.interrupted
            assert again.outcome is Outcome.REFUSED
    # Secure Boot's batch and flash encryption's each end with their own WR_DIS program
    wr_dis = [s for s in stops if "BLOCK0 (WR_DIS)" in s]
    assert [s.split("(WR_DIS) (")[1].split(":")[0] for s in wr_dis] == [
        "esp_secure_boot_v2_permanently_enable",
        "esp_flash_encrypt_init",
    ]


def test_power_cut_between_digest_blocks_wastes_a_key_block_but_boots(blank):
    dev = blank.copy()
    # eFuse writes: SECURE_VERSION, then BLOCK_KEY1 (digest 1): cut before BLOCK_KEY0
    cut = dev.boot(fault_plan=FaultPlan(2, WriteKind.EFUSE), predict=True)
    info = cut.power_cut
    assert info.stage is Stage.SECURE_BOOT_ENABLE
    assert "eFuse BLOCK_KEY0" in info.interrupted
    assert any("1 of 4 blocks programmed (BLOCK_KEY1)" in s for s in info.state)
    assert info.next_boot.startswith("runs ota_0")
    again = dev.boot()
    assert again.ok
    slots = security_state(dev.efuses).digest_slots
    assert [s.block for s in slots[:2]] == ["BLOCK_KEY0", "BLOCK_KEY2"]


def test_power_cut_during_encryption_in_place_is_reported_precisely(blank):
    dev = blank.copy()
    flash_before_fe = 2  # the otadata write of set_actual_ota_seq: erase, program
    cut = dev.boot(fault_plan=FaultPlan(flash_before_fe + 1, WriteKind.FLASH))
    info = cut.power_cut
    assert info.stage is Stage.FLASH_ENCRYPTION_ENABLE
    assert info.interrupted == "encrypt bootloader: write sector 0x0"
    assert "encrypt bootloader in place: 1 of 10 flash operations made" in info.state
    assert "SPI_BOOT_CRYPT_CNT = 0b000 (flash encryption off)" in info.state
    assert info.next_boot == (
        "refused: ROM: bootloader at 0x0 refused: magic: invalid magic byte 0xff at 0x0 "
        "(nothing flashed here, or read without the right key?)"
    )
    assert dev.boot().outcome is Outcome.REFUSED


def test_cut_during_encryption_recovers_after_plaintext_reflash(blank, sb_bootloader, k0):
    dev = blank.copy()
    dev.boot(fault_plan=FaultPlan(30, WriteKind.FLASH), predict=False)
    assert dev.boot().outcome is Outcome.REFUSED
    # ESP-IDF: "Only solution is to reflash with all plaintext" (secure download mode
    # still accepts plain writes)
    dev.write_files(
        [
            (0, sb_bootloader, "bootloader"),
            (TABLE_OFFSET, OTA_TABLE.to_bytes(), "table"),
            (OTA0, signed(app("1.0.0", 1), k0), "app"),
            (0xD000, b"\xff" * 0x2000, "otadata"),
        ]
    )
    report = dev.boot()
    assert report.ok, report.refusal
    notes = report.stage(Stage.FLASH_ENCRYPTION_ENABLE).notes
    assert any("using pre-loaded flash encryption key" in n for n in notes)


# -- OTA slot switch --------------------------------------------------------------------


def _switch(dev: VirtualDevice, image: bytes) -> None:
    """Write the passive slot, select it, reboot into it, confirm it: every write counted."""
    runtime = dev.running
    assert runtime is not None
    assert runtime.install(image).ok
    report = runtime.reboot()
    if report.outcome is Outcome.POWER_LOST:
        raise PowerCut(WriteKind.FLASH, "reboot", report.power_cut.after_writes)
    assert dev.running is not None
    dev.running.mark_app_valid()


def _running(kind: str, sb_bootloader: bytes, k0) -> tuple[VirtualDevice, bytes]:
    """A device running ota_0 1.0.0, and the update to switch to."""
    if kind == "locked":
        dev = device(LOCKED, boot=sb_bootloader, apps={OTA0: signed(app("1.0.0", 1), k0)})
        update = signed(app("2.0.0", 2), k0)
    else:
        config = ROLLBACK if kind == "rollback" else PLAIN
        dev = device(config, boot=sb_bootloader, apps={OTA0: app("1.0.0", 1)})
        update = app("2.0.0", 2)
    assert dev.boot().ok
    return dev, update


@pytest.fixture(scope="module", params=["locked", "rollback", "plain"])
def running(request, sb_bootloader, k0) -> tuple[VirtualDevice, bytes]:
    return _running(request.param, sb_bootloader, k0)


@pytest.fixture(scope="module", params=["locked", "rollback"])
def with_rollback(request, sb_bootloader, k0) -> tuple[VirtualDevice, bytes]:
    return _running(request.param, sb_bootloader, k0)


@pytest.mark.slow
def test_ota_switch_power_cut_after_every_write_always_boots(running):
    base, update = running
    whole = base.copy()
    whole.boot()
    whole.arm(None)
    _switch(whole, update)
    total = whole.counter.total
    assert whole.boot().app.version == "2.0.0"
    seen = set()
    for n in range(total):
        dev = base.copy()
        assert dev.boot().ok
        dev.arm(FaultPlan(n))
        try:
            _switch(dev, update)
        except PowerCut:
            pass
        else:  # pragma: no cover - every n < total must cut
            pytest.fail(f"no power cut at {n}")
        report = dev.boot()
        assert report.ok, (n, report.refusal)
        found = (report.app.partition, report.app.version)
        assert found in {("ota_0", "1.0.0"), ("ota_1", "2.0.0")}, n
        seen.add(found)
        assert dev.boot().ok, n  # and it stays bootable
    assert seen == {("ota_0", "1.0.0"), ("ota_1", "2.0.0")}


def test_power_cut_while_aborting_an_unconfirmed_app_keeps_device_bootable(with_rollback):
    base, update = with_rollback
    pending = base.copy()
    pending.boot()
    pending.running.install(update)
    assert pending.running.reboot().app.ota_state == "PENDING_VERIFY"
    for n in range(3):  # the ABORTED rewrite: erase, program; then none
        dev = pending.copy()
        first = dev.boot(fault_plan=FaultPlan(n, WriteKind.FLASH), predict=False)
        report = dev.boot() if first.outcome is Outcome.POWER_LOST else first
        assert report.ok and report.app.partition == "ota_0", n
        assert dev.running.state_of(ota(1)) in (None, "ABORTED")
