"""Pre-encrypted OTA images in the ``esp_encrypted_img`` format (RSA-3072 and ECIES-P256).

Layout (``idf-extra-components/esp_encrypted_img``: ``private_include/esp_encrypted_img_priv.h``,
``src/esp_encrypted_img.c``, ``tools/esp_enc_img_gen.py``; component v2.7.1): a 512-byte
header, then the AES-256-GCM ciphertext of the image (no AAD).

====  ====  ==========================================================================
off   size  field
====  ====  ==========================================================================
0     4     magic 0x0788B6CF (LE)
4     384   key block: RSA-3072 PKCS#1 v1.5 encryption of the 32-byte GCM key, or for
            ECIES the server's ephemeral P-256 point X‖Y (64 bytes, big-endian), the
            HKDF salt (32 bytes) and 288 zero bytes
388   16    GCM IV
404   4     bin_size (LE): ciphertext length
408   16    GCM tag
424   88    reserved (zero)
====  ====  ==========================================================================

ECIES: GCM key = HKDF-SHA256(ECDH x-coordinate, salt, info ``"_esp_enc_img_ecc"``, 32).
The device's P-256 scalar = PBKDF2-HMAC-SHA256(eFuse HMAC key, fixed salt, 2048, 32),
big-endian; the device refuses a scalar that is 0 or not below the group order.

Both schemes use the same magic: a decryptor knows its scheme from its key, as the
device knows it from ``CONFIG_PRE_ENCRYPTED_OTA_USE_RSA`` / ``_USE_ECIES``.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import (
    AEADDecryptionContext,
    Cipher,
    algorithms,
    modes,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from espsec import _pem
from espsec.errors import EspsecError, FormatError, KeyFormatError, UsageError, VerificationError
from espsec.secure_boot.keys import public_key_pem as public_key_pem  # re-exported

MAGIC = 0x0788B6CF
HEADER_SIZE = 512
KEY_BLOCK_SIZE = 384
IV_SIZE = 16
TAG_SIZE = 16
GCM_KEY_SIZE = 32
RESERVED_SIZE = HEADER_SIZE - (4 + KEY_BLOCK_SIZE + IV_SIZE + 4 + TAG_SIZE)
SERVER_POINT_SIZE = 64
KDF_SALT_SIZE = 32
HKDF_INFO = b"_esp_enc_img_ecc"
PBKDF2_SALT = bytes.fromhex("0e2160642dae76d33448e43d7720123d9f3b1eceb88e573a4e8f7fb94ff0c869")
PBKDF2_ITERATIONS = 2048
HMAC_KEY_SIZE = 32
MAX_BIN_SIZE = 0xFFFFFFFF

_HEADER = struct.Struct(f"<I{KEY_BLOCK_SIZE}s{IV_SIZE}sI{TAG_SIZE}s{RESERVED_SIZE}s")
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

_NOT_AN_IMAGE_KEY = "is not an esp_encrypted_img key (need RSA-3072 or P-256)"
_PEM_KINDS = (_pem.rsa_kind(3072), _pem.ecdsa_kind(ec.SECP256R1()))

RecipientKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
"""Who an image is encrypted for: the fleet's RSA-3072 key or a device's ECIES key."""
DecryptionKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class Scheme(StrEnum):
    """How the GCM key is carried in the key block."""

    RSA3072 = "rsa3072"
    ECIES_P256 = "ecies-p256"


@dataclass(frozen=True)
class EncryptedImageHeader:
    """The 512-byte ``esp_encrypted_img`` header."""

    key_block: bytes = field(repr=False)
    iv: bytes
    bin_size: int
    tag: bytes
    reserved: bytes = field(default=bytes(RESERVED_SIZE), repr=False)

    def __post_init__(self) -> None:
        for name, value, size in (
            ("key_block", self.key_block, KEY_BLOCK_SIZE),
            ("iv", self.iv, IV_SIZE),
            ("tag", self.tag, TAG_SIZE),
            ("reserved", self.reserved, RESERVED_SIZE),
        ):
            if len(value) != size:
                raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
        if not 0 <= self.bin_size <= MAX_BIN_SIZE:
            raise ValueError(f"bin_size out of range: {self.bin_size}")

    @classmethod
    def parse(cls, data: bytes) -> EncryptedImageHeader:
        """Parse the first 512 bytes of ``data`` (:class:`FormatError` if not a header)."""
        if len(data) < HEADER_SIZE:
            raise FormatError(
                "pre-encrypted image header truncated",
                offset=0,
                field="header",
                expected=f"{HEADER_SIZE} bytes",
                found=f"{len(data)} bytes",
            )
        magic, key_block, iv, bin_size, tag, reserved = _HEADER.unpack(data[:HEADER_SIZE])
        if magic != MAGIC:
            raise FormatError(
                "not an esp_encrypted_img image",
                offset=0,
                field="magic",
                expected=MAGIC,
                found=magic,
            )
        return cls(key_block, iv, bin_size, tag, reserved)

    def to_bytes(self) -> bytes:
        return _HEADER.pack(MAGIC, self.key_block, self.iv, self.bin_size, self.tag, self.reserved)

    @property
    def likely_scheme(self) -> Scheme:
        """The scheme the key block looks like (ECIES leaves its last 288 bytes zero).

        A guess for display only: a decryptor takes its scheme from its key.
        """
        tail = self.key_block[SERVER_POINT_SIZE + KDF_SALT_SIZE :]
        return Scheme.ECIES_P256 if tail == bytes(len(tail)) else Scheme.RSA3072


def scheme_of_key(key: RecipientKey | DecryptionKey) -> Scheme:
    """The scheme ``key`` serves; :class:`KeyFormatError` unless RSA-3072 or P-256."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size != 3072:
            raise KeyFormatError(
                f"RSA key has {key.key_size} bits; esp_encrypted_img needs RSA-3072 "
                "(a 384-byte key block)"
            )
        return Scheme.RSA3072
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyFormatError(f"ECIES key is on {key.curve.name}; the device uses P-256")
        return Scheme.ECIES_P256
    raise KeyFormatError(f"{type(key).__name__} {_NOT_AN_IMAGE_KEY}")


