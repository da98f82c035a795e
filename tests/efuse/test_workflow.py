"""Burns on an eFuse file: written only when applied and nothing refuses; a burn the chip
cannot take is an error that leaves the file as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from espsec import efuse
from espsec.efuse.workflow import BurnOutcome, burn_file, burn_plan_file
from espsec.errors import UsageError

KEY = bytes(range(32))


def no_pem(pem: bytes) -> bytes:
    raise AssertionError("no PEM in this plan")


@pytest.fixture()
def efile(tmp_path: Path) -> Path:
    path = tmp_path / "efuse.bin"
    efuse.create(path, "esp32s3")
    return path


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes() + efuse.sidecar_path(path).read_bytes()).hexdigest()


def test_applied_burn_is_saved_and_reported(efile: Path):
    result = burn_file(efuse.load(efile), efile, [efuse.BurnField("SECURE_VERSION", 3)])
    assert result.outcome is BurnOutcome.BURNED and result.applied
    assert result.to_dict()["applied"] is True and result.path == efile
    assert efuse.load(efile).get("SECURE_VERSION") == 3


def test_dry_run_and_already_burned_leave_the_file_alone(efile: Path):
    before = fingerprint(efile)
    ops = [efuse.BurnField("SECURE_VERSION", 1)]
    result = burn_file(efuse.load(efile), efile, ops, apply=False)
    assert result.outcome is BurnOutcome.PLANNED and not result.to_dict()["applied"]
    assert fingerprint(efile) == before
    burn_file(efuse.load(efile), efile, ops)
    again = fingerprint(efile)
    assert burn_file(efuse.load(efile), efile, ops).outcome is BurnOutcome.NOTHING
    assert fingerprint(efile) == again


def test_policy_refusal_burns_nothing_unless_allowed(efile: Path):
    before = fingerprint(efile)
    ops = [efuse.BurnField("SECURE_BOOT_EN", 1)]
    result = burn_file(efuse.load(efile), efile, ops)
    assert result.outcome is BurnOutcome.REFUSED and result.report.refused
    assert fingerprint(efile) == before
    allowed = burn_file(efuse.load(efile), efile, ops, allow=["sb_no_digest"])
    assert allowed.outcome is BurnOutcome.BURNED
    assert efuse.load(efile).get("SECURE_BOOT_EN") == 1


def test_burn_the_chip_refuses_raises_and_leaves_the_file(efile: Path):
    before = fingerprint(efile)
    with pytest.raises(UsageError, match="does not fit"):
        burn_file(efuse.load(efile), efile, [efuse.BurnField("SECURE_VERSION", 0x10000)])
    assert fingerprint(efile) == before


def test_plan_file_burns_with_files_relative_to_the_plan(efile: Path, tmp_path: Path):
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "fe.key").write_bytes(KEY)
    plan = plans / "plan.txt"
    plan.write_text("burn-key BLOCK_KEY0 fe.key XTS_AES_128_KEY\nburn-efuse SPI_BOOT_CRYPT_CNT 1\n")
    dry = burn_plan_file(efuse.load(efile), efile, plan, no_pem)
    assert dry.outcome is BurnOutcome.PLANNED
    done = burn_plan_file(efuse.load(efile), efile, plan, no_pem, apply=True)
    assert done.outcome is BurnOutcome.BURNED
    chip = efuse.load(efile)
    assert chip.hardware_block("BLOCK_KEY0") == KEY[::-1]
    assert efuse.security_state(chip).flash_encryption_enabled


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"burn-efuse NOPE 1\n", "unknown eFuse field 'NOPE'"),
        (b"burn-efuse SECURE_VERSION 0x10000\n", "does not fit"),
        (b"\xff\xfe\n", "a plan file is text"),
    ],
)
def test_plan_errors_name_the_plan_file(efile: Path, tmp_path: Path, content, message):
    plan = tmp_path / "plan.txt"
    plan.write_bytes(content)
    before = fingerprint(efile)
    with pytest.raises(UsageError, match=message) as info:
        burn_plan_file(efuse.load(efile), efile, plan, no_pem, apply=True)
    assert info.value.source == str(plan)
    assert fingerprint(efile) == before
