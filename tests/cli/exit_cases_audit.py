"""Exit-code rows (see ``exit_cases.py``) of ``audit`` and ``advisories``."""

from __future__ import annotations

from pathlib import Path

from .exit_cases import junk, row
from .output_cases import Kit

WEAK = Path(__file__).parents[1] / "audit" / "data" / "sdkconfig" / "weak.esp32s3"


def _sdkconfig(kit: Kit, text: str = 'CONFIG_IDF_TARGET="esp32s3"\nCONFIG_SECURE_BOOT=y\n') -> Path:
    return kit.file("sdkconfig", text.encode())


def _database(kit: Kit) -> Path:
    """The packaged advisory database and its signature, copied."""
    from espsec.audit import advisories

    data, sig = advisories.packaged()
    kit.file("advisories.json.sig", sig)
    return kit.file("advisories.json", data)


def _forged(kit: Kit) -> Path:
    """A database with a raised serial, still carrying the packaged signature."""
    from espsec.audit import advisories

    data, sig = advisories.packaged()
    kit.file("forged.json.sig", sig)
    return kit.file("forged.json", data.replace(b'"serial": 1', b'"serial": 2', 1))


row("audit", "report", 0, lambda k: ["audit", _sdkconfig(k)])
row("audit", "--fail-on high with a high finding", 1, lambda k: ["audit", "--fail-on", "high",
    WEAK], "--fail-on high")  # fmt: skip
row("audit", "not an input", 1, lambda k: ["audit", "--chip", "esp32s3", junk(k)], "junk.bin")
row("audit", "no input", 2, lambda k: ["audit"], "INPUT")
row("audit", "unknown severity", 2, lambda k: ["audit", "--fail-on", "dire", _sdkconfig(k)],
    "--fail-on")  # fmt: skip
row("advisories list", "ok", 0, lambda k: ["advisories", "list", "--data-dir", k.folder / "db"])
row("advisories list", "unknown chip", 2, lambda k: ["advisories", "list", "--chip", "esp8266"],
    "--chip")  # fmt: skip
row("advisories check", "fixed release", 0, lambda k: ["advisories", "check", "--chip",
    "esp32s3", "--data-dir", k.folder / "db", "v5.5.5"])  # fmt: skip
row("advisories check", "advisory applies", 1, lambda k: ["advisories", "check", "--chip",
    "esp32s3", "--data-dir", k.folder / "db", "v5.2.6"], "advisory finding")  # fmt: skip
row("advisories check", "neither version nor file", 2, lambda k: ["advisories", "check",
    "newest"], "neither")  # fmt: skip
row("advisories import", "the database in use", 0, lambda k: ["advisories", "import",
    "--data-dir", k.folder / "db", _database(k)])  # fmt: skip
row("advisories import", "forged serial", 1, lambda k: ["advisories", "import", "--data-dir",
    k.folder / "db", _forged(k)], "pinned")  # fmt: skip
row("advisories import", "missing file", 2, lambda k: ["advisories", "import",
    k.folder / "nothing.json"], "nothing.json")  # fmt: skip