def recipient_id(key: RecipientKey | DecryptionKey) -> str:
    """Hex SHA-256 of the recipient's SubjectPublicKeyInfo DER: names the key a device holds.

    Devices send it in their check-in so the fleet picks the payload they can decrypt.
    """
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


# -- keys ---------------------------------------------------------------------------------


def device_private_key(hmac_key: bytes) -> ec.EllipticCurvePrivateKey:
    """The ECIES P-256 key a device derives from its HMAC eFuse key (``KEY_PURPOSE_HMAC_UP``).

    Scalar = PBKDF2-HMAC-SHA256(hmac_key, fixed salt, 2048 iterations, 32 bytes), read
    big-endian, as ``compute_ecc_key_with_hmac`` does through the HMAC peripheral.
    """
    if len(hmac_key) != HMAC_KEY_SIZE:
        raise KeyFormatError(f"HMAC eFuse key must be {HMAC_KEY_SIZE} bytes, found {len(hmac_key)}")
    raw = hashlib.pbkdf2_hmac("sha256", hmac_key, PBKDF2_SALT, PBKDF2_ITERATIONS, 32)
    return _device_key(int.from_bytes(raw, "big"))


def derive_device_key(hmac: Callable[[bytes], bytes]) -> ec.EllipticCurvePrivateKey:
    """:func:`device_private_key` as the chip computes it, the key never in software.

    ``hmac`` is the HMAC peripheral in upstream mode (``esp_hmac_calculate`` with the
    eFuse key); PBKDF2's one 32-byte block is chained through it, as
    ``esp_encrypted_img_pbkdf2_hmac_sha256`` does
    (idf-extra-components ``esp_encrypted_img/src/esp_encrypted_img_utilities.c``).
    """
    u = hmac(PBKDF2_SALT + (1).to_bytes(4, "big"))
    scalar = int.from_bytes(u, "big")
    for _ in range(PBKDF2_ITERATIONS - 1):
        u = hmac(u)
        scalar ^= int.from_bytes(u, "big")
    return _device_key(scalar)


def _device_key(scalar: int) -> ec.EllipticCurvePrivateKey:
    if not 0 < scalar < _P256_ORDER:
        raise KeyFormatError(
            "this HMAC key derives an invalid P-256 scalar; the device would refuse it "
            "(mbedtls_ecp_check_privkey): choose another key"
        )
    return ec.derive_private_key(scalar, ec.SECP256R1())


