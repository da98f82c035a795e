"""espsec: the Espressif platform security system, host side and virtual device."""

__version__ = "0.1.0"
