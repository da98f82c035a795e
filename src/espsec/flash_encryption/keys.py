"""Flash-encryption key files, in espsecure's format.

A key file holds the raw key bytes exactly as ``espsecure encrypt-flash-data --aes-xts``
reads them (no byte reversal: ``espefuse burn-key`` reverses them when burning):

* 32 bytes (256 bits): XTS-AES-128, data key ‖ tweak key (``XTS_AES_128_KEY``);
* 64 bytes (512 bits): XTS-AES-256 (``XTS_AES_256_KEY_1`` ‖ ``XTS_AES_256_KEY_2``);
* 16 bytes (128 bits): XTS-AES-128 with the 256-bit key ``SHA-256(key)``, as chips with
  ``XTS_AES_128_KEY_DERIVED_FROM_128_EFUSE_BITS`` (ESP32-C2) derive it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from espsec._io import PathLike, read_bytes, write_secret
from espsec.errors import KeyFormatError, UsageError

if TYPE_CHECKING:
    from espsec.chips import Chip

#: Key file sizes in bits and the XTS mode each one selects.
KEY_BITS = {128: "AES-128-XTS", 256: "AES-128-XTS", 512: "AES-256-XTS"}
#: Sizes ``generate-key`` offers (the 128-bit derived form is for import only).
GENERATE_BITS = (256, 512)


@dataclass(frozen=True)
class FlashEncryptionKey:
    """A flash-encryption key as stored in a key file (never shown in reprs)."""

    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.material) * 8 not in KEY_BITS:
            raise KeyFormatError(
                "flash encryption key must be 32 bytes (XTS-AES-128) or 64 bytes "
                f"(XTS-AES-256), or 16 bytes (SHA-256-derived); found {len(self.material)} bytes"
            )

    @property
    def bits(self) -> int:
        """Size of the key file in bits: 128, 256 or 512."""
        return len(self.material) * 8

    @property
    def mode(self) -> str:
        """``AES-128-XTS`` or ``AES-256-XTS``."""
        return KEY_BITS[self.bits]

    @property
    def xts_key(self) -> bytes:
        """The XTS key the cipher uses: data key ‖ tweak key (32 or 64 bytes)."""
        if self.bits == 128:
            import hashlib  # only the 128-bit form is derived (a command loads it when used)

            return hashlib.sha256(self.material).digest()
        return self.material

    @classmethod
    def generate(cls, bits: int = 256) -> FlashEncryptionKey:
        """A new random key from the OS entropy source (256 or 512 bits)."""
        if bits not in GENERATE_BITS:
            raise UsageError(f"key size must be 256 or 512 bits, got {bits}")
        import secrets

        return cls(secrets.token_bytes(bits // 8))

    def check_chip(self, chip: Chip) -> None:
        """Raise :class:`KeyFormatError` unless ``chip`` accepts a key of this size.

        A key of the wrong size is bad input (exit 1), whichever command reads it.
        """
        if self.bits not in chip.xts_key_bits:
            accepted = ", ".join(str(b) for b in chip.xts_key_bits)
            raise KeyFormatError(
                f"{chip.display_name} does not take a {self.bits}-bit flash encryption key "
                f"(accepts: {accepted} bits)"
            )


def load_key(path: PathLike) -> FlashEncryptionKey:
    """Read a key file; a file of the wrong size raises :class:`KeyFormatError`."""
    data = read_bytes(path, what="key file")
    try:
        return FlashEncryptionKey(data)
    except KeyFormatError as exc:
        exc.source = str(path)
        raise


def generate_key_file(path: PathLike, bits: int = 256) -> FlashEncryptionKey:
    """Create a new key file (0600); refuses to overwrite an existing file."""
    key = FlashEncryptionKey.generate(bits)
    write_secret(path, key.material)
    return key
