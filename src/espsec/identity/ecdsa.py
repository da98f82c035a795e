"""The ECDSA peripheral (ESP32-P4, ESP32-H2): signs with a key burned into eFuse.

ESP-IDF ``docs/en/api-reference/peripherals/ecdsa.rst``, ``components/esp_security`` /
``mbedtls/port`` ECDSA drivers, eFuse tables. The private key is burned into a key block
(``espefuse burn-key BLOCK_KEYn key.pem ECDSA_KEY``), **little-endian** (espefuse's
"Reverse" purposes) and read-protected; software asks the peripheral to sign a hash or
export the public key (``esp_ecdsa_export_pubkey``), never sees the key.

Key purposes: ``ECDSA_KEY`` (1) serves P-256 and, on chips without curve-specific
purposes, P-192; where ``KEY_PURPOSE_n`` has 5 bits (ESP32-P4 v3.0), P-192 has
``ECDSA_KEY_P192`` (16) and P-384 takes two blocks, ``ECDSA_KEY_P384_H`` (18) and
``ECDSA_KEY_P384_L`` (17). espefuse's ``burn-key ... ECDSA_KEY_P384`` splits
``16 zero bytes | key (48, big-endian)`` into a high and a low half, each reversed.

``ECDSA_FORCE_USE_HARDWARE_K`` (the P4 table names it ``ECDSA_ENABLE_SOFT_K``) forces the
per-signature nonce ``k`` to come from the hardware RNG, so a deterministic (RFC 6979) or
software-supplied ``k`` is not used. On a chip without an ECDSA peripheral (ESP32-S3)
asking for one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from espsec.efuse import BlockDef, Efuses, KeyUnavailableError
from espsec.errors import EspsecError, UnsupportedError, UsageError

FORCE_HARDWARE_K_FIELDS = ("ECDSA_FORCE_USE_HARDWARE_K", "ECDSA_ENABLE_SOFT_K")


class EcdsaCurve(StrEnum):
    P192 = "P-192"
    P256 = "P-256"
    P384 = "P-384"

    @property
    def size(self) -> int:
        return {"P-192": 24, "P-256": 32, "P-384": 48}[self.value]

    @property
    def curve(self) -> ec.EllipticCurve:
        curves: dict[str, ec.EllipticCurve] = {
            "P-192": ec.SECP192R1(),
            "P-256": ec.SECP256R1(),
            "P-384": ec.SECP384R1(),
        }
        return curves[self.value]

    @property
    def hash(self) -> hashes.HashAlgorithm:
        return hashes.SHA384() if self is EcdsaCurve.P384 else hashes.SHA256()

    @classmethod
    def of(cls, curve: ec.EllipticCurve) -> EcdsaCurve:
        names = {"secp192r1": cls.P192, "secp256r1": cls.P256, "secp384r1": cls.P384}
        try:
            return names[curve.name]
        except KeyError:
            raise UsageError(f"the ECDSA peripheral has no curve {curve.name}") from None


class EcdsaError(EspsecError):
    """The peripheral refused (no key, a key of the wrong purpose, a bad request)."""

    def __init__(self, message: str, *, esp_err: str = "ESP_ERR_INVALID_ARG") -> None:
        super().__init__(f"{message} ({esp_err})")
        self.esp_err = esp_err


KeyId = int | tuple[int, int]
"""A key block id, or ``(high, low)`` block ids for P-384."""


@dataclass(frozen=True)
class EcdsaSignature:
    r: int
    s: int
    hardware_k: bool
    """The nonce came from the hardware RNG (not RFC 6979)."""

    def der(self) -> bytes:
        return encode_dss_signature(self.r, self.s)

    def raw_le(self, curve: EcdsaCurve) -> tuple[bytes, bytes]:
        """``r`` and ``s`` little-endian, as the peripheral's registers hold them."""
        return self.r.to_bytes(curve.size, "little"), self.s.to_bytes(curve.size, "little")


