"""The HMAC peripheral: HMAC-SHA256 under an eFuse key that software never reads.

ESP-IDF ``docs/en/api-reference/peripherals/hmac.rst`` and ``components/esp_security/src/
esp_hmac.c``. A key block ``BLOCK_KEYn`` is ``HMAC_KEYn`` (``hmac_key_id_t``); its
``KEY_PURPOSE_n`` decides where the result may go:

* **upstream** (``HMAC_UP``, 8): the result goes back to software (``esp_hmac_calculate``);
  NVS encryption keys derive this way (``nvs_sec_provider.c``).
* **downstream, Digital Signature** (``HMAC_DOWN_DIGITAL_SIGNATURE``, 7, or
  ``HMAC_DOWN_ALL``, 5): the result, ``HMAC(key, 32 x 0xFF)``, goes only to the DS
  peripheral as the AES key that decrypts its RSA parameters (``esp_ds_start_sign``).
* **downstream, JTAG** (``HMAC_DOWN_JTAG``, 6, or ``HMAC_DOWN_ALL``): the peripheral compares
  ``HMAC(key, 32 x 0x00)`` with a token software gives it and, on a match, re-enables a
  soft-disabled JTAG (``esp_hmac_jtag_enable``).

A key of the wrong purpose is refused for a mode (the hardware's configuration error,
which ESP-IDF returns as ``ESP_FAIL``). Keys come from the eFuse model's hardware view,
so read protection (the normal case: ``burn-key`` read-protects HMAC keys) hides them from
software but not from the peripheral. :class:`HmacPeripheral` only reads the eFuses.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
from dataclasses import dataclass
from enum import StrEnum

from espsec.efuse import BlockDef, Efuses, KeyUnavailableError
from espsec.errors import EspsecError, UsageError

KEY_SIZE = 32
"""An HMAC key is one 256-bit eFuse key block."""
DS_KEY_MESSAGE = b"\xff" * 32
"""What the peripheral MACs in downstream DS mode: the AES key for ``esp_ds_data_t``."""
JTAG_MESSAGE = bytes(32)
"""What the peripheral MACs in downstream JTAG mode: the re-enable token."""


class HmacMode(StrEnum):
    """Where the peripheral sends its result."""

    UPSTREAM = "upstream"
    DS = "downstream-ds"
    JTAG = "downstream-jtag"


PURPOSES: dict[HmacMode, tuple[str, ...]] = {
    HmacMode.UPSTREAM: ("HMAC_UP",),
    HmacMode.DS: ("HMAC_DOWN_DIGITAL_SIGNATURE", "HMAC_DOWN_ALL"),
    HmacMode.JTAG: ("HMAC_DOWN_JTAG", "HMAC_DOWN_ALL"),
}
"""The ``KEY_PURPOSE_n`` values each mode accepts (``hmac_hal_config_key``)."""


class HmacError(EspsecError):
    """The peripheral refused: a key of the wrong purpose, no key, or a token mismatch.

    ``esp_err`` names the ESP-IDF error the device API returns.
    """

    def __init__(
        self, message: str, *, esp_err: str = "ESP_FAIL", key_unavailable: bool = False
    ) -> None:
        super().__init__(f"{message} ({esp_err})")
        self.esp_err = esp_err
        self.key_unavailable = key_unavailable
        """The key's purpose fits but the peripheral has no key (contents unknown)."""


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256, as the peripheral computes it (host-side tools use this directly)."""
    if len(key) != KEY_SIZE:
        raise UsageError(f"an HMAC key is {KEY_SIZE} bytes, found {len(key)}")
    return _hmac.new(key, message, hashlib.sha256).digest()


def ds_aes_key(hmac_key: bytes) -> bytes:
    """The AES-256 key that encrypts DS parameters for ``hmac_key`` (host side)."""
    return hmac_sha256(hmac_key, DS_KEY_MESSAGE)


@dataclass(frozen=True)
class HmacPeripheral:
    """The HMAC peripheral of one chip, over its eFuses (read only)."""

    efuses: Efuses

    @property
    def key_count(self) -> int:
        return len(self.efuses.layout.key_blocks)

    def key_block(self, key_id: int) -> BlockDef:
        """``HMAC_KEYn`` is ``BLOCK_KEYn``."""
        blocks = self.efuses.layout.key_blocks
        if not 0 <= key_id < len(blocks):
            raise HmacError(
                f"HMAC key id {key_id} out of range 0..{len(blocks) - 1}",
                esp_err="ESP_ERR_INVALID_ARG",
            )
        return blocks[key_id]

    def key_id(self, block: str) -> int:
        """The ``hmac_key_id_t`` of a key block name (``BLOCK_KEY3`` -> 3)."""
        found = self.efuses.layout.block(block)
        blocks = self.efuses.layout.key_blocks
        if found not in blocks:
            raise UsageError(f"{found.name} is not a key block")
        return blocks.index(found)

    def purpose(self, key_id: int) -> str:
        block = self.key_block(key_id)
        return self.efuses.layout.purpose_name(self.efuses.key_purpose(block))

    def accepts(self, key_id: int, mode: HmacMode) -> bool:
        """The key block's purpose allows ``mode``."""
        return self.purpose(key_id) in PURPOSES[mode]

    def _key(self, key_id: int, mode: HmacMode) -> bytes:
        block = self.key_block(key_id)
        purpose = self.purpose(key_id)
        if purpose not in PURPOSES[mode]:
            raise HmacError(
                f"HMAC key {key_id} ({block.name}) has purpose {purpose}; {mode.value} mode "
                f"needs {' or '.join(PURPOSES[mode])}"
            )
        try:
            return self.efuses.hardware_block(block)
        except KeyUnavailableError as exc:
            raise HmacError(f"HMAC key {key_id}: {exc.message}", key_unavailable=True) from None

    def calculate(self, key_id: int, message: bytes) -> bytes:
        """``esp_hmac_calculate``: upstream mode, the MAC goes back to software."""
        return hmac_sha256(self._key(key_id, HmacMode.UPSTREAM), message)

    def downstream_ds(self, key_id: int) -> bytes:
        """Downstream DS mode: the AES key the DS peripheral receives.

        Only the DS model calls this; on a chip the value never reaches software.
        """
        return hmac_sha256(self._key(key_id, HmacMode.DS), DS_KEY_MESSAGE)

    def jtag_enable(self, key_id: int, token: bytes) -> None:
        """``esp_hmac_jtag_enable``: downstream JTAG mode; raise unless ``token`` matches."""
        if len(token) != KEY_SIZE:
            raise HmacError(
                f"a JTAG token is {KEY_SIZE} bytes, got {len(token)}", esp_err="ESP_ERR_INVALID_ARG"
            )
        expected = hmac_sha256(self._key(key_id, HmacMode.JTAG), JTAG_MESSAGE)
        if not _hmac.compare_digest(expected, token):
            raise HmacError(f"the JTAG token does not match HMAC key {key_id}")
