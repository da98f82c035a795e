"""The Digital Signature (DS) peripheral: RSA with a private key software never holds.

Host side: :func:`encrypt` turns an RSA private key into ``esp_ds_data_t``
(``components/esp_security/include/esp_ds.h``), whose ciphertext only the chip whose eFuse
holds the HMAC key can open: the AES-256 key is ``HMAC(hmac_key, 32 x 0xFF)``, the key the
HMAC peripheral hands to DS in downstream mode. The layout follows ESP-IDF's
``gen_digital_signature_tests.py`` and esp-secure-cert-tool's ``configure_ds.py``
(``calculate_rsa_ds_params``)::

    esp_ds_data_t = rsa_length u32 (bits/32 - 1) | iv[16] | c[C_LEN]
    P  = Y | M | Rb | MD | M' | L | 08 x 8        (Y, M, Rb little-endian, MAX/8 bytes each)
    MD = SHA-256(Y | M | Rb | M' | L | iv)
    c  = AES-256-CBC(HMAC(hmac_key, FF x 32), iv, P)      C_LEN = 3 * MAX/8 + 48

with ``Y = d``, ``M = n``, ``Rb = 2^(2*bits) mod n``, ``M' = -n^-1 mod 2^32``, and MAX the
chip's ``SOC_RSA_MAX_BIT_LEN``.

Device side: :class:`DsPeripheral` is ``esp_ds_sign``. It asks the HMAC peripheral for the
key (a key of the wrong purpose is ``ESP_ERR_HW_CRYPTO_DS_HMAC_FAIL``; no key at all is
``ESP_ERR_HW_CRYPTO_DS_INVALID_KEY``), decrypts, and checks the digest
(``ESP_ERR_HW_CRYPTO_DS_INVALID_DIGEST``, which is what a blob made for another HMAC key
gives) and the padding (``ESP_ERR_HW_CRYPTO_DS_INVALID_PADDING``). On any failure it
returns no signature (``esp_ds_finish_sign`` zeroes the buffer).
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import os
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from espsec.chips import get_chip
from espsec.errors import EspsecError, FormatError, KeyFormatError, UnsupportedError, UsageError
from espsec.identity.hmac import HmacError, HmacPeripheral, ds_aes_key

IV_SIZE = 16
"""``ESP_DS_IV_LEN``."""
RSA_LENGTHS = {1024: 31, 2048: 63, 3072: 95, 4096: 127}
"""``esp_digital_signature_length_t``: ``ESP_DS_RSA_1024`` .. ``ESP_DS_RSA_4096``."""
SOC_RSA_MAX_BIT_LEN = {
    "esp32s2": 4096,
    "esp32s3": 4096,
    "esp32p4": 4096,
    "esp32c3": 3072,
    "esp32c6": 3072,
    "esp32h2": 3072,
}
"""The DS peripheral's largest RSA key per chip (``soc_caps.h``), which also fixes the
size of ``esp_ds_data_t``'s ciphertext."""
_PADDING = b"\x08" * 8
_HEADER = struct.Struct("<I16s")

DS_HMAC_FAIL = "ESP_ERR_HW_CRYPTO_DS_HMAC_FAIL"
DS_INVALID_KEY = "ESP_ERR_HW_CRYPTO_DS_INVALID_KEY"
DS_INVALID_DIGEST = "ESP_ERR_HW_CRYPTO_DS_INVALID_DIGEST"
DS_INVALID_PADDING = "ESP_ERR_HW_CRYPTO_DS_INVALID_PADDING"


class DsError(EspsecError):
    """``esp_ds_sign`` failed; ``esp_err`` is ESP-IDF's error name."""

    def __init__(self, message: str, *, esp_err: str) -> None:
        super().__init__(f"{esp_err}: {message}")
        self.esp_err = esp_err


def c_len(max_bits: int) -> int:
    """``ESP_DS_C_LEN`` for a chip whose DS handles keys up to ``max_bits``."""
    return 3 * max_bits // 8 + 48


def max_bits_for(chip: str) -> int:
    """``SOC_RSA_MAX_BIT_LEN`` of ``chip``; refuse a chip without a DS peripheral."""
    c = get_chip(chip)
    if "ds" not in c.peripherals or c.name not in SOC_RSA_MAX_BIT_LEN:
        raise UnsupportedError(f"{c.display_name} has no Digital Signature peripheral")
    return SOC_RSA_MAX_BIT_LEN[c.name]


def _le(value: int, size: int) -> bytes:
    return value.to_bytes(size, "little")


