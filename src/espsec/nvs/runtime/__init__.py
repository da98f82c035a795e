"""The NVS runtime of the virtual device: ESP-IDF's ``nvs_flash`` over a
:class:`~espsec.flash.FlashRegion`.

>>> from espsec.flash import NorFlash
>>> store = NvsStore.init(NorFlash(0x6000))
>>> with store.open("wifi") as nvs:
...     nvs.set_str("ssid", "lab")
...     nvs.get_str("ssid")
'lab'
"""

from __future__ import annotations

from espsec.nvs.runtime import errors
from espsec.nvs.runtime.errors import NvsError
from espsec.nvs.runtime.handle import NvsHandle, NvsStore, OpenMode
from espsec.nvs.runtime.storage import NvsStats

__all__ = ["NvsError", "NvsHandle", "NvsStats", "NvsStore", "OpenMode", "errors"]
