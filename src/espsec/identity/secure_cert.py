"""The ``esp_secure_cert`` partition: a device's certificates and key (or its DS / eFuse handle).

TLV format (esp_secure_cert_mgr ``private_include/esp_secure_cert_tlv_private.h``,
``include/esp_secure_cert_tlv_config.h``, ``srcs/esp_secure_cert_tlv_read.c``)::

    header  <I magic 0xBA5EBA11, B flags, 3x reserved, B type, B subtype, H length>
    data    length bytes, then zero padding to a multiple of 16
    footer  <I crc32(header | data | padding, 0xFFFFFFFF)>   (esp_crc32_le(UINT32_MAX, ...))

TLVs follow each other from offset 0; the first word that is not the magic ends the list
(an erased partition reads 0xFF). The integrity TLV (type 9) holds SHA-256 of every byte
before it. Flags: ``0x80`` the data is AES-GCM-encrypted under a key derived from the
first ``HMAC_UP`` eFuse key; ``0x40`` the ECDSA key is derived from that HMAC key and the
salt TLV (type 5) by PBKDF2; ``0x08`` the ECDSA key lives in an eFuse key block (the
ECDSA peripheral; the SEC_CFG TLV names the block).

esp-secure-cert-tool 2.6.1 (``tlv_format_construct.py``) writes the DS_DATA/DS_CONTEXT
(or SEC_CFG) TLVs first, then the CA certificate(s), the device certificate, the private
key and user data in the order given, then the integrity TLV; certificates and keys are
re-encoded (PEM with a NUL terminator, or DER) as pyca/cryptography writes them.
:func:`build` does the same, so both give identical bytes for the same inputs.

Legacy formats, read only (``srcs/esp_secure_cert_read.c``): ``cust_flash`` (a metadata
header with CRC/length pairs and magic 0x12345678, then fixed offsets), its older
``pre_prov`` variant with the CA and device fields swapped, and the NVS format
(namespace ``esp_secure_cert`` or ``pre_prov``).
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from espsec import _pem
from espsec._pem import key_kind
from espsec.errors import FormatError, KeyFormatError, UsageError
from espsec.identity.ds import DsData

MAGIC = 0xBA5EBA11
PARTITION_TYPE = 0x3F
"""``ESP_SECURE_CERT_TLV_PARTITION_TYPE``: the partition table type of ``esp_secure_cert``."""
PARTITION_NAME = "esp_secure_cert"
PARTITION_SIZE = 0x2000
"""The size esp-secure-cert-tool allows for the TLV format (8 KiB)."""
ALIGNMENT = 16
"""``MIN_ALIGNMENT_REQUIRED``: data is padded for flash-encrypted writes."""
_HEADER = struct.Struct("<IB3sBBH")
_FOOTER = struct.Struct("<I")

FLAG_HMAC_ENCRYPTION = 0x80
FLAG_HMAC_ECDSA_KEY_DERIVATION = 0x40
FLAG_KEY_ECDSA_PERIPHERAL = 0x08
_HMAC_FLAGS_MASK = 0xC0
_KEY_FLAGS_MASK = 0x38

HMAC_ENCRYPTION_KEY_MESSAGE = b"\xff" * 32
"""``esp_secure_cert_calculate_hmac_encryption_key``: HMAC_UP over 8 words 0xFFFFFFFF."""
HMAC_ENCRYPTION_IV_MESSAGE = struct.pack("<8I", *[0xABCDABCD] * 8)
"""``esp_secure_cert_calculate_hmac_encryption_iv``: HMAC_UP over 8 words 0xABCDABCD."""
HMAC_ENCRYPTION_TAG_LEN = 16
KEY_DERIVATION_ITERATIONS = 2048
"""``ESP_SECURE_CERT_KEY_DERIVATION_ITERATION_COUNT``."""
DERIVED_ECDSA_KEY_SIZE = 32

Mac = Callable[[bytes], bytes]
"""An HMAC-SHA256 oracle under the device's first ``HMAC_UP`` key (the HMAC peripheral)."""


