"""The Secure Boot v2 signature sector and its signature blocks, byte for byte.

Layout from espsecure (``generate_rsa_signature_block``, ``generate_ecdsa_signature_block``)
and ESP-IDF ``components/esp_rom/<chip>/include/<chip>/rom/secure_boot.h``: a 4096-byte
sector after the 4 KiB-aligned image, holding up to three 1216-byte blocks, the rest 0xFF.
All big numbers are stored little-endian.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from enum import StrEnum

from espsec.chips import ECDSA192, ECDSA256, ECDSA384, RSA3072
from espsec.errors import FormatError

SECTOR_SIZE = 4096
BLOCK_SIZE = 1216
MAX_BLOCKS = 3
MAGIC = 0xE7
VERSION_RSA = 0x02
VERSION_ECDSA = 0x03
SHA_256 = 0
SHA_384 = 1
CRC_OFFSET = 1196

#: ECDSA curve ids in the block, with the field width micro-ecc uses for X‖Y and r‖s.
CURVE_IDS = {ECDSA192: 1, ECDSA256: 2, ECDSA384: 3}
_CURVE_SCHEMES = {v: k for k, v in CURVE_IDS.items()}
_COORD_LEN = {ECDSA192: 24, ECDSA256: 32, ECDSA384: 48}

_RSA = struct.Struct("<BBxx32s384sI384sI384s")
_ECDSA_256 = struct.Struct("<BBBx32sB64s64s")
_ECDSA_384 = struct.Struct("<BBBx48sB96s96s")


def _le(value: int, size: int) -> bytes:
    return value.to_bytes(size, "little")


def _from_le(data: bytes) -> int:
    return int.from_bytes(data, "little")


@dataclass(frozen=True)
class RsaPublicParams:
    """The RSA public key as the ROM's RSA peripheral wants it."""

    n: int
    e: int

    @property
    def rinv(self) -> int:
        """R² mod n with R = 2^3072 (Montgomery constant)."""
        return (1 << (2 * 3072)) % self.n

    @property
    def mdash(self) -> int:
        """M' = -n⁻¹ mod 2³²."""
        return (-pow(self.n, -1, 1 << 32)) % (1 << 32)

    def to_bytes(self) -> bytes:
        """n ‖ e ‖ rinv ‖ M' (776 bytes): block bytes 36..812, the eFuse digest input."""
        return (
            _le(self.n, 384)
            + struct.pack("<I", self.e)
            + _le(self.rinv, 384)
            + struct.pack("<I", self.mdash)
        )


@dataclass(frozen=True)
class EcdsaPublicParams:
    """An ECDSA public key as micro-ecc wants it: curve id and X‖Y little-endian."""

    scheme: str
    x: int
    y: int

    @property
    def curve_id(self) -> int:
        return CURVE_IDS[self.scheme]

    def point_bytes(self) -> bytes:
        """X‖Y, each little-endian, zero-padded to the field width (64 or 96 bytes)."""
        n = _COORD_LEN[self.scheme]
        width = 96 if self.scheme == ECDSA384 else 64
        return (_le(self.x, n) + _le(self.y, n)).ljust(width, b"\0")

    def to_bytes(self) -> bytes:
        """curve_id ‖ X ‖ Y: the eFuse digest input."""
        return bytes([self.curve_id]) + self.point_bytes()


PublicParams = RsaPublicParams | EcdsaPublicParams


def key_digest_of(params: PublicParams) -> bytes:
    """SHA-256 of the public key as encoded in the block: what ``SECURE_BOOT_DIGESTn`` holds."""
    return hashlib.sha256(params.to_bytes()).digest()


