"""The physical storage every layer above writes to: the NOR flash chip and power cuts.

One model of SPI NOR flash (:class:`NorFlash`: erase a 4 KiB sector to 0xFF, program
ANDs bits into what is there) and one power-cut mechanism (:class:`WriteCounter` armed
with a :class:`FaultPlan` raises :class:`PowerCut` instead of the Nth write). The NVS
runtime's tests and the virtual device both run on them, so NVS is tested on the same
flash the device has.

Why a package of its own: the model is chip state, like ``efuse``, and sits on that
layer (imports only :mod:`espsec.errors`). ``nvs`` (a feature) and ``device`` (an
application) both import it from above; inside ``nvs`` the device could not use it
without depending on the NVS feature, and ``image`` is for file formats, not chips.
The XTS-AES engine in front of the chip stays in :mod:`espsec.device.flash`.
"""

from __future__ import annotations

from espsec.flash.nor import SECTOR_SIZE, WRITE_ALIGN, FlashAccessError, FlashRegion, NorFlash
from espsec.flash.power import FaultPlan, PowerCut, WriteCounter, WriteKind

__all__ = [
    "SECTOR_SIZE",
    "WRITE_ALIGN",
    "FaultPlan",
    "FlashAccessError",
    "FlashRegion",
    "NorFlash",
    "PowerCut",
    "WriteCounter",
    "WriteKind",
]
