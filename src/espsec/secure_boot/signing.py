"""Signing: pad the image to 4 KiB, append a sector of up to three signature blocks."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from espsec.chips import RSA3072, Chip, chip_by_image_id
from espsec.errors import FormatError, UsageError, VerificationError
from espsec.image.app_image import image_layout
from espsec.secure_boot.crypto import (
    check_signature,
    der_to_raw,
    image_digest,
    public_params,
)
from espsec.secure_boot.keys import PrivateKey, PublicKey, hash_name, scheme_of
from espsec.secure_boot.signature_block import (
    _COORD_LEN,
    BLOCK_SIZE,
    MAX_BLOCKS,
    SECTOR_SIZE,
    SignatureBlock,
    SlotState,
    build_sector,
    read_sector,
)
from espsec.secure_boot.signer import Signer, as_signers

_Buffer = TypeVar("_Buffer", bytes, memoryview)


@dataclass(frozen=True)
class ExternalSignature:
    """A signature made outside espsec (HSM, signing server) with its public key.

    ``signature`` is RSA-PSS raw bytes (big-endian), or ECDSA as DER or raw r‖s
    (big-endian, fixed width) as PKCS#11 ``CKM_ECDSA`` returns it.
    """

    public_key: PublicKey
    signature: bytes = field(repr=False)


def pad_to_sector(image: bytes) -> bytes:
    """``image`` padded with 0xFF to a multiple of 4096 bytes (as espsecure does)."""
    return image + b"\xff" * (-len(image) % SECTOR_SIZE)


def split_signed(signed: _Buffer) -> tuple[_Buffer, _Buffer]:
    """Split a signed image into (signed content, signature sector), checking alignment.

    Given a ``memoryview``, returns views (no copy of megabytes of content).

    An image that cannot end in a signature sector (not 4 KiB-aligned, or shorter than
    content plus sector) is reported as not signed.
    """
    if len(signed) < 2 * SECTOR_SIZE or len(signed) % SECTOR_SIZE:
        raise FormatError(
            "image is not signed: no signature sector at its end",
            expected="a signed image: a multiple of 4096 bytes, at least 8192",
            found=f"{len(signed)} bytes",
        )
    return signed[:-SECTOR_SIZE], signed[-SECTOR_SIZE:]


def existing_blocks(signed: bytes) -> list[SignatureBlock]:
    """The valid blocks of a signed image's sector (``--append`` keeps these)."""
    content, sector = split_signed(memoryview(signed))  # no copy of the content
    slots = read_sector(bytes(sector), offset=len(content))
    blocks: list[SignatureBlock] = []
    for slot in slots:
        if slot.state is SlotState.VALID and slot.block is not None:
            if blocks and len(blocks) != slot.index:
                raise FormatError(
                    "signature sector has a gap before this block",
                    offset=len(content) + slot.index * BLOCK_SIZE,
                    field=f"block {slot.index}",
                )
            blocks.append(slot.block)
        elif slot.state not in (SlotState.EMPTY,):
            raise FormatError(
                f"signature block {slot.index} is {slot.state.value}"
                + (f": {slot.error}" if slot.error else ""),
                offset=len(content) + slot.index * BLOCK_SIZE,
                field=f"block {slot.index}",
            )
    if not blocks:
        raise FormatError(
            "no signature block to append to", offset=len(content), field="signature sector"
        )
    return blocks


def _is_signed(data: bytes) -> bool:
    if len(data) < 2 * SECTOR_SIZE or len(data) % SECTOR_SIZE:
        return False
    slots = read_sector(data[-SECTOR_SIZE:])
    return slots[0].state is SlotState.VALID


def _target_chip(content: bytes | memoryview, chip: Chip | None) -> Chip:
    # the image's structure is checked, but nothing of its megabytes is copied
    chip_id = image_layout(content).header.chip_id
    if chip is not None:
        if chip_id != chip.image_chip_id:
            raise UsageError(
                f"image is for chip id {chip_id}, not {chip.display_name} "
                f"(chip id {chip.image_chip_id})"
            )
        return chip
    found = chip_by_image_id(chip_id)
    if found is None:
        raise UsageError(f"image chip id {chip_id} is not a chip espsec knows; pass a chip")
    return found


def signing_digest(image: bytes, scheme: str, *, append: bool = False) -> bytes:
    """Exactly what an external signer must sign: the digest of the padded image.

    Sign it with RSA-PSS (MGF1-SHA256, salt 32) or ECDSA over the prehashed digest
    (SHA-256; SHA-384 for P-384). With ``append``, ``image`` is already signed and the
    digest covers its content without the sector.
    """
    if append:
        content = existing_content(image)
    else:
        image_layout(image)  # refuse what is no ESP image, as sign() would
        content = pad_to_sector(image)
    return image_digest(content, scheme)


def existing_content(signed: bytes) -> bytes:
    """The signed content of an already signed image (its sector stripped)."""
    existing_blocks(signed)
    return signed[:-SECTOR_SIZE]