@dataclass(frozen=True)
class SignatureBlock:
    """One signature block: image digest, public key and signature.

    ``signature`` is in the conventional big-endian form (RSA-PSS bytes, or r and s as
    integers packed big-endian, each ``coordinate length`` bytes) so it can be checked
    with standard libraries; :meth:`to_bytes` produces the ROM's little-endian layout.
    """

    image_digest: bytes
    public: PublicParams
    signature: bytes = field(repr=False)

    @property
    def scheme(self) -> str:
        return RSA3072 if isinstance(self.public, RsaPublicParams) else self.public.scheme

    @property
    def key_digest(self) -> bytes:
        return key_digest_of(self.public)

    def to_bytes(self) -> bytes:
        """The 1216-byte block with its CRC32."""
        if isinstance(self.public, RsaPublicParams):
            body = _RSA.pack(
                MAGIC,
                VERSION_RSA,
                self.image_digest,
                _le(self.public.n, 384),
                self.public.e,
                _le(self.public.rinv, 384),
                self.public.mdash,
                self.signature[::-1],
            )
        else:
            n = _COORD_LEN[self.public.scheme]
            r, s = self.signature[:n], self.signature[n:]
            rs = r[::-1] + s[::-1]
            p384 = self.public.scheme == ECDSA384
            fmt = _ECDSA_384 if p384 else _ECDSA_256
            body = fmt.pack(
                MAGIC,
                VERSION_ECDSA,
                SHA_384 if p384 else SHA_256,
                self.image_digest,
                self.public.curve_id,
                self.public.point_bytes(),
                rs.ljust(96 if p384 else 64, b"\0"),
            )
        body = body.ljust(CRC_OFFSET, b"\0")
        return body + struct.pack("<I", zlib.crc32(body)) + bytes(16)

    @classmethod
    def parse(cls, data: bytes, *, offset: int = 0) -> SignatureBlock:
        """Parse one block strictly; ``offset`` is only used in error messages."""
        if len(data) != BLOCK_SIZE:
            raise FormatError(
                "signature block truncated",
                offset=offset,
                expected=f"{BLOCK_SIZE} bytes",
                found=f"{len(data)} bytes",
            )
        if data[0] != MAGIC:
            raise FormatError(
                "not a signature block", offset=offset, field="magic", expected=MAGIC, found=data[0]
            )
        crc = struct.unpack_from("<I", data, CRC_OFFSET)[0]
        actual = zlib.crc32(data[:CRC_OFFSET])
        if crc != actual:
            raise FormatError(
                "signature block corrupt",
                offset=offset + CRC_OFFSET,
                field="crc",
                expected=actual,
                found=crc,
            )
        version = data[1]
        if version == VERSION_RSA:
            _, _, digest, n, e, rinv, mdash, sig = _RSA.unpack_from(data)
            modulus = _from_le(n)
            if not modulus % 2:
                raise FormatError(
                    "RSA modulus is even (not an RSA key)", offset=offset + 36, field="key.n"
                )
            rsa_public = RsaPublicParams(modulus, e)
            stored = n + struct.pack("<I", e) + rinv + struct.pack("<I", mdash)
            _check_stored_key(stored, rsa_public, offset=offset + 36)
            return cls(digest, rsa_public, sig[::-1])
        if version != VERSION_ECDSA:
            raise FormatError(
                "unknown signature block version",
                offset=offset + 1,
                field="version",
                expected="2 (RSA) or 3 (ECDSA)",
                found=version,
            )
        sha = data[2]
        if sha not in (SHA_256, SHA_384):
            raise FormatError(
                "unknown ECDSA digest type",
                offset=offset + 2,
                field="sha_version",
                expected="0 (SHA-256) or 1 (SHA-384)",
                found=sha,
            )
        fmt = _ECDSA_384 if sha == SHA_384 else _ECDSA_256
        _, _, _, digest, curve_id, point, rs = fmt.unpack_from(data)
        scheme = _CURVE_SCHEMES.get(curve_id)
        curve_offset = offset + 4 + len(digest)
        if scheme is None:
            raise FormatError(
                "unknown ECDSA curve",
                offset=curve_offset,
                field="curve_id",
                expected="1, 2 or 3",
                found=curve_id,
            )
        if (scheme == ECDSA384) != (sha == SHA_384):
            raise FormatError(
                "curve does not match digest type",
                offset=curve_offset,
                field="curve_id",
                expected=3 if sha == SHA_384 else "1 or 2",
                found=curve_id,
            )
        n = _COORD_LEN[scheme]
        public = EcdsaPublicParams(scheme, _from_le(point[:n]), _from_le(point[n : 2 * n]))
        _check_stored_key(bytes([curve_id]) + point, public, offset=curve_offset)
        signature = rs[:n][::-1] + rs[n : 2 * n][::-1]
        return cls(digest, public, signature)


def _check_stored_key(stored: bytes, public: PublicParams, *, offset: int) -> None:
    """The key bytes in the block must be exactly those :attr:`SignatureBlock.key_digest` hashes.

    The ROM hashes the stored bytes (RSA ``rinv`` and ``M'``, ECDSA zero padding included)
    and compares that with ``SECURE_BOOT_DIGESTn``; a block whose stored values differ from
    the ones derived from the key would be trusted here but refused by the chip.
    """
    if stored != public.to_bytes():
        raise FormatError(
            "stored public key parameters are inconsistent (RSA rinv/M' or ECDSA padding)",
            offset=offset,
            field="key",
        )


class SlotState(StrEnum):
    """What occupies one of the three block positions of a signature sector."""

    VALID = "valid"
    EMPTY = "empty"
    BAD_MAGIC = "bad magic"
    BAD_CRC = "bad CRC"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class SectorSlot:
    """One block position in a sector: its state, the block if it parses, and why not."""

    index: int
    state: SlotState
    block: SignatureBlock | None = None
    error: str | None = None


def read_sector(sector: bytes, *, offset: int = 0) -> list[SectorSlot]:
    """Classify each of the three block positions of a 4096-byte sector (never raises
    for block content; raises :class:`FormatError` if ``sector`` is not 4096 bytes)."""
    if len(sector) != SECTOR_SIZE:
        raise FormatError(
            "signature sector truncated",
            offset=offset,
            expected=f"{SECTOR_SIZE} bytes",
            found=f"{len(sector)} bytes",
        )
    slots = []
    for i in range(MAX_BLOCKS):
        raw = sector[i * BLOCK_SIZE : (i + 1) * BLOCK_SIZE]
        at = offset + i * BLOCK_SIZE
        if raw[0] != MAGIC:
            state = SlotState.EMPTY if raw == b"\xff" * BLOCK_SIZE else SlotState.BAD_MAGIC
            slots.append(SectorSlot(i, state))
            continue
        try:
            slots.append(SectorSlot(i, SlotState.VALID, SignatureBlock.parse(raw, offset=at)))
        except FormatError as exc:
            state = SlotState.BAD_CRC if exc.field == "crc" else SlotState.MALFORMED
            slots.append(SectorSlot(i, state, error=exc.message))
    return slots


def build_sector(blocks: list[SignatureBlock]) -> bytes:
    """A 4096-byte signature sector holding ``blocks`` in order, the rest 0xFF."""
    if len(blocks) > MAX_BLOCKS:
        raise FormatError(
            "too many signature blocks",
            field="signature sector",
            expected=f"at most {MAX_BLOCKS}",
            found=len(blocks),
        )
    data = b"".join(b.to_bytes() for b in blocks)
    return data.ljust(SECTOR_SIZE, b"\xff")
