"""The boot report: what each stage read, verified, decided and wrote, as frozen data.

A :class:`BootReport` is a tree of frozen dataclasses with ``to_json()``; the CLI renders
it. It never holds key material: eFuse burns are described the way ``espefuse`` prints
them (``burn-key BLOCK_KEY0 <32-byte key> XTS_AES_128_KEY``), Secure Boot key digests
(public) appear in hex.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from espsec.secure_boot import VerifyReport


class Stage(StrEnum):
    """The stages of one pass from reset to a running app."""

    ROM = "rom"
    """First stage: the mask ROM loads (and with Secure Boot verifies) the bootloader."""
    BOOTLOADER = "bootloader"
    """Second stage: partition table, otadata, app selection and image checks."""
    SECURE_BOOT_ENABLE = "secure-boot-enable"
    """First boot: ``esp_secure_boot_v2_permanently_enable``."""
    FLASH_ENCRYPTION_ENABLE = "flash-encryption-enable"
    """First boot: key, in-place encryption, ``SPI_BOOT_CRYPT_CNT``."""
    APP_STARTUP = "app-startup"
    """The app's eFuse checks at startup (``esp_efuse_startup.c: init_efuse_secure``)."""
    APP = "app"
    """The running app's own calls (``esp_ota_*``)."""


class Outcome(StrEnum):
    """How a boot ended."""

    RUNNING = "running"
    """An app is running."""
    REFUSED = "refused"
    """The ROM or the bootloader refused to go on (the chip resets and tries again)."""
    POWER_LOST = "power-lost"
    """The fault plan cut power."""


@dataclass(frozen=True)
class Check:
    """One check made on an image: its name, whether it passed, and what was seen."""

    name: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class ImageCheck:
    """An app or bootloader image read from flash and verified."""

    what: str
    """``bootloader``, or the app partition's name (``factory``, ``ota_0``)."""
    offset: int
    decrypted: bool
    """Read through the flash-encryption engine."""
    checks: tuple[Check, ...]
    signature: VerifyReport | None = None
    """Secure Boot v2 result per signature block (``None``: not checked)."""
    trusted: str | None = None
    """Where the trusted key digests came from."""
    version: str | None = None
    project_name: str | None = None
    secure_version: int | None = None
    length: int | None = None
    """Bytes of flash the image occupies (with padding and signature sector)."""
    efuse_trust: bool = False
    """The signature was checked against eFuse key digests (not the image's own keys)."""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def reason(self) -> str:
        """The first failed check (empty when the image is good)."""
        bad = next((c for c in self.checks if not c.ok), None)
        if bad is None:
            return ""
        return f"{bad.name}: {bad.detail}" if bad.detail else bad.name

    @property
    def efuse_slot(self) -> int | None:
        """The ``SECURE_BOOT_DIGESTn`` slot whose key verified the image, if any."""
        if not self.efuse_trust or self.signature is None or self.signature.verified is None:
            return None
        return self.signature.verified.slot

    def to_json(self) -> dict[str, object]:
        return {
            "image": self.what,
            "offset": f"0x{self.offset:x}",
            "decrypted": self.decrypted,
            "ok": self.ok,
            "reason": self.reason or None,
            "version": self.version,
            "project_name": self.project_name,
            "secure_version": self.secure_version,
            "length": self.length,
            "checks": [c.to_json() for c in self.checks],
            "trusted_digests": self.trusted,
            "signature": None if self.signature is None else self.signature.to_json(),
            "efuse_slot": self.efuse_slot,
        }


@dataclass(frozen=True)
class EfuseBurn:
    """One eFuse batch (``esp_efuse_batch_write_commit``), block program by program."""

    reason: str
    operations: tuple[str, ...]
    """What was burned, as espefuse would print it (no key material)."""
    blocks: tuple[str, ...]
    """The blocks the batch programs, in order (highest first, BLOCK0 last)."""
    programmed: int
    """How many of :attr:`blocks` were programmed (fewer when power was cut)."""

    @property
    def completed(self) -> bool:
        return self.programmed == len(self.blocks)

    def to_json(self) -> dict[str, object]:
        return {
            "reason": self.reason,
            "operations": list(self.operations),
            "blocks": list(self.blocks),
            "programmed": self.programmed,
            "completed": self.completed,
        }


@dataclass(frozen=True)
class FlashWrite:
    """One logical flash update (an otadata write, an in-place encryption of a region)."""

    what: str
    offset: int
    length: int
    encrypted: bool
    operations: int
    """Erase and program operations it needs."""
    done: int
    """Operations made (fewer when power was cut)."""

    @property
    def completed(self) -> bool:
        return self.done == self.operations

    def to_json(self) -> dict[str, object]:
        return {
            "what": self.what,
            "offset": f"0x{self.offset:x}",
            "length": self.length,
            "encrypted": self.encrypted,
            "operations": self.operations,
            "done": self.done,
            "completed": self.completed,
        }