class _Content:
    """The content a sector signs, as the pieces it is made of (the image, then its 0xFF
    padding), with its digest per hash computed once and without joining the pieces."""

    def __init__(self, *pieces: bytes | memoryview) -> None:
        self.pieces = pieces
        self.size = sum(len(p) for p in pieces)
        self._digests: dict[str, bytes] = {}

    def digest(self, scheme: str) -> bytes:
        """What :func:`~espsec.secure_boot.crypto.image_digest` gives for the joined pieces."""
        name = hash_name(scheme)
        if name not in self._digests:
            if len(self.pieces) == 1:
                self._digests[name] = image_digest(self.pieces[0], scheme)
            else:
                h = hashlib.new(name)
                for piece in self.pieces:
                    h.update(piece)
                self._digests[name] = h.digest()
        return self._digests[name]


def _external_block(content: _Content, ext: ExternalSignature) -> SignatureBlock:
    scheme = scheme_of(ext.public_key)
    digest = content.digest(scheme)
    signature = ext.signature
    if scheme != RSA3072 and len(signature) != 2 * _COORD_LEN[scheme]:
        try:
            signature = der_to_raw(signature, scheme)
        except ValueError:
            raise FormatError(
                "ECDSA signature is neither DER nor raw r||s",
                field="signature",
                expected=f"DER or {2 * _COORD_LEN[scheme]} bytes",
                found=f"{len(ext.signature)} bytes",
            ) from None
    if scheme == RSA3072 and len(signature) != 384:
        raise FormatError(
            "RSA-3072 signature has the wrong length",
            field="signature",
            expected="384 bytes",
            found=f"{len(signature)} bytes",
        )
    if not check_signature(ext.public_key, digest, signature):
        raise VerificationError(
            f"{scheme} signature does not verify with the given public key over this image "
            "(Secure Boot v2 needs RSA-PSS/MGF1-SHA256/salt 32, or ECDSA over the image digest)"
        )
    return SignatureBlock(digest, public_params(ext.public_key), signature)


def _key_block(content: _Content, signer: Signer) -> SignatureBlock:
    public = signer.public_key()
    scheme = scheme_of(public)
    digest = content.digest(scheme)
    signature = signer.sign_digest(digest)
    # Verify what we made: catches a corrupt key, a faulty signer or an HSM that signed
    # with another key than the public one it reported, before the image is released.
    if not check_signature(public, digest, signature):
        raise VerificationError(
            f"fresh {scheme} signature failed to verify; key file corrupt or signer faulty?"
        )
    return SignatureBlock(digest, public_params(public), signature)


def sign(
    image: bytes,
    keys: Sequence[PrivateKey | Signer] = (),
    *,
    external: Sequence[ExternalSignature] = (),
    append: bool = False,
    chip: Chip | None = None,
) -> bytes:
    """Sign an ESP image for Secure Boot v2 and return image ‖ padding ‖ signature sector.

    One block per key in ``keys`` (a private key, or a :class:`Signer` such as a
    PKCS#11 token that signs inside itself) and per signature in ``external``. With ``append``,
    ``image`` must already be signed; its valid blocks are kept and new ones added (at
    most three in all). Refuses a scheme the target chip's ROM does not accept (the
    chip comes from the image header unless ``chip`` is given) and mixing schemes in
    one sector.
    """
    if not keys and not external:
        raise UsageError("nothing to sign with: give at least one key or external signature")
    signers = as_signers(keys)
    if append:
        old = existing_blocks(image)
        content = _Content(memoryview(image)[:-SECTOR_SIZE])
    else:
        if _is_signed(image):
            raise UsageError(
                "image is already signed; use append to add signature blocks, "
                "or sign the unsigned image"
            )
        old = []
        # the padded image is hashed in pieces: the only copy made is the signed image
        content = _Content(image, b"\xff" * (-len(image) % SECTOR_SIZE))
    target = _target_chip(content.pieces[0], chip)
    total = len(old) + len(keys) + len(external)
    if total > MAX_BLOCKS:
        raise UsageError(
            f"a signature sector holds at most {MAX_BLOCKS} blocks; this would make {total} "
            f"({len(old)} existing + {len(keys) + len(external)} new)"
        )
    schemes = [b.scheme for b in old]
    schemes += [scheme_of(s.public_key()) for s in signers] + [
        scheme_of(e.public_key) for e in external
    ]
    for scheme in schemes:
        target.require_scheme(scheme)
    if len(set(schemes)) > 1:
        raise UsageError(
            f"one signature sector cannot mix schemes ({', '.join(sorted(set(schemes)))}): "
            "the ROM verifies every block with the scheme it is configured for"
        )
    new = [_key_block(content, s) for s in signers] + [
        _external_block(content, e) for e in external
    ]
    digests = [b.key_digest for b in old + new]
    if len(set(digests)) != len(digests):
        raise UsageError("the same key would sign the image twice (duplicate signature block)")
    return b"".join([*content.pieces, build_sector(old + new)])
