"""Reading an image from flash and verifying it, as the ROM and the bootloader do.

ESP-IDF ``esp_image_format.c: image_load`` (``process_image_header``, ``process_segments``,
``process_checksum``, ``process_appended_hash_and_sig``, ``verify_secure_boot_signature``
/ ``verify_simple_hash``) and ``bootloader_common.c: bootloader_common_check_chip_validity``.
The checks themselves are the shared ones: :mod:`espsec.image` for the container and
:func:`espsec.secure_boot.verify` for signatures, the same code the host tools run.

Trust for Secure Boot signatures follows ``secure_boot_signatures_bootloader.c:
esp_secure_boot_verify_sbv2_signature_block``: the ``SECURE_BOOT_DIGESTn`` eFuse slots
(revoked slots do not count), or, while Secure Boot is not yet enabled and no digest is
burned, the image's own signature blocks (the first boot).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from espsec.chips import Chip
from espsec.device.flash import SpiFlash
from espsec.device.report import Check, ImageCheck
from espsec.efuse import Efuses, security_state
from espsec.errors import EspsecError, FormatError
from espsec.flash import FlashAccessError
from espsec.image import (
    HEADER_SIZE,
    IMAGE_MAGIC,
    MAX_SEGMENTS,
    SEGMENT_HEADER_SIZE,
    AppDesc,
    BootloaderDesc,
    EspImage,
    check_chip,
    check_flash_mapping,
    find_descriptor,
)
from espsec.image.app_image import DIGEST_SIZE, MAX_SEGMENT_LEN
from espsec.image.descriptors import APP_DESC_MAGIC, APP_DESC_SIZE, DESC_OFFSET
from espsec.image.header import revision_text
from espsec.secure_boot import (
    SECTOR_SIZE,
    BlockVerdict,
    SlotState,
    VerifyReport,
    read_sector,
    split_signed,
    verify,
)
from espsec.secure_boot.signature_block import SectorSlot

ImageKind = Literal["app", "bootloader"]


@dataclass(frozen=True)
class Trust:
    """The key digests a signature is checked against, and where they came from."""

    digests: tuple[bytes | None, ...]
    """By ``SECURE_BOOT_DIGESTn`` slot (``None``: no digest in that slot)."""
    revoked: frozenset[int]
    from_efuse: bool
    source: str

    @property
    def usable(self) -> bool:
        return any(d is not None and n not in self.revoked for n, d in enumerate(self.digests))


def efuse_trust(efuses: Efuses) -> Trust:
    """The eFuse digest slots (``esp_secure_boot_read_key_digests``), revoked ones marked."""
    state = security_state(efuses)
    digests: list[bytes | None] = []
    revoked: set[int] = set()
    for slot in state.digest_slots:
        digests.append(bytes.fromhex(slot.digest) if slot.digest and int(slot.digest, 16) else None)
        if slot.revoked:
            revoked.add(slot.index)
    shown = ", ".join(
        f"DIGEST{n}{' (revoked)' if n in revoked else ''}"
        for n, d in enumerate(digests)
        if d is not None
    )
    return Trust(tuple(digests), frozenset(revoked), True, f"eFuse SECURE_BOOT_{shown or 'none'}")


def own_trust() -> Trust:
    """First boot: trust the image's own valid signature blocks."""
    return Trust((), frozenset(), False, "the image's own signature blocks (first boot)")


@dataclass(frozen=True)
class SignaturePolicy:
    """Check a Secure Boot v2 signature: against ``trust``, with blocks of ``schemes``."""

    trust: Trust
    schemes: frozenset[str] | None
    """``rsa3072``, ``ecdsa256`` …: blocks of other schemes do not count (the
    bootloader's ``CONFIG_SECURE_SIGNED_APPS_*`` scheme; the ROM's supported ones)."""

    @classmethod
    def of(cls, trust: Trust, scheme: str | frozenset[str] | None) -> SignaturePolicy:
        """A policy for one scheme (a bootloader build) or a set (a ROM)."""
        if isinstance(scheme, str):
            return cls(trust, frozenset({scheme}))
        return cls(trust, scheme)