def device_public_key(hmac_key: bytes) -> ec.EllipticCurvePublicKey:
    """The ECIES public key to encrypt for a device with ``hmac_key`` in eFuse."""
    return device_private_key(hmac_key).public_key()


def load_recipient_key(pem: bytes) -> RecipientKey:
    """An encryption key from PEM: RSA-3072 or P-256 public key (or the public half of a
    private key), as ``esp_enc_img_gen.py encrypt`` accepts."""
    return _pem.load_public_key(pem, kinds=_PEM_KINDS, accept_private=True)


def load_decryption_key(pem: bytes) -> DecryptionKey:
    """A decryption key from PEM: the RSA-3072 private key or a device's P-256 private key."""
    return _pem.load_private_key(pem, kinds=_PEM_KINDS)


# -- encryption ---------------------------------------------------------------------------


def _hkdf(shared: bytes, salt: bytes) -> bytes:
    return HKDF(hashes.SHA256(), GCM_KEY_SIZE, salt, HKDF_INFO).derive(shared)


def encrypt_image(plaintext: bytes, recipient: RecipientKey) -> bytes:
    """Encrypt ``plaintext`` for ``recipient``: header ‖ AES-256-GCM ciphertext.

    RSA-3072: a fresh GCM key wrapped with PKCS#1 v1.5 (not OAEP: the device decrypts
    with ``PSA_ALG_RSA_PKCS1V15_CRYPT``). P-256: ECIES with a fresh ephemeral key and salt.
    """
    if len(plaintext) > MAX_BIN_SIZE:
        raise UsageError(f"image too large for esp_encrypted_img ({len(plaintext)} bytes)")
    scheme = scheme_of_key(recipient)
    iv = os.urandom(IV_SIZE)
    if isinstance(recipient, rsa.RSAPublicKey):
        gcm_key = os.urandom(GCM_KEY_SIZE)
        key_block = recipient.encrypt(gcm_key, padding.PKCS1v15())
    else:
        assert scheme is Scheme.ECIES_P256
        ephemeral = ec.generate_private_key(ec.SECP256R1())
        salt = os.urandom(KDF_SALT_SIZE)
        gcm_key = _hkdf(ephemeral.exchange(ec.ECDH(), recipient), salt)
        point = ephemeral.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )[1:]
        key_block = (point + salt).ljust(KEY_BLOCK_SIZE, b"\0")
    sealed = AESGCM(gcm_key).encrypt(iv, plaintext, None)
    header = EncryptedImageHeader(key_block, iv, len(plaintext), sealed[-TAG_SIZE:])
    return header.to_bytes() + sealed[:-TAG_SIZE]


def _unwrap_key(header: EncryptedImageHeader, key: DecryptionKey) -> bytes:
    refused = VerificationError(
        "cannot recover the image key: the image was not encrypted for this key, "
        "or its header is corrupt"
    )
    if isinstance(key, rsa.RSAPrivateKey):
        try:
            gcm_key = key.decrypt(header.key_block, padding.PKCS1v15())
        except ValueError:
            raise refused from None
        # OpenSSL's implicit rejection returns a random message instead of failing.
        if len(gcm_key) != GCM_KEY_SIZE:
            raise refused
        return gcm_key
    encoded = b"\x04" + header.key_block[:SERVER_POINT_SIZE]
    try:
        server = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), encoded)
    except ValueError:
        raise FormatError(
            "ECIES server public key is not a P-256 point",
            offset=4,
            field="key_block.server_pub_key",
        ) from None
    salt = header.key_block[SERVER_POINT_SIZE : SERVER_POINT_SIZE + KDF_SALT_SIZE]
    return _hkdf(key.exchange(ec.ECDH(), server), salt)


@dataclass(frozen=True)
class DecryptResult:
    """What :meth:`EncryptedImageDecryptor.finish` vouches for once the tag verified."""

    scheme: Scheme
    length: int
    sha256: bytes
    """SHA-256 of the whole plaintext."""