class TlvType(IntEnum):
    """``esp_secure_cert_tlv_type_t``."""

    CA_CERT = 0
    DEV_CERT = 1
    PRIV_KEY = 2
    DS_DATA = 3
    DS_CONTEXT = 4
    HMAC_ECDSA_KEY_SALT = 5
    SEC_CFG = 6
    TEE_SEC_STORAGE_KEY = 7
    SIGNATURE_BLOCK = 8
    INTEGRITY = 9
    TLV_END = 50
    USER_DATA_1 = 51
    USER_DATA_2 = 52
    USER_DATA_3 = 53
    USER_DATA_4 = 54
    USER_DATA_5 = 55
    MATTER_TLV_1 = 201
    MATTER_TLV_2 = 202

    @classmethod
    def name_of(cls, value: int) -> str:
        try:
            return f"ESP_SECURE_CERT_{cls(value).name}_TLV"
        except ValueError:
            return f"unknown type {value}"


def _padding(length: int) -> int:
    return -length % ALIGNMENT


def crc_a(data: bytes) -> int:
    """``esp_crc32_le(UINT32_MAX, data)``."""
    return zlib.crc32(data, 0xFFFFFFFF) & 0xFFFFFFFF


@dataclass(frozen=True)
class Tlv:
    """One TLV entry."""

    type: int
    subtype: int
    data: bytes = field(repr=False)
    flags: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 0xFF or not 0 <= self.subtype <= 0xFF:
            raise UsageError("TLV type and subtype are single bytes")
        if len(self.data) > 0xFFFF:
            raise UsageError(f"TLV data is limited to 65535 bytes, found {len(self.data)}")

    @property
    def size(self) -> int:
        return _HEADER.size + len(self.data) + _padding(len(self.data)) + _FOOTER.size

    @property
    def hmac_encrypted(self) -> bool:
        return self.flags & _HMAC_FLAGS_MASK == FLAG_HMAC_ENCRYPTION

    @property
    def hmac_derived_ecdsa(self) -> bool:
        return self.flags & _HMAC_FLAGS_MASK == FLAG_HMAC_ECDSA_KEY_DERIVATION

    @property
    def ecdsa_peripheral(self) -> bool:
        return self.flags & _KEY_FLAGS_MASK == FLAG_KEY_ECDSA_PERIPHERAL

    def to_bytes(self) -> bytes:
        body = (
            _HEADER.pack(MAGIC, self.flags, bytes(3), self.type, self.subtype, len(self.data))
            + self.data
            + bytes(_padding(len(self.data)))
        )
        return body + _FOOTER.pack(crc_a(body))


@dataclass(frozen=True)
class DsContext:
    """The DS_CONTEXT TLV: ``reserved u32, efuse_key_id u8, pad u8, rsa_length u16`` (bits)."""

    efuse_key_id: int
    rsa_bits: int

    @classmethod
    def parse(cls, data: bytes) -> DsContext:
        if len(data) != 8:
            raise FormatError(
                "DS context TLV has the wrong size", field="DS_CONTEXT", expected=8, found=len(data)
            )
        _, key_id, _, bits = struct.unpack("<IBBH", data)
        return cls(key_id, bits)

    def to_bytes(self) -> bytes:
        return struct.pack("<IBBH", 0, self.efuse_key_id, 0, self.rsa_bits)


@dataclass(frozen=True)
class SecCfg:
    """The SEC_CFG TLV (``esp_secure_cert_tlv_sec_cfg_t``): the eFuse block of the ECDSA key."""

    priv_key_efuse_block: int
    """``efuse_key_block_id + EFUSE_BLK_KEY0``: BLOCK_KEY0 is block 4."""

    @property
    def key_id(self) -> int:
        return self.priv_key_efuse_block - 4

    @classmethod
    def parse(cls, data: bytes) -> SecCfg:
        if len(data) != 40:
            raise FormatError(
                "SEC_CFG TLV has the wrong size", field="SEC_CFG", expected=40, found=len(data)
            )
        return cls(data[0])

    def to_bytes(self) -> bytes:
        return bytes([self.priv_key_efuse_block]) + bytes(39)


