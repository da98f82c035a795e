"""Text that came from outside (a device, a file, a server) made safe to print.

A device's report ``reason``, a device id or a release name reaches an operator's
terminal or a web page; a control character in it could move the cursor, rewrite the
screen or hide text. :func:`printable` removes the C0 and C1 control characters (and
DEL) and the Unicode bidirectional overrides; nothing else is changed.
"""

from __future__ import annotations

import re

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` as a string without control characters (tabs and newlines included)."""
    return _UNPRINTABLE.sub("", str(text))


def has_control(text: str) -> bool:
    """Whether ``text`` holds a character :func:`printable` would remove."""
    return _UNPRINTABLE.search(text) is not None