@dataclass(frozen=True)
class DsParams:
    """``esp_ds_p_data_t``: the plaintext RSA parameters (``Y`` is the private exponent)."""

    y: int = field(repr=False)
    m: int
    rb: int
    m_prime: int
    length: int
    """``rsa_length``: bits/32 - 1."""

    @property
    def bits(self) -> int:
        return (self.length + 1) * 32

    @classmethod
    def from_private_key(cls, key: rsa.RSAPrivateKey) -> DsParams:
        """The DS parameters of an RSA private key (1024 to 4096 bits)."""
        bits = key.key_size
        if bits not in RSA_LENGTHS:
            raise KeyFormatError(
                f"the DS peripheral signs with RSA-1024/2048/3072/4096, not RSA-{bits}"
            )
        n = key.public_key().public_numbers().n
        return cls(
            y=key.private_numbers().d,
            m=n,
            rb=pow(2, 2 * bits, n),
            m_prime=-pow(n, -1, 1 << 32) & 0xFFFFFFFF,
            length=RSA_LENGTHS[bits],
        )

    def public_key(self, e: int = 65537) -> rsa.RSAPublicKey:
        """The RSA public key ``(e, M)`` (DS keeps no ``e``; 65537 unless told)."""
        return rsa.RSAPublicNumbers(e, self.m).public_key()

    def digest(self, iv: bytes, max_bits: int) -> bytes:
        """``MD``: SHA-256 over ``Y | M | Rb | M' | L | iv``."""
        size = max_bits // 8
        body = _le(self.y, size) + _le(self.m, size) + _le(self.rb, size)
        return hashlib.sha256(body + struct.pack("<II", self.m_prime, self.length) + iv).digest()

    def plaintext(self, iv: bytes, max_bits: int) -> bytes:
        """``P``: what the ciphertext decrypts to."""
        size = max_bits // 8
        if self.m.bit_length() > max_bits:
            raise KeyFormatError(f"RSA-{self.bits} does not fit a DS peripheral of {max_bits} bits")
        return (
            _le(self.y, size)
            + _le(self.m, size)
            + _le(self.rb, size)
            + self.digest(iv, max_bits)
            + struct.pack("<II", self.m_prime, self.length)
            + _PADDING
        )


@dataclass(frozen=True)
class DsData:
    """``esp_ds_data_t``: what flash holds (in esp_secure_cert's DS_DATA TLV, or NVS)."""

    rsa_length: int
    iv: bytes
    c: bytes = field(repr=False)

    @property
    def bits(self) -> int:
        return (self.rsa_length + 1) * 32

    @property
    def max_bits(self) -> int:
        """The DS size this blob was made for (from the ciphertext length)."""
        return (len(self.c) - 48) * 8 // 3

    @classmethod
    def parse(cls, data: bytes) -> DsData:
        """Parse ``esp_ds_data_t`` for a 3072- or 4096-bit DS (1220 or 1604 bytes)."""
        sizes = {_HEADER.size + c_len(b): b for b in (3072, 4096)}
        if len(data) not in sizes:
            raise FormatError(
                "not an esp_ds_data_t",
                offset=0,
                expected=" or ".join(f"{s} bytes" for s in sizes),
                found=f"{len(data)} bytes",
            )
        rsa_length, iv = _HEADER.unpack_from(data)
        if rsa_length not in RSA_LENGTHS.values() or (rsa_length + 1) * 32 > sizes[len(data)]:
            raise FormatError(
                "unknown RSA length",
                offset=0,
                field="rsa_length",
                expected="31, 63, 95 or 127 (bits/32 - 1) within the DS size",
                found=rsa_length,
            )
        return cls(rsa_length, iv, data[_HEADER.size :])

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.rsa_length, self.iv) + self.c


def encrypt_params(
    params: DsParams, hmac_key: bytes, *, iv: bytes | None = None, max_bits: int = 4096
) -> DsData:
    """``esp_ds_encrypt_params``: encrypt ``params`` under ``hmac_key`` (host side)."""
    if max_bits not in (3072, 4096):
        raise UsageError(f"a DS peripheral handles 3072 or 4096 bits, not {max_bits}")
    if iv is None:
        iv = os.urandom(IV_SIZE)
    if len(iv) != IV_SIZE:
        raise UsageError(f"the DS IV is {IV_SIZE} bytes, found {len(iv)}")
    if params.bits > max_bits:
        raise KeyFormatError(f"RSA-{params.bits} is larger than this chip's DS ({max_bits} bits)")
    encryptor = Cipher(algorithms.AES(ds_aes_key(hmac_key)), modes.CBC(iv)).encryptor()
    c = encryptor.update(params.plaintext(iv, max_bits)) + encryptor.finalize()
    return DsData(params.length, iv, c)


def encrypt(
    key: rsa.RSAPrivateKey,
    hmac_key: bytes,
    *,
    iv: bytes | None = None,
    chip: str = "esp32s3",
) -> DsData:
    """``esp_ds_data_t`` for ``key`` on ``chip`` under ``hmac_key`` (a random IV unless given)."""
    max_bits = max_bits_for(chip)
    if key.key_size > max_bits:  # a key of the wrong size is bad input, as everywhere
        raise KeyFormatError(
            f"RSA-{key.key_size} is larger than the {get_chip(chip).display_name} DS "
            f"peripheral ({max_bits} bits)"
        )
    return encrypt_params(DsParams.from_private_key(key), hmac_key, iv=iv, max_bits=max_bits)