@dataclass(frozen=True)
class SecureCertPartition:
    """An ``esp_secure_cert`` partition in TLV format."""

    entries: tuple[Tlv, ...]

    @classmethod
    def parse(
        cls, data: bytes, *, check_integrity: bool = True, strict_tail: bool = True
    ) -> SecureCertPartition:
        """Parse every TLV strictly: magic, bounds, CRC, erased tail, integrity TLVs.

        ``strict_tail=False`` reads as ``esp_secure_cert_mgr`` does on a device: the first
        word that is not the magic ends the list (erased flash behind flash encryption
        reads as noise, not 0xFF)."""
        entries: list[Tlv] = []
        pos = 0
        while pos + 4 <= len(data):
            (magic,) = struct.unpack_from("<I", data, pos)
            if magic != MAGIC:
                break
            if pos + _HEADER.size > len(data):
                raise FormatError(
                    "truncated TLV header",
                    offset=pos,
                    expected=f"{_HEADER.size} bytes",
                    found=f"{len(data) - pos} bytes",
                )
            _, flags, _, ttype, subtype, length = _HEADER.unpack_from(data, pos)
            end = pos + _HEADER.size + length + _padding(length) + _FOOTER.size
            if end > len(data):
                raise FormatError(
                    f"truncated TLV ({TlvType.name_of(ttype)} subtype {subtype})",
                    offset=pos,
                    field="length",
                    expected=f"{end - pos} bytes",
                    found=f"{len(data) - pos} bytes",
                )
            (stored,) = _FOOTER.unpack_from(data, end - _FOOTER.size)
            computed = crc_a(data[pos : end - _FOOTER.size])
            if stored != computed:
                raise FormatError(
                    f"CRC mismatch in {TlvType.name_of(ttype)} subtype {subtype}",
                    offset=end - _FOOTER.size,
                    field="crc",
                    expected=computed,
                    found=stored,
                )
            start = pos + _HEADER.size
            tlv = Tlv(ttype, subtype, data[start : start + length], flags)
            if check_integrity and ttype == TlvType.INTEGRITY:
                digest = hashlib.sha256(data[:pos]).digest()
                if not _hmac.compare_digest(digest, tlv.data):
                    raise FormatError(
                        "integrity TLV does not match the bytes before it",
                        offset=pos,
                        field="INTEGRITY",
                        expected=digest.hex()[:16] + "...",
                        found=tlv.data.hex()[:16] + "...",
                    )
            entries.append(tlv)
            pos = end
        if not entries:
            raise FormatError(
                "not an esp_secure_cert TLV partition",
                offset=0,
                field="magic",
                expected=f"0x{MAGIC:08x}",
                found=data[:4].hex() or "empty",
            )
        tail = data[pos:]
        if strict_tail and tail.strip(b"\xff"):
            first = pos + next(i for i, b in enumerate(tail) if b != 0xFF)
            raise FormatError(
                "data after the last TLV (a damaged TLV header?)",
                offset=first,
                field="magic",
                expected=f"0x{MAGIC:08x} or erased flash",
                found=data[first : first + 4].hex(),
            )
        return cls(tuple(entries))

    def to_bytes(self) -> bytes:
        return b"".join(t.to_bytes() for t in self.entries)

    def find(self, ttype: int, subtype: int | None = 0) -> Tlv | None:
        """The TLV of ``ttype`` and ``subtype`` (``None``: the highest subtype), as
        ``esp_secure_cert_find_tlv`` picks it (the last written entry wins)."""
        found = [t for t in self.entries if t.type == ttype]
        if subtype is not None:
            found = [t for t in found if t.subtype == subtype]
        if not found:
            return None
        if subtype is None:
            return max(found, key=lambda t: t.subtype)
        return found[-1]

    def with_integrity(self, subtype: int = 0) -> SecureCertPartition:
        """Append an integrity TLV over everything so far."""
        digest = hashlib.sha256(self.to_bytes()).digest()
        return SecureCertPartition((*self.entries, Tlv(TlvType.INTEGRITY, subtype, digest)))


# -- what the TLVs mean --------------------------------------------------------------------


