"""The ``ESP_ERR_NVS_*`` results of ESP-IDF's NVS API, as one exception type."""

from __future__ import annotations

from espsec.errors import EspsecError

NOT_INITIALIZED = "ESP_ERR_NVS_NOT_INITIALIZED"
NOT_FOUND = "ESP_ERR_NVS_NOT_FOUND"
TYPE_MISMATCH = "ESP_ERR_NVS_TYPE_MISMATCH"
READ_ONLY = "ESP_ERR_NVS_READ_ONLY"
NOT_ENOUGH_SPACE = "ESP_ERR_NVS_NOT_ENOUGH_SPACE"
INVALID_NAME = "ESP_ERR_NVS_INVALID_NAME"
INVALID_HANDLE = "ESP_ERR_NVS_INVALID_HANDLE"
KEY_TOO_LONG = "ESP_ERR_NVS_KEY_TOO_LONG"
INVALID_STATE = "ESP_ERR_NVS_INVALID_STATE"
INVALID_LENGTH = "ESP_ERR_NVS_INVALID_LENGTH"
NO_FREE_PAGES = "ESP_ERR_NVS_NO_FREE_PAGES"
VALUE_TOO_LONG = "ESP_ERR_NVS_VALUE_TOO_LONG"
NEW_VERSION_FOUND = "ESP_ERR_NVS_NEW_VERSION_FOUND"
CORRUPT_KEY_PART = "ESP_ERR_NVS_CORRUPT_KEY_PART"


class NvsError(EspsecError):
    """An NVS API call failed; ``code`` is the ``ESP_ERR_NVS_*`` name ESP-IDF returns."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code


class PageFull(Exception):
    """The current page cannot take the item; the caller moves to a new page."""