@dataclass(frozen=True)
class EcdsaPeripheral:
    """The ECDSA peripheral of one chip, over its eFuses (read only)."""

    efuses: Efuses

    @classmethod
    def of(cls, efuses: Efuses) -> EcdsaPeripheral:
        chip = efuses.layout.chip
        if "ecdsa" not in chip.peripherals:
            raise UnsupportedError(
                f"{chip.display_name} has no ECDSA peripheral: use the DS peripheral "
                "(RSA) for a hardware-held device key"
            )
        return cls(efuses)

    # -- eFuse facts ---------------------------------------------------------------------

    @property
    def force_hardware_k(self) -> bool:
        """``ECDSA_FORCE_USE_HARDWARE_K`` is burned."""
        layout = self.efuses.layout
        return any(
            layout.has_field(n) and bool(self.efuses.get_int(n)) for n in FORCE_HARDWARE_K_FIELDS
        )

    def _purpose_fits(self, name: str) -> bool:
        """The chip's ``KEY_PURPOSE_n`` can hold purpose ``name`` (P4 v3: 5 bits)."""
        layout = self.efuses.layout
        try:
            purpose = layout.purpose(name)
        except UsageError:
            return False
        return purpose.id >= 0 and not purpose.id >> layout.purpose_bits(layout.key_blocks[0])

    def purposes_for(self, curve: EcdsaCurve) -> tuple[str, ...]:
        """The ``KEY_PURPOSE_n`` names a key for ``curve`` may have on this chip."""
        if curve is EcdsaCurve.P384:
            return ("ECDSA_KEY_P384_H", "ECDSA_KEY_P384_L")
        if curve is EcdsaCurve.P192 and self._purpose_fits("ECDSA_KEY_P192"):
            return ("ECDSA_KEY_P192",)
        return ("ECDSA_KEY", "ECDSA_KEY_P256")

    def supports(self, curve: EcdsaCurve) -> bool:
        if curve is EcdsaCurve.P384:
            return self._purpose_fits("ECDSA_KEY_P384_H")
        return True

    def require(self, curve: EcdsaCurve) -> None:
        """Raise :class:`UnsupportedError` unless this chip's eFuses can hold a key for
        ``curve`` (P-384 needs the 5-bit purposes of ESP32-P4 v3.0+)."""
        if not self.supports(curve):
            rev = self.efuses.revision
            raise UnsupportedError(
                f"{curve.value} needs the 5-bit KEY_PURPOSE values ECDSA_KEY_P384_H/L "
                f"(ESP32-P4 v3.0+ eFuses); this {self.efuses.layout.chip.display_name} "
                f"v{rev // 100}.{rev % 100} cannot hold them"
            )

    def p384_key_id(self, high: int) -> tuple[int, int]:
        """The two key blocks of the P-384 key whose high half is in key block ``high``.

        The low half is in the first key block after it (wrapping round) with purpose
        ``ECDSA_KEY_P384_L``: where espefuse's ``burn-key BLOCK_KEYn key.pem
        ECDSA_KEY_P384`` puts it (esp-secure-cert-tool's SEC_CFG names only block ``n``).
        """
        self.require(EcdsaCurve.P384)
        blocks = self.efuses.layout.key_blocks
        self._block(high)
        low = self.efuses.layout.purpose("ECDSA_KEY_P384_L").id
        for step in range(1, len(blocks)):
            n = (high + step) % len(blocks)
            if self.efuses.key_purpose(blocks[n]) == low:
                return high, n
        raise EcdsaError(f"no ECDSA_KEY_P384_L key block for the P-384 key in {blocks[high].name}")

    def _block(self, key_id: int) -> BlockDef:
        blocks = self.efuses.layout.key_blocks
        if not 0 <= key_id < len(blocks):
            raise EcdsaError(f"eFuse key id {key_id} out of range 0..{len(blocks) - 1}")
        return blocks[key_id]

    def _key_half(self, key_id: int, accepted: tuple[str, ...]) -> int:
        block = self._block(key_id)
        value = self.efuses.key_purpose(block)
        name = self.efuses.layout.purpose_name(value)
        ids = {self.efuses.layout.purpose(n).id for n in accepted}
        if value not in ids:
            raise EcdsaError(
                f"{block.name} has key purpose {name}; expected {' or '.join(accepted)}"
            )
        try:
            return int.from_bytes(self.efuses.hardware_block(block), "little")
        except KeyUnavailableError as exc:
            raise EcdsaError(exc.message, esp_err="ESP_FAIL") from None

    def _private(self, key_id: KeyId, curve: EcdsaCurve) -> ec.EllipticCurvePrivateKey:
        self.require(curve)
        if curve is EcdsaCurve.P384:
            if not isinstance(key_id, tuple):
                raise UsageError("a P-384 key takes two key blocks: (high, low)")
            high = self._key_half(key_id[0], ("ECDSA_KEY_P384_H",))
            low = self._key_half(key_id[1], ("ECDSA_KEY_P384_L",))
            scalar = (high << 256 | low) & ((1 << 384) - 1)
        else:
            if isinstance(key_id, tuple):
                raise UsageError(f"a {curve.value} key takes one key block")
            scalar = self._key_half(key_id, self.purposes_for(curve))
            scalar &= (1 << (8 * curve.size)) - 1
        try:
            return ec.derive_private_key(scalar, curve.curve)
        except ValueError:
            raise EcdsaError(f"the eFuse key is not a valid {curve.value} private key") from None

    # -- operations -----------------------------------------------------------------------

    def key_for_tls(self, key_id: KeyId, curve: EcdsaCurve) -> ec.EllipticCurvePrivateKey:
        """Where the model stops: the eFuse key, for Python's TLS stack only (a chip's
        peripheral never releases it; ``docs/adr/0009-device-tls-key-in-peripheral.md``)."""
        return self._private(key_id, curve)

    def export_public_key(self, key_id: KeyId, curve: EcdsaCurve) -> ec.EllipticCurvePublicKey:
        """``esp_ecdsa_export_pubkey``: the public key of an eFuse key."""
        return self._private(key_id, curve).public_key()

    def sign(
        self,
        key_id: KeyId,
        curve: EcdsaCurve,
        digest: bytes,
        *,
        deterministic: bool = False,
    ) -> EcdsaSignature:
        """Sign a hash (big-endian, as computed) with the eFuse key.

        ``deterministic``: RFC 6979 ``k`` (``CONFIG_MBEDTLS_ECDSA_DETERMINISTIC``); ignored
        when ``ECDSA_FORCE_USE_HARDWARE_K`` is burned, and the signature says so.
        """
        if len(digest) < curve.size:
            raise EcdsaError(f"a {curve.value} signature needs a hash of {curve.size} bytes")
        digest = digest[: curve.size]
        algorithm = {24: hashes.SHA224(), 32: hashes.SHA256(), 48: hashes.SHA384()}[curve.size]
        # The peripheral takes the leftmost curve-size bytes of the hash as the message.
        use_det = deterministic and not self.force_hardware_k
        if curve is EcdsaCurve.P192:
            # Prehashed needs the digest size of a named hash; SHA-224 is 28 bytes, so use
            # the 32-byte form with the same leftmost 24 bytes (ECDSA truncates to 192 bits).
            digest, algorithm = digest + bytes(8), hashes.SHA256()
        key = self._private(key_id, curve)
        der = key.sign(digest, ec.ECDSA(Prehashed(algorithm), deterministic_signing=use_det))
        r, s = decode_dss_signature(der)
        return EcdsaSignature(r, s, hardware_k=not use_det)

    def sign_message(self, key_id: KeyId, curve: EcdsaCurve, message: bytes) -> bytes:
        """A DER ECDSA signature of ``message`` hashed with the curve's hash (SHA-256/384)."""
        h = hashes.Hash(curve.hash)
        h.update(message)
        return self.sign(key_id, curve, h.finalize()).der()
