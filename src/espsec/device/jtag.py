"""JTAG: what the eFuses allow, and soft re-enabling with the HMAC token.

* ``DIS_PAD_JTAG`` (``HARD_DIS_JTAG``) disables the pad JTAG for good; ``DIS_USB_JTAG``
  the USB-Serial-JTAG's JTAG function.
* ``SOFT_DIS_JTAG`` with an odd number of bits set soft-disables it: the HMAC peripheral
  re-enables it until the next reset when given ``HMAC-SHA256(key, 32 zero bytes)``
  under a key block whose purpose is ``HMAC_DOWN_JTAG`` or ``HMAC_DOWN_ALL``
  (ESP-IDF ``esp_hmac_jtag_enable``; ``docs/en/security/security.rst``, JTAG), and
  ``esp_hmac_jtag_disable`` disables it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from espsec.efuse import Efuses, Transaction, security_state
from espsec.efuse.security import JtagMode
from espsec.errors import EspsecError, UsageError
from espsec.identity.hmac import HmacError, HmacMode, HmacPeripheral

TOKEN_SIZE = 32


class JtagError(EspsecError):
    """The HMAC peripheral refused to re-enable JTAG."""


@dataclass(frozen=True)
class JtagStatus:
    """Whether a debugger can attach, and why."""

    efuse_mode: JtagMode
    """What eFuses say: ``enabled``, ``soft-disabled`` or ``hard-disabled``."""
    usb_jtag_disabled: bool
    reenabled: bool
    """Soft-disabled JTAG re-enabled with the HMAC token (until the next reset)."""
    hmac_blocks: tuple[str, ...]
    """Key blocks whose HMAC key can re-enable it."""

    @property
    def available(self) -> bool:
        """A debugger can attach over the pads now."""
        return self.efuse_mode == "enabled" or (
            self.efuse_mode == "soft-disabled" and self.reenabled
        )

    def describe(self) -> str:
        if self.efuse_mode == "hard-disabled":
            return "JTAG hard-disabled (DIS_PAD_JTAG): cannot be re-enabled"
        if self.efuse_mode == "soft-disabled":
            how = (
                f"HMAC token under {', '.join(self.hmac_blocks)}"
                if self.hmac_blocks
                else "no HMAC_DOWN_JTAG/HMAC_DOWN_ALL key: cannot be re-enabled"
            )
            state = "re-enabled until reset" if self.reenabled else "disabled"
            return f"JTAG soft-disabled (SOFT_DIS_JTAG), {state} ({how})"
        return "JTAG enabled"

    def to_json(self) -> dict[str, object]:
        return {
            "efuse_mode": self.efuse_mode,
            "usb_jtag_disabled": self.usb_jtag_disabled,
            "reenabled": self.reenabled,
            "available": self.available,
            "hmac_blocks": list(self.hmac_blocks),
            "summary": self.describe(),
        }


def jtag_status(efuses: Efuses, *, reenabled: bool = False) -> JtagStatus:
    """The JTAG state the eFuses (and a token given since reset) leave."""
    state = security_state(efuses).jtag
    return JtagStatus(
        efuse_mode=state.mode,
        usb_jtag_disabled=state.usb_jtag_disabled,
        reenabled=reenabled and state.mode == "soft-disabled",
        hmac_blocks=state.hmac_reenable_blocks,
    )


def hmac_jtag_enable(efuses: Efuses, token: bytes, key_block: str | None = None) -> None:
    """``esp_hmac_jtag_enable``: the HMAC peripheral checks ``token``; raise if refused.

    ``key_block`` picks the key block (``BLOCK_KEY3``); by default each
    ``HMAC_DOWN_JTAG``/``HMAC_DOWN_ALL`` block is tried. The check runs in the HMAC
    peripheral model (downstream JTAG mode), so the key never leaves it.
    """
    if len(token) != TOKEN_SIZE:
        raise UsageError(f"a JTAG token is {TOKEN_SIZE} bytes, got {len(token)}")
    status = jtag_status(efuses)
    if status.efuse_mode == "hard-disabled":
        raise JtagError("JTAG is hard-disabled (DIS_PAD_JTAG): the token cannot re-enable it")
    if status.efuse_mode == "enabled":
        raise JtagError("JTAG is not soft-disabled (SOFT_DIS_JTAG has an even bit count)")
    peripheral = HmacPeripheral(efuses)
    blocks = status.hmac_blocks
    if key_block is not None:
        name = efuses.layout.block(key_block).name
        if not peripheral.accepts(peripheral.key_id(name), HmacMode.JTAG):
            purpose = peripheral.purpose(peripheral.key_id(name))
            raise JtagError(f"{name} has purpose {purpose}, not HMAC_DOWN_JTAG/HMAC_DOWN_ALL")
        blocks = (name,)
    if not blocks:
        raise JtagError("no HMAC_DOWN_JTAG or HMAC_DOWN_ALL key is burned")
    refusal = ""
    for name in blocks:
        try:
            peripheral.jtag_enable(peripheral.key_id(name), token)
        except HmacError as exc:
            refusal = exc.message
            continue
        return
    if "does not match" in refusal or not refusal:
        raise JtagError("the JTAG token does not match the HMAC key: JTAG stays disabled")
    raise JtagError(refusal)


def soft_disable_transaction(efuses: Efuses) -> Transaction | None:
    """The burn that makes ``SOFT_DIS_JTAG`` odd (soft-disabled), or ``None`` if it is."""
    field = efuses.field("SOFT_DIS_JTAG")
    value = efuses.get_int(field)
    if bin(value).count("1") % 2:
        return None
    free = ~value & ((1 << field.length) - 1)
    if not free:
        raise UsageError("SOFT_DIS_JTAG has no unburned bit left")
    return Transaction().burn("SOFT_DIS_JTAG", value | (free & -free))
