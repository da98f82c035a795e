"""``ota inspect``: describe a release bundle, a pre-encrypted image or an app image.

Describes, never trusts: use :func:`espsec.ota.release.verify_release` (or the fleet) to
decide whether to accept a release.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from espsec import secure_boot
from espsec.errors import FormatError
from espsec.image import IMAGE_MAGIC, find_app_desc, parse_image
from espsec.ota.encrypted_image import HEADER_SIZE, MAGIC, EncryptedImageHeader
from espsec.ota.release import ReleaseBundle
from espsec.secure_boot.signature_block import read_sector


def _sector_blocks(sector: bytes, signed_digest: bytes | None) -> list[dict[str, Any]]:
    out = []
    for slot in read_sector(sector):
        entry: dict[str, Any] = {"block": slot.index, "state": slot.state.value}
        if slot.block is not None:
            entry["scheme"] = slot.block.scheme
            entry["key_digest"] = slot.block.key_digest.hex()
            if signed_digest is not None:
                entry["image_digest_matches"] = hmac.compare_digest(
                    slot.block.image_digest, signed_digest
                )
        if slot.error:
            entry["error"] = slot.error
        out.append(entry)
    return out


def _describe_bundle(data: bytes) -> dict[str, Any]:
    bundle = ReleaseBundle.parse(data)
    st = bundle.statement
    return {
        "kind": "release bundle",
        "release_id": bundle.release_id,
        "project_name": st.project_name,
        "version": st.version,
        "secure_version": st.secure_version,
        "chip": st.chip,
        "idf_ver": st.idf_ver,
        "image": {
            "length": st.image_length,
            "sha256": st.image_sha256,
            "signed_digest": st.signed_digest,
        },
        "signature_blocks": _sector_blocks(bundle.sector, bytes.fromhex(st.signed_digest)),
        "statement_signers": [s.key_digest.hex() for s in bundle.signatures],
        "payloads": [p.to_dict() for p in st.payloads],
    }


def _describe_encrypted(data: bytes) -> dict[str, Any]:
    header = EncryptedImageHeader.parse(data)
    return {
        "kind": "pre-encrypted image",
        "encryption": header.likely_scheme.value,
        "bin_size": header.bin_size,
        "length": len(data),
        "complete": len(data) == HEADER_SIZE + header.bin_size,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _describe_image(data: bytes) -> dict[str, Any]:
    signed = False
    content = data
    aligned = len(data) >= 2 * secure_boot.SECTOR_SIZE and not len(data) % secure_boot.SECTOR_SIZE
    if aligned and read_sector(data[-secure_boot.SECTOR_SIZE :])[0].block is not None:
        signed = True
        content = data[: -secure_boot.SECTOR_SIZE]
    image = parse_image(content)
    desc = find_app_desc(image)
    out: dict[str, Any] = {
        "kind": "signed app image" if signed else "app image",
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "chip_id": image.header.chip_id,
    }
    if desc is not None:
        out |= {
            "project_name": desc.project_name,
            "version": desc.version,
            "secure_version": desc.secure_version,
            "idf_ver": desc.idf_ver,
        }
    if signed:
        out["signature_blocks"] = [b.to_json() for b in secure_boot.info(data)]
    return out


def describe(data: bytes) -> dict[str, Any]:
    """A JSON-ready description of ``data``: kind, version, ``secure_version``,
    signatures and encryption, as far as the file shows them."""
    if data[:4] == b"PK\x03\x04":
        return _describe_bundle(data)
    if len(data) >= 4 and int.from_bytes(data[:4], "little") == MAGIC:
        return _describe_encrypted(data)
    if data[:1] == bytes([IMAGE_MAGIC]):
        return _describe_image(data)
    raise FormatError(
        "not a release bundle, pre-encrypted image or app image",
        offset=0,
        field="magic",
        expected="PK.., cf b6 88 07 or e9",
        found=data[:4],
    )
