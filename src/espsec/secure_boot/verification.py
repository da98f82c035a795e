"""Verification of signed images, against keys or against eFuse key digests, and ``info``."""

from __future__ import annotations

import hmac
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum

from espsec.errors import KeyFormatError, UsageError
from espsec.secure_boot.crypto import check_signature, image_digest, key_digest, public_key_of
from espsec.secure_boot.keys import PrivateKey, PublicKey, hash_name
from espsec.secure_boot.signature_block import (
    BLOCK_SIZE,
    SectorSlot,
    SlotState,
    read_sector,
)
from espsec.secure_boot.signing import split_signed


class BlockVerdict(StrEnum):
    """The outcome for one block position."""

    VERIFIED = "verified"
    EMPTY = "empty"
    CORRUPT = "corrupt"
    IMAGE_DIGEST_MISMATCH = "image digest mismatch"
    KEY_NOT_TRUSTED = "key not trusted"
    KEY_REVOKED = "key revoked"
    BAD_SIGNATURE = "bad signature"


@dataclass(frozen=True)
class BlockResult:
    """What happened to one signature block during verification."""

    index: int
    verdict: BlockVerdict
    scheme: str | None = None
    key_digest: bytes | None = None
    slot: int | None = None
    """The eFuse ``SECURE_BOOT_DIGESTn`` slot whose digest matched, if any."""
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "block": self.index,
            "verdict": self.verdict.value,
            "scheme": self.scheme,
            "key_digest": self.key_digest.hex() if self.key_digest else None,
            "efuse_slot": self.slot,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class VerifyReport:
    """Per-block results; the image is accepted if any block verified."""

    blocks: tuple[BlockResult, ...]

    @property
    def ok(self) -> bool:
        return any(b.verdict is BlockVerdict.VERIFIED for b in self.blocks)

    @property
    def verified(self) -> BlockResult | None:
        """The first block that verified (the one the ROM would accept)."""
        return next((b for b in self.blocks if b.verdict is BlockVerdict.VERIFIED), None)

    @property
    def reason(self) -> str:
        """Why the image was refused (empty when it was accepted)."""
        if self.ok:
            return ""
        problems = [
            f"block {b.index}: {b.verdict.value}" + (f" ({b.detail})" if b.detail else "")
            for b in self.blocks
            if b.verdict is not BlockVerdict.EMPTY
        ]
        return "; ".join(problems) or "no signature blocks"

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "verified_block": self.verified.index if self.verified else None,
            "blocks": [b.to_json() for b in self.blocks],
        }


class _Digests:
    """The content's digest per scheme, each computed once (the content is megabytes;
    every block of a scheme records the same digest)."""

    def __init__(self, content: memoryview) -> None:
        self.content = content
        self._by_hash: dict[str, bytes] = {}

    def of(self, scheme: str) -> bytes:
        name = hash_name(scheme)
        if name not in self._by_hash:
            self._by_hash[name] = image_digest(self.content, scheme)
        return self._by_hash[name]


def _check_slot(
    slot: SectorSlot,
    digests: _Digests,
    trusted: Sequence[tuple[int | None, bytes]],
    revoked: Collection[int],
) -> BlockResult:
    if slot.state is SlotState.EMPTY:
        return BlockResult(slot.index, BlockVerdict.EMPTY)
    block = slot.block
    if slot.state is not SlotState.VALID or block is None:
        return BlockResult(slot.index, BlockVerdict.CORRUPT, detail=slot.error or slot.state.value)
    scheme, kd = block.scheme, block.key_digest
    actual = digests.of(scheme)
    if not hmac.compare_digest(actual, block.image_digest):
        return BlockResult(
            slot.index,
            BlockVerdict.IMAGE_DIGEST_MISMATCH,
            scheme,
            kd,
            detail="image changed after signing",
        )
    match = next((n for n, d in trusted if hmac.compare_digest(d, kd)), -1)
    if match == -1:
        return BlockResult(slot.index, BlockVerdict.KEY_NOT_TRUSTED, scheme, kd)
    if match is not None and match in revoked:
        return BlockResult(slot.index, BlockVerdict.KEY_REVOKED, scheme, kd, match)
    try:
        public = public_key_of(block.public)
    except KeyFormatError as exc:
        return BlockResult(slot.index, BlockVerdict.CORRUPT, scheme, kd, match, exc.message)
    if not check_signature(public, block.image_digest, block.signature):
        return BlockResult(slot.index, BlockVerdict.BAD_SIGNATURE, scheme, kd, match)
    return BlockResult(slot.index, BlockVerdict.VERIFIED, scheme, kd, match)


def verify(
    signed: bytes,
    *,
    keys: Sequence[PrivateKey | PublicKey] = (),
    key_digests: Sequence[bytes | None] | None = None,
    revoked: Collection[int] = (),
) -> VerifyReport:
    """Verify every signature block of a signed image.

    Trust comes from ``keys`` (public or private), or, as the ROM does, from the eFuse
    ``key_digests`` (slot n at index n; ``None`` for an empty slot) with ``revoked``
    slot numbers (``SECURE_BOOT_KEY_REVOKEn``). A block verifies when the image digest
    it records matches the content, its key is trusted and not revoked, and its
    signature is valid.
    """
    if not keys and key_digests is None:
        raise UsageError("verify needs a key or a set of eFuse key digests to trust")
    content, sector = split_signed(memoryview(signed))  # hashed in place, not copied
    trusted: list[tuple[int | None, bytes]] = [(None, key_digest(k)) for k in keys]
    if key_digests is not None:
        trusted += [(n, d) for n, d in enumerate(key_digests) if d is not None]
    slots = read_sector(bytes(sector), offset=len(content))
    digests = _Digests(content)
    return VerifyReport(tuple(_check_slot(s, digests, trusted, revoked) for s in slots))


@dataclass(frozen=True)
class BlockInfo:
    """``info`` for one block position (what ``espsecure signature-info-v2`` shows, and more)."""

    index: int
    offset: int
    state: SlotState
    scheme: str | None = None
    key_digest: bytes | None = None
    image_digest_matches: bool | None = None
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "block": self.index,
            "offset": self.offset,
            "state": self.state.value,
            "scheme": self.scheme,
            "key_digest": self.key_digest.hex() if self.key_digest else None,
            "image_digest_matches": self.image_digest_matches,
            "error": self.error,
        }


def info(signed: bytes) -> list[BlockInfo]:
    """Describe each block position of a signed image's signature sector."""
    content, sector = split_signed(memoryview(signed))
    digests = _Digests(content)
    result = []
    for slot in read_sector(bytes(sector), offset=len(content)):
        offset = len(content) + slot.index * BLOCK_SIZE
        block = slot.block
        if block is None:
            result.append(BlockInfo(slot.index, offset, slot.state, error=slot.error))
            continue
        matches = hmac.compare_digest(digests.of(block.scheme), block.image_digest)
        result.append(
            BlockInfo(slot.index, offset, slot.state, block.scheme, block.key_digest, matches)
        )
    return result