@dataclass(frozen=True)
class LoadedImage:
    """An image read from flash: the report, and what later steps need from it."""

    check: ImageCheck
    image: EspImage | None
    signed: bytes | None
    """Content padded to 4 KiB plus the signature sector, as stored (decrypted)."""
    desc: AppDesc | BootloaderDesc | None

    @property
    def ok(self) -> bool:
        return self.check.ok


def load_image(
    flash: SpiFlash,
    *,
    what: str,
    offset: int,
    limit: int,
    decrypt: bool,
    chip: Chip,
    chip_rev: int | None,
    kind: ImageKind,
    verify_hash: bool,
    signature: SignaturePolicy | None,
    check_checksum: bool = True,
) -> LoadedImage:
    """Read the image at ``offset`` (at most ``limit`` bytes) and run the checks.

    ``chip_rev`` ``None`` skips the chip validity check (the ROM does not make it).
    ``verify_hash``: compare the appended SHA-256 (``verify_simple_hash``; ESP-IDF skips
    it when the signature is checked instead). Never raises for bad flash contents: a
    failed check ends the list.
    """
    checks: list[Check] = []

    def done(
        image: EspImage | None = None,
        signed: bytes | None = None,
        desc: AppDesc | BootloaderDesc | None = None,
        report: VerifyReport | None = None,
        length: int | None = None,
    ) -> LoadedImage:
        app = desc if isinstance(desc, AppDesc) else None
        return LoadedImage(
            ImageCheck(
                what=what,
                offset=offset,
                decrypted=decrypt,
                checks=tuple(checks),
                signature=report,
                trusted=None if signature is None else signature.trust.source,
                version=app.version if app else None,
                project_name=app.project_name if app else None,
                secure_version=app.secure_version if app else None,
                length=length,
                efuse_trust=signature is not None and signature.trust.from_efuse,
            ),
            image,
            signed,
            desc,
        )

    def read(at: int, length: int) -> bytes:
        if at + length > limit:
            raise FlashAccessError(
                f"image runs past the end of its region (0x{offset + at + length:x} > "
                f"0x{offset + limit:x})"
            )
        return flash.read(offset + at, length, decrypt=decrypt)

    try:
        header = read(0, HEADER_SIZE)
        if header[0] != IMAGE_MAGIC:
            checks.append(
                Check(
                    "magic",
                    False,
                    f"invalid magic byte 0x{header[0]:02x} at 0x{offset:x} "
                    "(nothing flashed here, or read without the right key?)",
                )
            )
            return done()
        count = header[1]
        if count > MAX_SEGMENTS:
            checks.append(Check("segments", False, f"segment count {count} exceeds {MAX_SEGMENTS}"))
            return done()
        pos = HEADER_SIZE
        for index in range(count):
            _, data_len = struct.unpack("<II", read(pos, SEGMENT_HEADER_SIZE))
            if data_len % 4 or data_len >= MAX_SEGMENT_LEN:
                checks.append(
                    Check("segments", False, f"segment {index} has a bad length 0x{data_len:x}")
                )
                return done()
            pos += SEGMENT_HEADER_SIZE + data_len
        end = (pos | 0x0F) + 1 + (DIGEST_SIZE if header[23] == 1 else 0)
        # with a signature to check, read (and decrypt) the image and its signature
        # sector at once; EspImage.parse keeps what follows the image as its trailer
        with_sector = -(-end // SECTOR_SIZE) * SECTOR_SIZE + SECTOR_SIZE
        stored = read(0, with_sector if signature is not None and with_sector <= limit else end)
        image = EspImage.parse(stored)
    except FlashAccessError as exc:
        checks.append(Check("read", False, exc.message))
        return done()
    except FormatError as exc:
        checks.append(Check("header", False, exc.message))
        return done()
    checks.append(
        Check("header", True, f"{len(image.segments)} segments, {image.image_length} bytes")
    )
    try:
        desc = find_descriptor(image)
    except FormatError:
        desc = None

    if chip_rev is not None:
        try:
            check_chip(image, chip, chip_rev_full=chip_rev, kind=kind)
            checks.append(Check("chip", True, f"{chip.display_name} {revision_text(chip_rev)}"))
        except EspsecError as exc:
            checks.append(Check("chip", False, exc.message))
            return done(image, desc=desc)
    if kind == "app":
        try:
            check_flash_mapping(image, chip)
        except EspsecError as exc:
            checks.append(Check("segments", False, exc.message))
            return done(image, desc=desc)

    if check_checksum:
        if image.checksum_valid:
            checks.append(Check("checksum", True))
        else:
            checks.append(
                Check(
                    "checksum",
                    False,
                    f"calculated 0x{image.calculated_checksum():02x}, read 0x{image.checksum:02x}",
                )
            )
            return done(image, desc=desc)

    length = image.image_length
    if signature is not None:
        length = image.signature_sector_offset + SECTOR_SIZE
        if length > limit:
            checks.append(
                Check(
                    "length",
                    False,
                    f"image and signature sector ({length} bytes) do not fit the region "
                    f"({limit} bytes)",
                )
            )
            return done(image, desc=desc, length=length)
        try:
            # the image was read (and decrypted) above: read only what is missing
            if len(stored) >= length:
                signed = stored if len(stored) == length else stored[:length]
            else:
                signed = stored + read(len(stored), length - len(stored))
        except FlashAccessError as exc:
            checks.append(Check("read", False, exc.message))
            return done(image, desc=desc, length=length)
        report, problem = _check_signature(signed, signature)
        checks.append(Check("signature", problem is None, problem or _verified(report)))
        return done(image, signed, desc, report, length)
    if verify_hash and image.header.hash_appended:
        if image.digest_valid:
            checks.append(Check("hash", True, "appended SHA-256 matches"))
        else:
            checks.append(Check("hash", False, "appended SHA-256 does not match the image"))
    return done(image, desc=desc, length=length)


def _verified(report: VerifyReport) -> str:
    block = report.verified
    if block is None:  # pragma: no cover - only called on success
        return ""
    slot = "" if block.slot is None else f" (SECURE_BOOT_DIGEST{block.slot})"
    return f"block {block.index} verified with its {block.scheme} key{slot}"


def _check_signature(signed: bytes, policy: SignaturePolicy) -> tuple[VerifyReport, str | None]:
    """``esp_secure_boot_verify_sbv2_signature_block``: the report and the refusal, if any."""
    trust = policy.trust
    blocks = _sector_blocks(signed)  # no hashing: verify() below hashes once
    valid = [b for b in blocks if b.state is SlotState.VALID and b.block is not None]
    schemes = policy.schemes
    if schemes is not None and not any(
        b.block is not None and b.block.scheme in schemes for b in valid
    ):
        report = verify(signed, key_digests=list(trust.digests) or [None])
        if all(b.state is SlotState.EMPTY for b in blocks):
            return report, "no signature blocks (image is not signed)"
        return report, f"no signature block for the {'/'.join(sorted(schemes))} scheme"
    if trust.from_efuse or trust.digests:  # eFuse slots, or the running app's keys
        digests: Sequence[bytes | None] = trust.digests
        report = verify(signed, key_digests=list(digests), revoked=trust.revoked)
        if trust.from_efuse and not trust.usable:
            return report, "no usable SECURE_BOOT_DIGEST in eFuse (all missing or revoked)"
    else:
        own = [b.block.key_digest for b in valid if b.block is not None and b.block.key_digest]
        checked = verify(signed, key_digests=own or [None])
        # trusted by the image itself: no eFuse slot is involved
        report = VerifyReport(tuple(replace(b, slot=None) for b in checked.blocks))
    if schemes is not None:
        report = VerifyReport(
            tuple(
                b
                if b.scheme is None or b.scheme in schemes
                else replace(b, verdict=BlockVerdict.CORRUPT, detail=f"{b.scheme} not accepted")
                for b in report.blocks
            )
        )
    if report.ok:
        return report, None
    return report, report.reason


@dataclass(frozen=True)
class AggressiveRevocation:
    """What ``SECURE_BOOT_AGGRESSIVE_REVOKE`` does to one signature sector.

    ``revoke``: slots the ROM's documented behaviour revokes. ``undocumented``: slots
    whose block fails step 3 *after* an earlier block verified; the ROM is closed source
    and its documentation does not say whether it checks (and so revokes) blocks after
    the first that verifies. The twin assumes it stops at that block and revokes none of
    these (``docs/adr/0010-aggressive-revocation-after-a-verified-block.md``).
    """

    revoke: tuple[int, ...]
    undocumented: tuple[int, ...]


def revoked_by_failure(report: VerifyReport) -> AggressiveRevocation:
    """Slots aggressive revocation burns: a trusted key whose signature did not verify.

    ESP-IDF ``docs/en/security/secure-boot-v2.rst``, "Aggressive Approach": "The key is
    revoked as soon as verification with this key fails"; "a key is not revoked in case
    of an invalid signature block or invalid image digest, it is only revoked in case
    the signature verification fails, i.e. ... failure in step 3 of Verifying an Image".
    Blocks are taken in order; what happens after a block verifies is not documented
    (see :class:`AggressiveRevocation`).
    """
    revoke: set[int] = set()
    after: set[int] = set()
    verified = False
    for b in report.blocks:
        if b.verdict is BlockVerdict.VERIFIED:
            verified = True
        elif b.verdict is BlockVerdict.BAD_SIGNATURE and b.slot is not None:
            (after if verified else revoke).add(b.slot)
    return AggressiveRevocation(tuple(sorted(revoke)), tuple(sorted(after - revoke)))


def own_key_digests(signed: bytes) -> tuple[tuple[bytes, ...], str | None]:
    """``s_calculate_image_public_key_digests``: digests of the blocks that verify.

    Walks the blocks in order and stops at the first one that is absent, corrupt or for
    other content; a block whose signature does not verify with its own key is an error
    (returned as the second item).
    """
    slots = _sector_blocks(signed)
    own = [s.block.key_digest for s in slots if s.block is not None and s.block.key_digest]
    digests: list[bytes] = []
    report = verify(signed, key_digests=own or [None])  # hashes the image once
    for slot, result in zip(slots, report.blocks, strict=True):
        if (
            slot.state is not SlotState.VALID
            or slot.block is None
            or not slot.block.key_digest
            or result.verdict is BlockVerdict.IMAGE_DIGEST_MISMATCH
        ):
            break
        if result.verdict is BlockVerdict.BAD_SIGNATURE:
            return tuple(digests), f"signature block {slot.index} does not verify with its key"
        digests.append(slot.block.key_digest)
    return tuple(digests), None


def _sector_blocks(signed: bytes) -> list[SectorSlot]:
    """The signature sector's three positions, parsed (no image hashing)."""
    content, sector = split_signed(memoryview(signed))  # views: no copy of the image
    return read_sector(bytes(sector), offset=len(content))


def read_app_desc(flash: SpiFlash, offset: int, *, decrypt: bool) -> AppDesc | None:
    """``bootloader_common_get_partition_description``: the descriptor at 0x20, if valid."""
    try:
        raw = flash.read(offset + DESC_OFFSET, APP_DESC_SIZE, decrypt=decrypt)
    except FlashAccessError:
        return None
    if int.from_bytes(raw[:4], "little") != APP_DESC_MAGIC:
        return None
    try:
        return AppDesc.parse(raw)
    except FormatError:
        return None
