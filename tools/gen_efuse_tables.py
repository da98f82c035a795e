"""Regenerate ``src/espsec/efuse/data/<chip>.json`` from the installed espefuse.

The eFuse field tables are facts published by Espressif (ESP-IDF's
``components/efuse/<chip>/esp_efuse_table.csv``, shipped with espefuse as
``efuse_defs/<chip>.yaml``); the block map and error registers come from espefuse's
``efuse/<chip>/mem_definition.py`` and the key purposes from ``efuse/<chip>/fields.py``.
This script reads those facts and writes them as plain JSON. It imports nothing from
espsec and nothing it writes is code. ``tests/efuse/test_tables.py`` fails when the
generated tables drift from the installed espefuse.

Usage: ``.venv/bin/python tools/gen_efuse_tables.py`` (needs the ``test`` extra).
"""

from __future__ import annotations

import importlib
import json
import re
from importlib import metadata
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parent.parent / "src" / "espsec" / "efuse" / "data"

#: output table -> (espefuse package, YAML table). ESP32-P4 has two layouts: ``esp32p4``
#: (silicon before v3.0, and a fresh virtual chip) and ``esp32p4_v3.0`` (v3.0 and later:
#: 5-bit key purposes, ``SECURE_BOOT_SHA384_EN``); which one a chip uses is chip data
#: (``espsec.chips.Chip.efuse_tables``), as espefuse's ``efuse/esp32p4/fields.py`` picks it.
CHIPS = {
    "esp32s3": ("esp32s3", "esp32s3"),
    "esp32p4": ("esp32p4", "esp32p4"),
    "esp32p4_v3.0": ("esp32p4", "esp32p4_v3.0"),
}

_RESERVED = re.compile(r"^(RESERVED?_|RPT\d+_RESERVED)")


def _fields(table: dict[str, dict[str, object]]) -> list[dict[str, object]]:
    out = []
    for name, d in table.items():
        etype = str(d["type"])
        kind = "bool" if etype == "bool" else etype.split(":")[0]
        if kind not in ("bool", "uint", "bytes"):
            raise SystemExit(f"{name}: unexpected type {etype}")
        rd_dis = d["rd_dis"]
        if not (rd_dis is None or isinstance(rd_dis, int)):
            raise SystemExit(f"{name}: multi-bit rd_dis {rd_dis!r} not supported")
        meanings = eval(str(d["dict"])) if d["dict"] else {}  # noqa: S307 - trusted table
        assert int(d["start"]) == int(d["word"]) * 32 + int(d["pos"]), name  # type: ignore[call-overload]
        out.append(
            {
                "name": name,
                "block": d["blk"],
                "word": d["word"],
                "pos": d["pos"],
                "len": d["len"],
                "type": kind,
                "wr_dis": d["wr_dis"],
                "rd_dis": rd_dis,
                "alt": str(d["alt"]).split() if d["alt"] else [],
                "desc": d["desc"],
                "meanings": {str(k): v for k, v in meanings.items()},
                "visible": d["show"] == "y",
                "reserved": bool(_RESERVED.match(name)),
            }
        )
    return out


def _chip(package: str, yaml_name: str) -> dict[str, object]:
    mem = importlib.import_module(f"espefuse.efuse.{package}.mem_definition")
    fields = importlib.import_module(f"espefuse.efuse.{package}.fields")
    src = Path(mem.__file__).resolve().parents[2] / "efuse_defs" / f"{yaml_name}.yaml"
    table = yaml.safe_load(src.read_text())
    regs = mem.EfuseDefineRegisters
    base = regs.DR_REG_EFUSE_BASE
    efuses = table["EFUSES"]
    blocks = []
    for row in mem.EfuseDefineBlocks.BLOCKS:
        name, alias, idx, rd_addr, _wr, wr_dis, rd_dis, words, purpose = row
        err_reg, mask, shift, fail_bit = regs.BLOCK_ERRORS[idx]
        # A 5-bit purpose is split: KEY_PURPOSE_n (bits 0..3) and KEY_PURPOSE_n_H (bit 4),
        # as espefuse's EfuseKeyPurposeField.get/save combine them.
        high = f"{purpose}_H" if purpose and f"{purpose}_H" in efuses else None
        blocks.append(
            {
                "index": idx,
                "name": name,
                "aliases": list(alias),
                "offset": rd_addr - base,
                "words": words,
                "wr_dis": wr_dis,
                "rd_dis": rd_dis,
                "purpose_field": purpose,
                "purpose_field_high": high,
                "rs_error": None
                if mask is None
                else {"reg": err_reg - base, "shift": shift, "mask": mask, "fail_bit": fail_bit},
            }
        )
    kp = fields.EfuseKeyPurposeField
    purposes = [
        {
            "name": p[0],
            "id": p[1],
            "digest": p[2] == "DIGEST",
            "virtual": p[2] == "VIRTUAL",
            "reverse": p[3] == "Reverse",
            "read_protect": p[4] == "need_rd_protect",
        }
        for p in kp.KEY_PURPOSES
        if p not in kp.CUSTOM_KEY_PURPOSES
    ]
    return {
        "chip": package,
        "table": yaml_name,
        "source": {
            "esptool": metadata.version("esptool"),
            "table": f"espefuse/efuse_defs/{yaml_name}.yaml",
            "ver_no": table.get("VER_NO"),
        },
        "mem_size": regs.EFUSE_MEM_SIZE,
        "controller_base": base,
        "repeat_error_regs": [r - base for r in regs.BLOCK0_ERRORS],
        "pgm_data_reg": regs.EFUSE_PGM_DATA0_REG - base,
        "check_value_reg": regs.EFUSE_CHECK_VALUE0_REG - base,
        "custom_purpose_names": kp.key_purpose_len > 0,
        "blocks": blocks,
        "key_purposes": purposes,
        "fields": _fields(efuses),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for chip, (package, yaml_name) in CHIPS.items():
        data = _chip(package, yaml_name)
        (OUT / f"{chip}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {OUT / f'{chip}.json'} ({len(data['fields'])} fields)")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