def encode_certificate(data: bytes, *, source: str | None = None) -> bytes:
    """A certificate as esp-secure-cert-tool stores it: PEM re-encoded plus NUL, or DER."""
    cert = _pem.load_certificate(data, source=source, allow_der=True)
    if _pem.is_pem(data):
        return cert.public_bytes(serialization.Encoding.PEM) + b"\0"
    return cert.public_bytes(serialization.Encoding.DER)


def encode_private_key(data: bytes, *, source: str | None = None) -> bytes:
    """A private key as the tool stores it: traditional OpenSSL PEM plus NUL, or DER."""
    fmt = serialization.PrivateFormat.TraditionalOpenSSL
    none = serialization.NoEncryption()
    key = _pem.load_private_key(data, source=source, allow_der=True)
    if _pem.is_pem(data):
        return key.private_bytes(serialization.Encoding.PEM, fmt, none) + b"\0"
    return key.private_bytes(serialization.Encoding.DER, fmt, none)


def load_stored_certificate(data: bytes) -> x509.Certificate:
    """A certificate as stored in a TLV (PEM with NUL, or DER)."""
    return _pem.load_certificate(data.rstrip(b"\0"), allow_der=True)


def load_stored_private_key(data: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A plaintext private key as stored in a TLV."""
    return _pem.load_private_key(data.rstrip(b"\0"), allow_der=True)


def hmac_encrypt(plaintext: bytes, mac: Mac) -> bytes:
    """TLV data for flag ``0x80`` (``esp_secure_cert_encrypt_with_hmac``): AES-256-GCM under
    HMAC_UP(FF x 32), IV the first 16 bytes of HMAC_UP(ABCDABCD x 8), no AAD; the
    ciphertext, then the 16-byte tag."""
    key = mac(HMAC_ENCRYPTION_KEY_MESSAGE)
    iv = mac(HMAC_ENCRYPTION_IV_MESSAGE)[:16]
    return AESGCM(key).encrypt(iv, plaintext, None)


def hmac_decrypt(data: bytes, mac: Mac) -> bytes:
    """Open flag-``0x80`` TLV data; :class:`FormatError` if the tag does not verify."""
    key = mac(HMAC_ENCRYPTION_KEY_MESSAGE)
    iv = mac(HMAC_ENCRYPTION_IV_MESSAGE)[:16]
    try:
        return AESGCM(key).decrypt(iv, data, None)
    except InvalidTag:
        raise FormatError(
            "HMAC-encrypted TLV does not decrypt (another HMAC_UP key, or corrupt data)"
        ) from None


def pbkdf2_hmac(mac: Mac, salt: bytes, iterations: int, length: int) -> bytes:
    """PBKDF2-HMAC-SHA256 with the HMAC peripheral as the PRF (``esp_pbkdf2_hmac_sha256``)."""
    out = b""
    block = 1
    while len(out) < length:
        u = mac(salt + block.to_bytes(4, "big"))
        acc = bytearray(u)
        for _ in range(1, iterations):
            u = mac(u)
            for i, b in enumerate(u):
                acc[i] ^= b
        out += bytes(acc)
        block += 1
    return out[:length]


def hmac_derived_ecdsa_key(mac: Mac, salt: bytes) -> ec.EllipticCurvePrivateKey:
    """The P-256 key ``esp_secure_cert_gen_ecdsa_key`` derives (flag ``0x40``)."""
    scalar = int.from_bytes(
        pbkdf2_hmac(mac, salt, KEY_DERIVATION_ITERATIONS, DERIVED_ECDSA_KEY_SIZE), "big"
    )
    try:
        return ec.derive_private_key(scalar, ec.SECP256R1())
    except ValueError:
        raise KeyFormatError("the derived ECDSA scalar is out of range for P-256") from None


# -- building ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DsKey:
    """A private key kept in the DS peripheral: its ``esp_ds_data_t`` and HMAC key id."""

    data: DsData
    efuse_key_id: int


def build(
    *,
    ca_certs: Sequence[bytes] = (),
    device_cert: bytes | None = None,
    private_key: bytes | None = None,
    ds: DsKey | None = None,
    ecdsa_key_id: int | None = None,
    hmac_encrypt_key: Mac | None = None,
    hmac_derived_salt: bytes | None = None,
    user_data: Mapping[int, bytes] | Iterable[tuple[int, bytes]] = (),
    integrity: bool = True,
) -> SecureCertPartition:
    """An ``esp_secure_cert`` partition, TLVs in esp-secure-cert-tool's order.

    ``private_key`` (PEM or DER, re-encoded as the tool does) is stored in plaintext,
    unless ``hmac_encrypt_key`` is given (flag 0x80: encrypted under the device's
    ``HMAC_UP`` key). ``ds``: the key lives in the DS peripheral (DS_DATA + DS_CONTEXT,
    no key TLV). ``ecdsa_key_id``: the key lives in an eFuse block for the ECDSA
    peripheral (SEC_CFG + an empty key TLV with flag 0x08; the tool would store the
    plaintext key too, espsec does not). ``hmac_derived_salt``: the key is derived on the
    device from its ``HMAC_UP`` key (salt TLV + empty key TLV with flag 0x40).
    ``user_data``: ``(n, bytes)`` for ``ESP_SECURE_CERT_USER_DATA_n`` (1..5).
    """
    holders = (private_key, ds, ecdsa_key_id, hmac_derived_salt)
    if sum(h is not None for h in holders) > 1:
        raise UsageError(
            "give one private key source: a key file, DS data, an ECDSA eFuse key or an "
            "HMAC-derived key"
        )
    if hmac_encrypt_key is not None and private_key is None:
        raise UsageError("HMAC encryption applies to a private key file")
    entries: list[Tlv] = []
    if ds is not None:
        if not 0 <= ds.efuse_key_id <= 5:
            raise UsageError(f"eFuse key id must be 0..5, found {ds.efuse_key_id}")
        context = DsContext(ds.efuse_key_id, ds.data.bits)
        entries.append(Tlv(TlvType.DS_DATA, 0, ds.data.to_bytes()))
        entries.append(Tlv(TlvType.DS_CONTEXT, 0, context.to_bytes()))
    if ecdsa_key_id is not None:
        if not 0 <= ecdsa_key_id <= 5:
            raise UsageError(f"eFuse key id must be 0..5, found {ecdsa_key_id}")
        entries.append(Tlv(TlvType.SEC_CFG, 0, SecCfg(ecdsa_key_id + 4).to_bytes()))
    for i, ca in enumerate(ca_certs):
        entries.append(Tlv(TlvType.CA_CERT, i, encode_certificate(ca)))
    if device_cert is not None:
        entries.append(Tlv(TlvType.DEV_CERT, 0, encode_certificate(device_cert)))
    if private_key is not None:
        stored = encode_private_key(private_key)
        if hmac_encrypt_key is not None:
            sealed = hmac_encrypt(stored, hmac_encrypt_key)
            entries.append(Tlv(TlvType.PRIV_KEY, 0, sealed, FLAG_HMAC_ENCRYPTION))
        else:
            entries.append(Tlv(TlvType.PRIV_KEY, 0, stored))
    elif ecdsa_key_id is not None:
        entries.append(Tlv(TlvType.PRIV_KEY, 0, b"", FLAG_KEY_ECDSA_PERIPHERAL))
    elif hmac_derived_salt is not None:
        entries.append(Tlv(TlvType.HMAC_ECDSA_KEY_SALT, 0, hmac_derived_salt))
        entries.append(Tlv(TlvType.PRIV_KEY, 0, b"", FLAG_HMAC_ECDSA_KEY_DERIVATION))
    pairs = user_data.items() if isinstance(user_data, Mapping) else user_data
    for n, value in pairs:
        if not 1 <= n <= 5:
            raise UsageError(f"user data slots are 1..5, found {n}")
        entries.append(Tlv(TlvType.USER_DATA_1 + n - 1, 0, value))
    partition = SecureCertPartition(tuple(entries))
    if integrity:
        partition = partition.with_integrity()
    size = len(partition.to_bytes())
    if size > PARTITION_SIZE:
        raise UsageError(
            f"the TLVs take {size} bytes; the esp_secure_cert partition holds {PARTITION_SIZE}"
        )
    return partition


# -- reading: what a partition holds, in any format ------------------------------------------

_FLAG_NAMES = (
    (FLAG_HMAC_ENCRYPTION, _HMAC_FLAGS_MASK, "HMAC_ENCRYPTION"),
    (FLAG_HMAC_ECDSA_KEY_DERIVATION, _HMAC_FLAGS_MASK, "HMAC_ECDSA_KEY_DERIVATION"),
    (FLAG_KEY_ECDSA_PERIPHERAL, _KEY_FLAGS_MASK, "KEY_ECDSA_PERIPHERAL"),
)


def flag_names(flags: int) -> list[str]:
    """The flag meanings of a TLV (``0xFF`` is an old partition's unset byte)."""
    if flags == 0xFF:
        return ["unset (0xFF)"]
    return [name for value, mask, name in _FLAG_NAMES if flags & mask == value]


def _cert_info(data: bytes) -> dict[str, object]:
    try:
        cert = load_stored_certificate(data)
    except _pem.PemError:
        return {"certificate": "does not parse"}
    return {
        "encoding": "PEM" if data.startswith(b"-----BEGIN") else "DER",
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "key": key_kind(cert.public_key()),
    }


def describe_tlv(tlv: Tlv) -> dict[str, object]:
    """A JSON-able description of one TLV; never any private key or secret bytes."""
    info: dict[str, object] = {
        "type": tlv.type,
        "name": TlvType.name_of(tlv.type),
        "subtype": tlv.subtype,
        "flags": tlv.flags,
        "flag_names": flag_names(tlv.flags),
        "length": len(tlv.data),
    }
    kind = tlv.type
    if kind in (TlvType.CA_CERT, TlvType.DEV_CERT):
        info.update(_cert_info(tlv.data))
    elif kind == TlvType.PRIV_KEY:
        if tlv.hmac_encrypted:
            info["key"] = "encrypted under the device's HMAC_UP key (AES-GCM)"
        elif tlv.hmac_derived_ecdsa:
            info["key"] = "ECDSA P-256, derived on the device from its HMAC_UP key and salt"
        elif tlv.ecdsa_peripheral and not tlv.data:
            info["key"] = "in an eFuse key block (ECDSA peripheral; see SEC_CFG)"
        else:
            try:
                kind_name = key_kind(load_stored_private_key(tlv.data))
            except KeyFormatError:
                kind_name = "unparseable"
            info["key"] = f"{kind_name} private key in plaintext"
            if tlv.ecdsa_peripheral:
                info["warning"] = "plaintext key stored although the key is in eFuse"
    elif kind == TlvType.DS_DATA:
        try:
            ds = DsData.parse(tlv.data)
            info.update(rsa_bits=ds.bits, ds_bits=ds.max_bits, iv=ds.iv.hex())
        except FormatError as exc:
            info["error"] = exc.message
    elif kind == TlvType.DS_CONTEXT:
        try:
            ctx = DsContext.parse(tlv.data)
            info.update(efuse_key_id=ctx.efuse_key_id, rsa_bits=ctx.rsa_bits)
        except FormatError as exc:
            info["error"] = exc.message
    elif kind == TlvType.SEC_CFG:
        try:
            cfg = SecCfg.parse(tlv.data)
            info.update(efuse_block=cfg.priv_key_efuse_block, efuse_key_id=cfg.key_id)
        except FormatError as exc:
            info["error"] = exc.message
    elif kind == TlvType.INTEGRITY:
        info["sha256"] = tlv.data.hex()
    elif kind == TlvType.SIGNATURE_BLOCK and len(tlv.data) >= 16:
        version, offset, length, algorithm = struct.unpack_from("<B3xIIB", tlv.data)
        names = {0: "rsa3072", 1: "ecdsa192", 2: "ecdsa256", 3: "ecdsa384"}
        info.update(
            version=version,
            signed_offset=offset,
            signed_length=length,
            algorithm=names.get(algorithm, str(algorithm)),
        )
    else:
        info["sha256"] = hashlib.sha256(tlv.data).hexdigest()
    return info


@dataclass(frozen=True)
class SecureCertContents:
    """What an ``esp_secure_cert`` partition gives a device, whatever its format."""

    format: str
    """``tlv``, ``cust_flash``, ``cust_flash_legacy`` or ``nvs``."""
    ca_certs: tuple[bytes, ...] = ()
    device_cert: bytes | None = None
    private_key: bytes | None = field(default=None, repr=False)
    """Plaintext key bytes as stored (PEM with NUL, or DER)."""
    ds: DsKey | None = None
    ecdsa_key_id: int | None = None
    hmac_encrypted_key: bytes | None = field(default=None, repr=False)
    hmac_derived_salt: bytes | None = None

    @property
    def key_source(self) -> str:
        if self.ds is not None:
            return "ds"
        if self.ecdsa_key_id is not None:
            return "ecdsa-peripheral"
        if self.hmac_encrypted_key is not None:
            return "hmac-encrypted"
        if self.hmac_derived_salt is not None:
            return "hmac-derived"
        return "plaintext" if self.private_key is not None else "none"


def contents(partition: SecureCertPartition) -> SecureCertContents:
    """The certificates and key source of a TLV partition."""
    ca = tuple(
        t.data
        for t in sorted(
            (t for t in partition.entries if t.type == TlvType.CA_CERT), key=lambda t: t.subtype
        )
    )
    dev = partition.find(TlvType.DEV_CERT)
    key = partition.find(TlvType.PRIV_KEY)
    ds_tlv, ctx_tlv = partition.find(TlvType.DS_DATA), partition.find(TlvType.DS_CONTEXT)
    cfg = partition.find(TlvType.SEC_CFG)
    salt = partition.find(TlvType.HMAC_ECDSA_KEY_SALT)
    ds = None
    if ds_tlv is not None and ctx_tlv is not None:
        ds = DsKey(DsData.parse(ds_tlv.data), DsContext.parse(ctx_tlv.data).efuse_key_id)
    ecdsa = SecCfg.parse(cfg.data).key_id if cfg is not None else None
    plain = enc = derived = None
    if key is not None:
        if key.hmac_encrypted:
            enc = key.data
        elif key.hmac_derived_ecdsa:
            if salt is None:
                raise FormatError(
                    "HMAC-derived key without its salt TLV", field="HMAC_ECDSA_KEY_SALT"
                )
            derived = salt.data
        elif key.data and ds is None:
            plain = key.data
    return SecureCertContents(
        "tlv",
        ca,
        dev.data if dev is not None else None,
        plain if ecdsa is None else None,
        ds,
        ecdsa,
        enc,
        derived,
    )


_CUST_META_SIZE = 64
_CUST_DEV_OFFSET = 64
_CUST_CA_OFFSET = _CUST_DEV_OFFSET + 2048
_CUST_KEY_OFFSET = _CUST_CA_OFFSET + 4096
_CUST_MAGIC = 0x12345678


def _cust_field(data: bytes, meta_off: int, data_off: int, what: str) -> bytes:
    crc, length = struct.unpack_from("<IH", data, meta_off)
    if length == 0:
        return b""
    blob = data[data_off : data_off + length]
    if len(blob) != length or crc_a(blob) != crc:
        raise FormatError(
            f"cust_flash {what} does not match its CRC",
            offset=meta_off,
            field=f"{what}_crc",
            expected=crc,
            found=crc_a(blob),
        )
    return blob


def read_cust_flash(data: bytes) -> SecureCertContents:
    """The legacy ``cust_flash`` format (and the older ``pre_prov`` one with CA and device
    certificate fields swapped), told apart by which CRC matches."""
    if len(data) < _CUST_KEY_OFFSET:
        raise FormatError("too short for a cust_flash partition", offset=0, found=len(data))
    (plain_magic,) = struct.unpack_from("<I", data, 24)
    (ds_magic,) = struct.unpack_from("<I", data, 36)
    if _CUST_MAGIC not in (plain_magic, ds_magic):
        raise FormatError(
            "not a cust_flash partition", offset=24, field="magic_word", expected=_CUST_MAGIC
        )
    fmt = "cust_flash"
    try:
        dev = _cust_field(data, 0, _CUST_DEV_OFFSET, "dev_cert")
        ca = _cust_field(data, 8, _CUST_CA_OFFSET, "ca_cert")
    except FormatError:
        fmt = "cust_flash_legacy"
        dev = _cust_field(data, 8, _CUST_DEV_OFFSET, "dev_cert")
        ca = _cust_field(data, 0, _CUST_CA_OFFSET, "ca_cert")
    if plain_magic == _CUST_MAGIC:
        key = _cust_field(data, 16, _CUST_KEY_OFFSET, "priv_key")
        return SecureCertContents(fmt, (ca,) if ca else (), dev or None, key or None)
    c = _cust_field(data, 16, _CUST_KEY_OFFSET, "ciphertext")
    (c_len,) = struct.unpack_from("<H", data, 20)
    iv = _cust_field(data, 24, _CUST_KEY_OFFSET + c_len + 16, "iv")
    bits, key_id = struct.unpack_from("<HB", data, 30)
    ds = DsKey(DsData.parse(struct.pack("<I", bits // 32 - 1) + iv + c), key_id)
    return SecureCertContents(fmt, (ca,) if ca else (), dev or None, ds=ds)


def read_nvs(data: bytes) -> SecureCertContents:
    """The legacy NVS format: namespace ``esp_secure_cert`` (or ``pre_prov``)."""
    from espsec.nvs import read_partition

    nvs = read_partition(data)
    namespace = next((n for n in (PARTITION_NAME, "pre_prov") if n in nvs.namespaces), None)
    if namespace is None:
        raise FormatError(
            "NVS partition has no esp_secure_cert or pre_prov namespace",
            field="namespace",
            found=", ".join(nvs.namespaces) or "none",
        )
    values: dict[str, Any] = {e.key: e.value for e in nvs.entries if e.namespace == namespace}

    def raw(name: str) -> bytes | None:
        value = values.get(name)
        if value is None:
            return None
        return value.encode() + b"\0" if isinstance(value, str) else bytes(value)

    ds = None
    if "cipher_c" in values:
        bits, key_id, iv = values.get("rsa_len"), values.get("ds_key_id"), raw("iv")
        if not isinstance(bits, int) or not isinstance(key_id, int) or iv is None:
            raise FormatError("NVS DS entries incomplete", field="rsa_len/ds_key_id/iv")
        c = raw("cipher_c") or b""
        ds = DsKey(DsData.parse(struct.pack("<I", bits // 32 - 1) + iv + c), key_id)
    ca = raw("ca_cert")
    return SecureCertContents("nvs", (ca,) if ca else (), raw("dev_cert"), raw("priv_key"), ds)


_NVS_LIVE_PAGE = (0xFFFFFFFE, 0xFFFFFFFC)
"""NVS page states ACTIVE and FULL (``nvs_page.hpp``)."""


def _u32(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<I", data, offset)[0]
    return value


def read_any(data: bytes, *, on_device: bool = False) -> SecureCertContents:
    """Whatever format ``data`` is in: TLV, cust_flash (either variant) or NVS.

    ``on_device``: partition contents read through flash encryption (see
    :meth:`SecureCertPartition.parse`, ``strict_tail``)."""
    if data[:4] == struct.pack("<I", MAGIC):
        return contents(SecureCertPartition.parse(data, strict_tail=not on_device))
    if len(data) >= 40 and _CUST_MAGIC in struct.unpack_from("<I", data, 24) + struct.unpack_from(
        "<I", data, 36
    ):
        return read_cust_flash(data)
    if (
        len(data) >= 4096
        and len(data) % 4096 == 0
        and data[:4] in (b"\xfe\xff\xff\xff", b"\xfc\xff\xff\xff")
    ):
        return read_nvs(data)
    raise FormatError(
        "not an esp_secure_cert partition (TLV, cust_flash or NVS)",
        offset=0,
        field="magic",
        expected=f"0x{MAGIC:08x}, cust_flash magic 0x{_CUST_MAGIC:08x} or an NVS page",
        found=data[:4].hex() or "empty",
    )