@dataclass(frozen=True)
class StageReport:
    """What one stage did, in order."""

    stage: Stage
    ok: bool
    notes: tuple[str, ...] = ()
    images: tuple[ImageCheck, ...] = ()
    efuse_burns: tuple[EfuseBurn, ...] = ()
    flash_writes: tuple[FlashWrite, ...] = ()
    error: str | None = None
    timeline: tuple[tuple[str, int], ...] = ()
    """The order things happened in: (``note``/``image``/``burn``/``write``, index)."""

    def events(self) -> tuple[str | ImageCheck | EfuseBurn | FlashWrite, ...]:
        """Notes, image checks, eFuse burns and flash writes in the order they happened."""
        lists: dict[str, tuple[str | ImageCheck | EfuseBurn | FlashWrite, ...]] = {
            "note": self.notes,
            "image": self.images,
            "burn": self.efuse_burns,
            "write": self.flash_writes,
        }
        if not self.timeline:
            return tuple(x for kind in ("note", "image", "write", "burn") for x in lists[kind])
        return tuple(lists[kind][i] for kind, i in self.timeline)

    def to_json(self) -> dict[str, object]:
        return {
            "stage": self.stage.value,
            "ok": self.ok,
            "error": self.error,
            "notes": list(self.notes),
            "images": [i.to_json() for i in self.images],
            "efuse_burns": [b.to_json() for b in self.efuse_burns],
            "flash_writes": [w.to_json() for w in self.flash_writes],
        }


@dataclass(frozen=True)
class RunningApp:
    """The app the bootloader started."""

    partition: str
    offset: int
    version: str | None
    project_name: str | None
    secure_version: int | None
    idf_ver: str | None
    ota_state: str | None
    """The otadata state of its slot (``PENDING_VERIFY``, ``VALID`` …), if it has one."""
    efuse_slot: int | None
    """``SECURE_BOOT_DIGESTn`` slot whose key verified it (Secure Boot only)."""

    def to_json(self) -> dict[str, object]:
        return {
            "partition": self.partition,
            "offset": f"0x{self.offset:x}",
            "version": self.version,
            "project_name": self.project_name,
            "secure_version": self.secure_version,
            "idf_ver": self.idf_ver,
            "ota_state": self.ota_state,
            "efuse_slot": self.efuse_slot,
        }


@dataclass(frozen=True)
class PowerCutInfo:
    """Where the fault plan cut power, and what the chip is left with."""

    after_writes: int
    """Writes (counted by the plan) that completed before the cut."""
    interrupted: str
    """The write that did not happen."""
    stage: Stage | None
    during: str
    """What the device was doing (the stage's last step)."""
    state: tuple[str, ...]
    """The state left on flash and in eFuses, as it matters for the next boot."""
    next_boot: str
    """What the ROM does at the next power-on, read from flash and eFuses as left."""

    def to_json(self) -> dict[str, object]:
        return {
            "after_writes": self.after_writes,
            "interrupted": self.interrupted,
            "stage": None if self.stage is None else self.stage.value,
            "during": self.during,
            "state": list(self.state),
            "next_boot": self.next_boot,
        }


@dataclass(frozen=True)
class BootPass:
    """One run from reset: the stages it went through and how it ended."""

    stages: tuple[StageReport, ...]
    ended: str
    """``app running``, ``reset: …``, ``refused: …`` or ``power cut``."""

    def to_json(self) -> dict[str, object]:
        return {"ended": self.ended, "stages": [s.to_json() for s in self.stages]}


@dataclass(frozen=True)
class BootReport:
    """A boot, from power-on to a running app, a refusal or a power cut.

    The first boot of a chip whose bootloader enables flash encryption resets once
    (``bootloader_utility.c: load_image``), so a report can hold several passes.
    """

    chip: str
    passes: tuple[BootPass, ...]
    outcome: Outcome
    app: RunningApp | None = None
    refusal: str | None = None
    """The exact refusal, for :attr:`Outcome.REFUSED`."""
    power_cut: PowerCutInfo | None = None
    refusal_step: str | None = None
    """The ESP-IDF function (or ROM step) behind :attr:`refusal`."""
    flash_writes_made: int = 0
    efuse_writes_made: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.RUNNING

    @property
    def stages(self) -> tuple[StageReport, ...]:
        """Every stage of every pass, in order."""
        return tuple(s for p in self.passes for s in p.stages)

    @property
    def efuse_burns(self) -> tuple[EfuseBurn, ...]:
        """Every eFuse batch the boot burned, in order."""
        return tuple(b for s in self.stages for b in s.efuse_burns)

    @property
    def flash_writes(self) -> tuple[FlashWrite, ...]:
        return tuple(w for s in self.stages for w in s.flash_writes)

    @property
    def burned(self) -> tuple[str, ...]:
        """Every eFuse operation burned (completed batches only)."""
        return tuple(op for b in self.efuse_burns if b.completed for op in b.operations)

    def stage(self, stage: Stage) -> StageReport | None:
        """The last report of ``stage``, if the boot reached it."""
        found = [s for s in self.stages if s.stage is stage]
        return found[-1] if found else None

    def to_json(self) -> dict[str, object]:
        return {
            "chip": self.chip,
            "outcome": self.outcome.value,
            "app": None if self.app is None else self.app.to_json(),
            "refusal": self.refusal,
            "refusal_step": self.refusal_step,
            "power_cut": None if self.power_cut is None else self.power_cut.to_json(),
            "flash_writes_made": self.flash_writes_made,
            "efuse_writes_made": self.efuse_writes_made,
            "notes": list(self.notes),
            "passes": [p.to_json() for p in self.passes],
        }