class EncryptedImageDecryptor:
    """Streaming decryption, as the device does it while the image downloads.

    :meth:`feed` returns plaintext as soon as it is decrypted. That plaintext is
    *provisional*: write it only where an unverified image may go (the inactive OTA
    slot), never act on it. :meth:`finish` checks the GCM tag; only when it returns is
    the image authentic. A failed check poisons the decryptor.
    """

    def __init__(self, key: DecryptionKey) -> None:
        self._scheme = scheme_of_key(key)
        self._key = key
        self._pending = bytearray()
        self._header: EncryptedImageHeader | None = None
        self._decryptor: AEADDecryptionContext | None = None
        self._remaining = 0
        self._hash = hashlib.sha256()
        self._state = "header"  # header -> body -> verified | failed

    def __repr__(self) -> str:
        return f"<EncryptedImageDecryptor {self._scheme.value} state={self._state}>"

    @property
    def header(self) -> EncryptedImageHeader | None:
        """The parsed header, once 512 bytes have arrived."""
        return self._header

    @property
    def verified(self) -> bool:
        """True only after :meth:`finish` checked the tag."""
        return self._state == "verified"

    @property
    def expected_length(self) -> int | None:
        """Total encrypted-image length (header + ciphertext), once the header is known."""
        return None if self._header is None else HEADER_SIZE + self._header.bin_size

    def _fail(self, exc: EspsecError) -> EspsecError:
        self._state = "failed"
        self._decryptor = None
        return exc

    def feed(self, chunk: bytes) -> bytes:
        """Consume the next bytes of the image; return provisional plaintext (maybe empty)."""
        if self._state == "failed":
            raise VerificationError("decryption already failed; start over")
        if self._state == "verified":
            raise UsageError("image already finished")
        if self._state == "header":
            self._pending += chunk
            if len(self._pending) < HEADER_SIZE:
                return b""
            data = bytes(self._pending)
            self._pending.clear()
            try:
                header = EncryptedImageHeader.parse(data)
                gcm_key = _unwrap_key(header, self._key)
            except EspsecError as exc:
                raise self._fail(exc) from None
            self._header = header
            self._remaining = header.bin_size
            self._decryptor = Cipher(
                algorithms.AES(gcm_key), modes.GCM(header.iv, header.tag)
            ).decryptor()
            self._state = "body"
            chunk = data[HEADER_SIZE:]
        if len(chunk) > self._remaining:
            raise self._fail(
                FormatError(
                    "data after the end of the ciphertext",
                    offset=HEADER_SIZE + (self._header.bin_size if self._header else 0),
                    field="bin_size",
                    expected="end of image",
                    found=f"{len(chunk) - self._remaining} more bytes",
                )
            )
        self._remaining -= len(chunk)
        assert self._decryptor is not None
        out = self._decryptor.update(chunk)
        self._hash.update(out)
        return out

    def finish(self) -> DecryptResult:
        """Check that the whole image arrived and the GCM tag verifies."""
        if self._state == "verified":
            raise UsageError("image already finished")
        if self._state == "failed":
            raise VerificationError("decryption already failed; start over")
        if self._state == "header" or self._header is None:
            raise self._fail(
                FormatError(
                    "pre-encrypted image header truncated",
                    offset=0,
                    field="header",
                    expected=f"{HEADER_SIZE} bytes",
                    found=f"{len(self._pending)} bytes",
                )
            )
        if self._remaining:
            raise self._fail(
                FormatError(
                    "ciphertext truncated",
                    offset=HEADER_SIZE,
                    field="bin_size",
                    expected=f"{self._header.bin_size} bytes",
                    found=f"{self._header.bin_size - self._remaining} bytes",
                )
            )
        assert self._decryptor is not None
        try:
            self._decryptor.finalize()
        except InvalidTag:
            raise self._fail(
                VerificationError(
                    "GCM tag does not verify: the image was modified or the wrong key was used"
                )
            ) from None
        self._state = "verified"
        self._decryptor = None
        return DecryptResult(self._scheme, self._header.bin_size, self._hash.digest())


def decrypt_image(data: bytes, key: DecryptionKey, *, chunk_size: int = 1 << 16) -> bytes:
    """Decrypt a whole image; returns the plaintext only after the GCM tag verified."""
    dec = EncryptedImageDecryptor(key)
    parts = [dec.feed(data[i : i + chunk_size]) for i in range(0, max(len(data), 1), chunk_size)]
    dec.finish()
    return b"".join(parts)
