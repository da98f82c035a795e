"""Release bundles: a Secure Boot v2 signed app, optionally pre-encrypted, with a signed statement.

A bundle is a ZIP file of stored, unencrypted members (``ota pack`` writes it; the fleet
server takes it):

``release.json``
    the *release statement*, canonical JSON: app descriptor fields (``version``,
    ``secure_version``, …), the signed image's length, SHA-256 and Secure Boot digest,
    the SHA-256 of its signature sector, and one entry per payload (encryption,
    recipient key id, length, SHA-256);
``signatures.json``
    the statement signed by each Secure Boot key that signed the image;
``sector.bin``
    the image's 4096-byte Secure Boot v2 signature sector (public: it is in the image);
``payload-N.bin``
    the image itself (``none``) or an ``esp_encrypted_img`` of it per recipient key.

Why a statement (``docs/adr/0003-ota-release-bundle.md``): the fleet never holds
a device key, so it cannot decrypt a pre-encrypted image to run ``secure_boot.verify``.
It checks instead that a trusted, unrevoked Secure Boot key signed (a) an image with
the recorded digest, in the sector's block, and (b) this statement, which binds that
digest to the version, ``secure_version`` and the exact payload bytes. The device
still verifies the Secure Boot signature of the decrypted image before booting it.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import zipfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from espsec import secure_boot
from espsec.chips import Chip, chip_by_image_id
from espsec.errors import FormatError, KeyFormatError, UsageError, VerificationError
from espsec.image import find_app_desc, parse_image
from espsec.ota._json import (
    canonical,
    get_hex,
    get_int,
    get_opt_hex,
    get_opt_str,
    get_str,
    strict_loads,
)
from espsec.ota.encrypted_image import (
    HEADER_SIZE,
    EncryptedImageHeader,
    RecipientKey,
    encrypt_image,
    recipient_id,
    scheme_of_key,
)
from espsec.ota.protocol import Encryption
from espsec.secure_boot.crypto import check_signature, public_key_of
from espsec.secure_boot.keys import hash_name
from espsec.secure_boot.signature_block import SlotState, read_sector
from espsec.secure_boot.signer import Signer, as_signers

STATEMENT_TYPE = "espsec.release.v1"
STATEMENT_DOMAIN = b"espsec-release-statement-v1\x00"
"""Prefix of the signed statement bytes: keeps a statement signature from ever being a
valid signature over an image digest (an image starts with 0xE9)."""
MEMBER_STATEMENT = "release.json"
MEMBER_SIGNATURES = "signatures.json"
MEMBER_SECTOR = "sector.bin"
MAX_PAYLOADS = 256
MAX_BUNDLE_SIZE = 256 << 20
MAX_IMAGE_SIZE = 16 << 20
"""Largest app image accepted (ESP32 apps live in at most 16 MiB of flash)."""
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ENCRYPTIONS = tuple(e.value for e in Encryption)


@dataclass(frozen=True)
class PayloadInfo:
    """One downloadable form of the release."""

    name: str
    encryption: str
    """An :class:`~espsec.ota.protocol.Encryption` value."""
    recipient: str | None
    """:func:`espsec.ota.encrypted_image.recipient_id` of the key that can decrypt it."""
    length: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "encryption": self.encryption,
            "recipient": self.recipient,
            "length": self.length,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, obj: object, index: int) -> PayloadInfo:
        what = f"release statement payload {index}"
        if not isinstance(obj, dict):
            raise FormatError(f"{what} must be an object")
        name = get_str(obj, "name", what=what, max_len=64)
        if name != f"payload-{index}.bin":
            raise FormatError(
                f"{what}: unexpected name", expected=f"payload-{index}.bin", found=name
            )
        encryption = get_str(obj, "encryption", what=what)
        if encryption not in _ENCRYPTIONS:
            raise FormatError(
                f"{what}: unknown encryption",
                field="encryption",
                expected=", ".join(_ENCRYPTIONS),
                found=encryption,
            )
        recipient = get_opt_hex(obj, "recipient", what=what, size=32)
        if (encryption == Encryption.NONE) != (recipient is None):
            raise FormatError(f"{what}: an encrypted payload needs a recipient, a plain one none")
        return cls(
            name=name,
            encryption=encryption,
            recipient=recipient,
            length=get_int(obj, "length", what=what, lo=1, hi=MAX_IMAGE_SIZE + HEADER_SIZE),
            sha256=get_hex(obj, "sha256", what=what, size=32),
        )


@dataclass(frozen=True)
class ReleaseStatement:
    """What the release signer vouches for."""

    project_name: str
    version: str
    secure_version: int
    idf_ver: str
    chip: str
    chip_id: int
    app_elf_sha256: str
    image_length: int
    image_sha256: str
    signed_digest: str
    digest_alg: str
    sector_sha256: str
    payloads: tuple[PayloadInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "project_name": self.project_name,
            "version": self.version,
            "secure_version": self.secure_version,
            "idf_ver": self.idf_ver,
            "chip": self.chip,
            "chip_id": self.chip_id,
            "app_elf_sha256": self.app_elf_sha256,
            "image": {
                "length": self.image_length,
                "sha256": self.image_sha256,
                "signed_digest": self.signed_digest,
                "digest_alg": self.digest_alg,
                "sector_sha256": self.sector_sha256,
            },
            "payloads": [p.to_dict() for p in self.payloads],
        }

    def to_bytes(self) -> bytes:
        return canonical(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> ReleaseStatement:
        what = "release statement"
        obj = strict_loads(data, what=what)
        if obj.get("_type") != STATEMENT_TYPE:
            raise FormatError(
                f"{what}: unknown type", expected=STATEMENT_TYPE, found=obj.get("_type")
            )
        image = obj.get("image")
        if not isinstance(image, dict):
            raise FormatError(f"{what}: image must be an object", field="image")
        payloads = obj.get("payloads")
        if not isinstance(payloads, list) or not 1 <= len(payloads) <= MAX_PAYLOADS:
            raise FormatError(f"{what}: payloads must list 1 to {MAX_PAYLOADS} entries")
        alg = get_str(image, "digest_alg", what=what)
        if alg not in ("sha256", "sha384"):
            raise FormatError(f"{what}: unknown digest_alg", field="digest_alg", found=alg)
        return cls(
            project_name=get_str(obj, "project_name", what=what, max_len=32),
            version=get_str(obj, "version", what=what, max_len=32),
            secure_version=get_int(obj, "secure_version", what=what, hi=0xFFFFFFFF),
            idf_ver=get_opt_str(obj, "idf_ver", what=what, max_len=32) or "",
            chip=get_str(obj, "chip", what=what, max_len=32),
            chip_id=get_int(obj, "chip_id", what=what, hi=0xFFFF),
            app_elf_sha256=get_hex(obj, "app_elf_sha256", what=what, size=32),
            image_length=get_int(image, "length", what=what, lo=8192, hi=MAX_IMAGE_SIZE),
            image_sha256=get_hex(image, "sha256", what=what, size=32),
            signed_digest=get_hex(
                image, "signed_digest", what=what, size=48 if alg == "sha384" else 32
            ),
            digest_alg=alg,
            sector_sha256=get_hex(image, "sector_sha256", what=what, size=32),
            payloads=tuple(PayloadInfo.from_dict(p, i) for i, p in enumerate(payloads)),
        )


@dataclass(frozen=True)
class StatementSignature:
    """The statement signed by one Secure Boot key (named by its eFuse key digest)."""

    key_digest: bytes
    signature: bytes = field(repr=False)


def _statement_digest(statement_bytes: bytes, alg: str) -> bytes:
    return hashlib.new(alg, STATEMENT_DOMAIN + statement_bytes).digest()


@dataclass(frozen=True)
class ReleaseBundle:
    """A parsed (not yet trusted) release bundle."""

    statement_bytes: bytes = field(repr=False)
    statement: ReleaseStatement
    signatures: tuple[StatementSignature, ...]
    sector: bytes = field(repr=False)
    payloads: tuple[bytes, ...] = field(repr=False)

    @property
    def release_id(self) -> str:
        """16 hex digits of SHA-256 over the statement: names the release on the fleet."""
        return hashlib.sha256(self.statement_bytes).hexdigest()[:16]

    def to_bytes(self) -> bytes:
        """The bundle as a deterministic ZIP file."""
        sigs = [
            {"key_digest": s.key_digest.hex(), "signature": s.signature.hex()}
            for s in self.signatures
        ]
        members = [
            (MEMBER_STATEMENT, self.statement_bytes),
            (MEMBER_SIGNATURES, canonical({"signatures": sigs})),
            (MEMBER_SECTOR, self.sector),
        ] + [(p.name, data) for p, data in zip(self.statement.payloads, self.payloads, strict=True)]
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            for name, data in members:
                info = zipfile.ZipInfo(name, _ZIP_DATE)
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        return out.getvalue()

    @classmethod
    def parse(cls, data: bytes, *, max_size: int = MAX_BUNDLE_SIZE) -> ReleaseBundle:
        """Parse a bundle strictly: exactly the expected members, sizes within limits."""
        if len(data) > max_size:
            raise FormatError(
                "release bundle too large", expected=f"<= {max_size}", found=len(data)
            )
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        # NotImplementedError: a member needs a newer ZIP version than zipfile reads.
        except (zipfile.BadZipFile, NotImplementedError, ValueError):
            raise FormatError("not a release bundle (ZIP file)", offset=0) from None
        with zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(names) != len(set(names)):
                raise FormatError("release bundle has duplicate members")
            sizes = {i.filename: i.file_size for i in infos}
            if sum(sizes.values()) > max_size:
                raise FormatError("release bundle expands beyond the size limit")
            for i in infos:
                # `ota pack` stores members uncompressed and unencrypted; refusing anything
                # else keeps every decompressor (and its own exceptions) off this path.
                if i.compress_type != zipfile.ZIP_STORED or i.flag_bits & 0x1:
                    raise FormatError(
                        "release bundle member is compressed or encrypted",
                        field=i.filename,
                        expected="stored (ZIP method 0), unencrypted",
                        found=f"method {i.compress_type}, flags 0x{i.flag_bits:x}",
                    )

            def read(name: str, limit: int) -> bytes:
                if name not in sizes:
                    raise FormatError("release bundle member missing", field=name)
                if sizes[name] > limit:
                    raise FormatError(
                        "release bundle member too large",
                        field=name,
                        expected=f"<= {limit}",
                        found=sizes[name],
                    )
                try:
                    return zf.read(name)
                # BadZipFile: bad local header or CRC; EOFError: member data cut short;
                # NotImplementedError: local-header flags zipfile cannot handle (patched
                # data, strong encryption).
                except (zipfile.BadZipFile, EOFError, NotImplementedError, ValueError) as exc:
                    raise FormatError(f"cannot read bundle member: {exc}", field=name) from None

            statement_bytes = read(MEMBER_STATEMENT, 1 << 20)
            statement = ReleaseStatement.from_bytes(statement_bytes)
            expected = {MEMBER_STATEMENT, MEMBER_SIGNATURES, MEMBER_SECTOR}
            expected |= {p.name for p in statement.payloads}
            if set(names) != expected:
                extra = sorted(set(names) - expected)
                missing = sorted(expected - set(names))
                raise FormatError(
                    "release bundle members do not match its statement",
                    expected="missing none, extra none",
                    found=f"missing {missing or 'none'}, extra {extra or 'none'}",
                )
            signatures = _parse_signatures(read(MEMBER_SIGNATURES, 1 << 16))
            sector = read(MEMBER_SECTOR, secure_boot.SECTOR_SIZE)
            if len(sector) != secure_boot.SECTOR_SIZE:
                raise FormatError(
                    "signature sector has the wrong size",
                    field=MEMBER_SECTOR,
                    expected=secure_boot.SECTOR_SIZE,
                    found=len(sector),
                )
            payloads = tuple(read(p.name, p.length) for p in statement.payloads)
        return cls(statement_bytes, statement, signatures, sector, payloads)


def _parse_signatures(data: bytes) -> tuple[StatementSignature, ...]:
    obj = strict_loads(data, what="statement signatures")
    entries = obj.get("signatures")
    if not isinstance(entries, list) or not 1 <= len(entries) <= secure_boot.MAX_BLOCKS:
        raise FormatError(f"statement signatures: expected 1 to {secure_boot.MAX_BLOCKS} entries")
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise FormatError("statement signatures: each entry must be an object")
        digest = get_hex(entry, "key_digest", what="statement signature", size=32)
        sig = get_hex(entry, "signature", what="statement signature")
        out.append(StatementSignature(bytes.fromhex(digest), bytes.fromhex(sig)))
    return tuple(out)


# -- packing ----------------------------------------------------------------------------


def _is_signed(data: bytes) -> bool:
    if len(data) < 2 * secure_boot.SECTOR_SIZE or len(data) % secure_boot.SECTOR_SIZE:
        return False
    return read_sector(data[-secure_boot.SECTOR_SIZE :])[0].state is SlotState.VALID


def pack(
    image: bytes,
    keys: Sequence[secure_boot.PrivateKey | Signer],
    *,
    encrypt_to: Sequence[RecipientKey] = (),
    include_plaintext: bool = False,
    chip: Chip | None = None,
) -> ReleaseBundle:
    """Make a release bundle from an app image.

    An unsigned ``image`` is signed with ``keys`` (Secure Boot v2); an already signed
    one must carry a verifying block for each of ``keys``. The statement is signed with
    every key. A key may be a :class:`~espsec.secure_boot.signer.Signer` (a PKCS#11
    token), which signs both inside itself. One encrypted payload is made per
    ``encrypt_to`` key (the fleet's RSA-3072 key, or each device's ECIES key); the plain
    signed image is included when there is no recipient or ``include_plaintext`` is set.
    """
    if not keys:
        raise UsageError("a release needs at least one Secure Boot signing key")
    signers = as_signers(keys)
    publics = [s.public_key() for s in signers]
    if _is_signed(image):
        report = secure_boot.verify(image, keys=publics)
        verified = {b.key_digest for b in report.blocks if b.verdict.value == "verified"}
        missing = [k for k in publics if secure_boot.key_digest(k) not in verified]
        if missing:
            raise UsageError(
                "image is already signed, but not (validly) by every given key; "
                "pack it with the keys that signed it, or pack the unsigned image"
            )
        signed = image
    else:
        signed = secure_boot.sign(image, signers, chip=chip)
    if len(signed) > MAX_IMAGE_SIZE:
        raise UsageError(f"signed image is {len(signed)} bytes; at most {MAX_IMAGE_SIZE}")
    content, sector = secure_boot.split_signed(signed)
    parsed = parse_image(content)
    desc = find_app_desc(parsed)
    if desc is None:
        raise UsageError("not an app image (no esp_app_desc_t at 0x20): cannot make a release")
    target = chip_by_image_id(parsed.header.chip_id)
    if target is None:
        raise UsageError(f"image chip id {parsed.header.chip_id} is not a chip espsec knows")
    scheme = secure_boot.scheme_of(publics[0])
    alg = hash_name(scheme)
    blobs: list[tuple[str, str | None, bytes]] = []
    for recipient in encrypt_to:
        enc_scheme = scheme_of_key(recipient)
        blobs.append((enc_scheme.value, recipient_id(recipient), encrypt_image(signed, recipient)))
    if include_plaintext or not encrypt_to:
        blobs.append((Encryption.NONE.value, None, signed))
    infos = tuple(
        PayloadInfo(f"payload-{i}.bin", enc, rid, len(data), hashlib.sha256(data).hexdigest())
        for i, (enc, rid, data) in enumerate(blobs)
    )
    statement = ReleaseStatement(
        project_name=desc.project_name,
        version=desc.version,
        secure_version=desc.secure_version,
        idf_ver=desc.idf_ver,
        chip=target.name,
        chip_id=target.image_chip_id,
        app_elf_sha256=desc.app_elf_sha256.hex(),
        image_length=len(signed),
        image_sha256=hashlib.sha256(signed).hexdigest(),
        signed_digest=hashlib.new(alg, content).hexdigest(),
        digest_alg=alg,
        sector_sha256=hashlib.sha256(sector).hexdigest(),
        payloads=infos,
    )
    statement_bytes = statement.to_bytes()
    signatures = []
    for signer, public in zip(signers, publics, strict=True):
        digest = _statement_digest(statement_bytes, hash_name(secure_boot.scheme_of(public)))
        sig = signer.sign_digest(digest)
        if not check_signature(public, digest, sig):
            raise VerificationError(
                "fresh statement signature failed to verify; key file corrupt or signer faulty?"
            )
        signatures.append(StatementSignature(secure_boot.key_digest(public), sig))
    return ReleaseBundle(
        statement_bytes, statement, tuple(signatures), sector, tuple(b for _, _, b in blobs)
    )


# -- verification -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseReport:
    """Why a bundle was accepted: the Secure Boot blocks and the signers that vouched."""

    release_id: str
    blocks: tuple[secure_boot.BlockResult, ...]
    signers: tuple[bytes, ...]
    """Key digests whose sector block *and* statement signature verified."""

    def to_json(self) -> dict[str, object]:
        return {
            "release_id": self.release_id,
            "signers": [d.hex() for d in self.signers],
            "blocks": [b.to_json() for b in self.blocks],
        }


def _check_blocks(
    bundle: ReleaseBundle,
    trusted: Sequence[tuple[int | None, bytes]],
    revoked: Collection[int],
) -> tuple[list[secure_boot.BlockResult], dict[bytes, secure_boot.PublicKey]]:
    verdict = secure_boot.BlockVerdict
    want = bytes.fromhex(bundle.statement.signed_digest)
    results: list[secure_boot.BlockResult] = []
    good: dict[bytes, secure_boot.PublicKey] = {}
    for slot in read_sector(bundle.sector):
        block = slot.block
        if slot.state is SlotState.EMPTY:
            results.append(secure_boot.BlockResult(slot.index, verdict.EMPTY))
            continue
        if slot.state is not SlotState.VALID or block is None:
            results.append(
                secure_boot.BlockResult(slot.index, verdict.CORRUPT, detail=slot.error or "")
            )
            continue
        scheme, kd = block.scheme, block.key_digest
        if not hmac.compare_digest(block.image_digest, want):
            results.append(
                secure_boot.BlockResult(
                    slot.index,
                    verdict.IMAGE_DIGEST_MISMATCH,
                    scheme,
                    kd,
                    detail="block signs another image than the statement names",
                )
            )
            continue
        match = next((n for n, d in trusted if hmac.compare_digest(d, kd)), -1)
        if match == -1:
            results.append(secure_boot.BlockResult(slot.index, verdict.KEY_NOT_TRUSTED, scheme, kd))
            continue
        if match is not None and match in revoked:
            results.append(
                secure_boot.BlockResult(slot.index, verdict.KEY_REVOKED, scheme, kd, match)
            )
            continue
        try:
            public = public_key_of(block.public)
        except KeyFormatError as exc:
            results.append(
                secure_boot.BlockResult(slot.index, verdict.CORRUPT, scheme, kd, match, exc.message)
            )
            continue
        if not check_signature(public, block.image_digest, block.signature):
            results.append(
                secure_boot.BlockResult(slot.index, verdict.BAD_SIGNATURE, scheme, kd, match)
            )
            continue
        results.append(secure_boot.BlockResult(slot.index, verdict.VERIFIED, scheme, kd, match))
        good[kd] = public
    return results, good


def _check_plain_payload(
    bundle: ReleaseBundle,
    data: bytes,
    keys: Sequence[secure_boot.PrivateKey | secure_boot.PublicKey],
    key_digests: Sequence[bytes | None] | None,
    revoked: Collection[int],
) -> None:
    st = bundle.statement
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest().encode(), st.image_sha256.encode()):
        raise VerificationError("plain payload is not the image the statement names")
    report = secure_boot.verify(data, keys=keys, key_digests=key_digests, revoked=revoked)
    if not report.ok:
        raise VerificationError(f"plain payload: no valid Secure Boot signature: {report.reason}")
    if data[-secure_boot.SECTOR_SIZE :] != bundle.sector:
        raise VerificationError("plain payload's signature sector differs from sector.bin")
    content = secure_boot.split_signed(data)[0]
    parsed = parse_image(content)
    desc = find_app_desc(parsed)
    claims = (st.project_name, st.version, st.secure_version, st.chip_id, st.app_elf_sha256)
    actual = (
        (
            desc.project_name,
            desc.version,
            desc.secure_version,
            parsed.header.chip_id,
            desc.app_elf_sha256.hex(),
        )
        if desc is not None
        else None
    )
    if actual != claims:
        raise VerificationError("plain payload's app descriptor disagrees with the statement")


def _check_encrypted_payload(info: PayloadInfo, data: bytes, image_length: int) -> None:
    header = EncryptedImageHeader.parse(data)
    if header.bin_size != image_length or len(data) != HEADER_SIZE + header.bin_size:
        raise VerificationError(
            f"{info.name}: encrypted length does not match the signed image "
            f"(bin_size {header.bin_size}, image {image_length}, file {len(data)})"
        )
    if header.likely_scheme.value != info.encryption:
        raise VerificationError(
            f"{info.name}: key block looks like {header.likely_scheme.value}, "
            f"statement says {info.encryption}"
        )


def verify_release(
    bundle: ReleaseBundle,
    *,
    keys: Sequence[secure_boot.PrivateKey | secure_boot.PublicKey] = (),
    key_digests: Sequence[bytes | None] | None = None,
    revoked: Collection[int] = (),
) -> ReleaseReport:
    """Accept a bundle only if a trusted Secure Boot key vouches for every byte of it.

    Trust is given as for :func:`espsec.secure_boot.verify` (keys, or eFuse key digests
    with revoked slots). Checks: every payload's length and SHA-256 match the statement;
    the sector matches the statement; some block of the sector by a trusted, unrevoked
    key validly signs the statement's image digest, and the same key signed the
    statement; a plain payload passes ``secure_boot.verify`` and its app descriptor
    matches the statement; an encrypted payload's header agrees with the image length.
    Raises :class:`VerificationError` naming the first failed check.
    """
    if not keys and key_digests is None:
        raise UsageError("verifying a release needs Secure Boot keys or eFuse key digests to trust")
    st = bundle.statement
    for info, data in zip(st.payloads, bundle.payloads, strict=True):
        if len(data) != info.length or not hmac.compare_digest(
            hashlib.sha256(data).hexdigest().encode(), info.sha256.encode()
        ):
            raise VerificationError(f"{info.name} does not match its SHA-256 in the statement")
    if not hmac.compare_digest(
        hashlib.sha256(bundle.sector).hexdigest().encode(), st.sector_sha256.encode()
    ):
        raise VerificationError("sector.bin does not match its SHA-256 in the statement")
    trusted: list[tuple[int | None, bytes]] = [(None, secure_boot.key_digest(k)) for k in keys]
    if key_digests is not None:
        trusted += [(n, d) for n, d in enumerate(key_digests) if d is not None]
    blocks, good = _check_blocks(bundle, trusted, revoked)
    if not good:
        reason = "; ".join(
            f"block {b.index}: {b.verdict.value}" for b in blocks if b.verdict.value != "empty"
        )
        raise VerificationError(f"no trusted Secure Boot signature: {reason or 'no blocks'}")
    signers = []
    for sig in bundle.signatures:
        public = good.get(sig.key_digest)
        if public is None:
            continue
        digest = _statement_digest(bundle.statement_bytes, hash_name(secure_boot.scheme_of(public)))
        if check_signature(public, digest, sig.signature):
            signers.append(sig.key_digest)
    if not signers:
        raise VerificationError(
            "release statement is not signed by a key that signed the image "
            "(statement altered, or signed by an untrusted key)"
        )
    for info, data in zip(st.payloads, bundle.payloads, strict=True):
        if info.encryption == Encryption.NONE:
            _check_plain_payload(bundle, data, keys, key_digests, revoked)
        else:
            _check_encrypted_payload(info, data, st.image_length)
    return ReleaseReport(bundle.release_id, tuple(blocks), tuple(signers))
