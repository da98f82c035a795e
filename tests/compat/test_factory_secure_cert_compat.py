"""Oracle: esp-secure-cert-tool 2.6.1 parses every esp_secure_cert partition the factory writes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from espsec.device.virtual_device import VirtualDevice
from espsec.factory import VirtualTarget, open_factory

from ..factory.kit import write_batch

TOOL = Path(sys.executable).parent / "configure_esp_secure_cert.py"


def _their_parse(folder: Path, image: bytes) -> list[dict[str, str]]:
    folder.mkdir(exist_ok=True)
    (folder / "part.bin").write_bytes(image)
    subprocess.run(
        [sys.executable, str(TOOL), "--parse_bin", "part.bin"],
        cwd=folder, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    with (folder / "esp_secure_cert_parsed_data" / "esp_secure_cert_parsed.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize(
    ("chip", "key_tlvs"),
    [
        ("esp32s3", ["ESP_SECURE_CERT_DS_DATA_TLV", "ESP_SECURE_CERT_DS_CONTEXT_TLV"]),
        ("esp32p4", ["ESP_SECURE_CERT_SEC_CFG_TLV"]),
    ],
)
def test_the_tool_parses_each_factory_partition(tmp_path, chip, key_tlvs):
    spec = write_batch(tmp_path, chip=chip, count=2)
    with open_factory(spec) as factory:
        factory.run(VirtualTarget(tmp_path / "devices"))
    for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines():
        rec = json.loads(line)
        dev = VirtualDevice.open(tmp_path / "devices" / rec["serial"])
        part = bytes(dev.flash.data[0x10000:0x12000])  # as the device holds it
        rows = _their_parse(tmp_path / f"parse-{rec['serial']}", part)
        kinds = [r["tlv_type"] for r in rows]
        assert kinds[: len(key_tlvs)] == key_tlvs
        assert "ESP_SECURE_CERT_DEV_CERT_TLV" in kinds
        dev_row = next(r for r in rows if r["tlv_type"] == "ESP_SECURE_CERT_DEV_CERT_TLV")
        folder = tmp_path / f"parse-{rec['serial']}" / "esp_secure_cert_parsed_data"
        cert = x509.load_pem_x509_certificate((folder / dev_row["data_value"]).read_bytes())
        assert cert.subject.rfc4514_string() == f"CN={rec['device_id']}"