def decrypt(data: DsData, aes_key: bytes) -> DsParams:
    """Open ``data`` with the DS AES key and run the hardware's checks.

    Raises :class:`DsError` with ``ESP_ERR_HW_CRYPTO_DS_INVALID_DIGEST`` (the MD does not
    match: corrupt data, or a blob for another HMAC key) or ``..._INVALID_PADDING``.
    """
    max_bits = data.max_bits
    size = max_bits // 8
    decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(data.iv)).decryptor()
    p = decryptor.update(data.c) + decryptor.finalize()
    y, m, rb = (int.from_bytes(p[i * size : (i + 1) * size], "little") for i in range(3))
    md = p[3 * size : 3 * size + 32]
    m_prime, length = struct.unpack_from("<II", p, 3 * size + 32)
    padding_ok = p[3 * size + 40 :] == _PADDING
    params = DsParams(y, m, rb, m_prime, length)
    if not _hmac.compare_digest(md, params.digest(data.iv, max_bits)):
        raise DsError(
            "the DS data's digest does not match after decryption (corrupt data, or "
            "encrypted for another HMAC key)",
            esp_err=DS_INVALID_DIGEST,
        )
    if not padding_ok:
        raise DsError("the DS data's padding is wrong", esp_err=DS_INVALID_PADDING)
    return params


@dataclass(frozen=True)
class DsPeripheral:
    """The DS peripheral of a chip: signs with ``esp_ds_data_t`` and an HMAC key id."""

    hmac: HmacPeripheral
    max_bits: int

    @classmethod
    def of(cls, hmac: HmacPeripheral) -> DsPeripheral:
        return cls(hmac, max_bits_for(hmac.efuses.chip))

    def _params(self, data: DsData, key_id: int) -> DsParams:
        if data.rsa_length not in RSA_LENGTHS.values() or data.bits > self.max_bits:
            raise DsError(
                f"rsa_length {data.rsa_length} not supported", esp_err="ESP_ERR_INVALID_ARG"
            )
        if data.max_bits != self.max_bits:
            raise DsError(
                f"esp_ds_data_t made for a {data.max_bits}-bit DS, this chip's is {self.max_bits}",
                esp_err="ESP_ERR_INVALID_ARG",
            )
        try:
            aes_key = self.hmac.downstream_ds(key_id)
        except HmacError as exc:
            code = DS_INVALID_KEY if exc.key_unavailable else DS_HMAC_FAIL
            raise DsError(exc.message, esp_err=code) from None
        return decrypt(data, aes_key)

    def sign(self, message: bytes, data: DsData, key_id: int) -> bytes:
        """``esp_ds_sign``: ``message^Y mod M``; both little-endian, ``bits/8`` bytes."""
        params = self._params(data, key_id)
        size = params.bits // 8
        if len(message) != size:
            raise DsError(
                f"the message must be {size} bytes for RSA-{params.bits}",
                esp_err="ESP_ERR_INVALID_ARG",
            )
        x = int.from_bytes(message, "little")
        return pow(x, params.y, params.m).to_bytes(size, "little")

    def key_for_tls(self, data: DsData, key_id: int) -> rsa.RSAPrivateKey:
        """Where the model stops: the RSA key, for Python's TLS stack only.

        A chip's DS peripheral never releases the key; Python's ``ssl`` cannot sign through
        a callback, so the virtual device's TLS client takes it from here (after the same
        HMAC, digest and padding checks as :meth:`sign`). See
        ``docs/adr/0009-device-tls-key-in-peripheral.md``.
        """
        params = self._params(data, key_id)
        p, q = rsa.rsa_recover_prime_factors(params.m, 65537, params.y)
        return rsa.RSAPrivateNumbers(
            p,
            q,
            params.y,
            params.y % (p - 1),
            params.y % (q - 1),
            rsa.rsa_crt_iqmp(p, q),
            rsa.RSAPublicNumbers(65537, params.m),
        ).private_key()

    def public_key(self, data: DsData, key_id: int) -> rsa.RSAPublicKey:
        """The public key of the DS key (a check the device can make; ``e`` = 65537)."""
        return self._params(data, key_id).public_key()

    def sign_pkcs1v15(
        self, digest: bytes, data: DsData, key_id: int, algorithm: hashes.HashAlgorithm
    ) -> bytes:
        """An RSA PKCS#1 v1.5 signature of ``digest`` (big-endian, as X.509 and TLS use it),
        made as ESP-IDF's ``esp_ds_rsa_sign`` does: encode, reverse, DS, reverse."""
        size = data.bits // 8
        encoded = _emsa_pkcs1_v15(digest, algorithm, size)
        return self.sign(encoded[::-1], data, key_id)[::-1]


_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def _emsa_pkcs1_v15(digest: bytes, algorithm: hashes.HashAlgorithm, size: int) -> bytes:
    """EMSA-PKCS1-v1_5 (RFC 8017 9.2) of a precomputed digest."""
    prefix = _DIGEST_INFO.get(algorithm.name)
    if prefix is None or len(digest) != algorithm.digest_size:
        raise UsageError(f"cannot PKCS#1 v1.5-encode a {algorithm.name} digest")
    t = prefix + digest
    if size < len(t) + 11:
        raise UsageError("RSA key too small for this digest")
    return b"\x00\x01" + b"\xff" * (size - len(t) - 3) + b"\x00" + t
