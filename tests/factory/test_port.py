"""A factory run over ``--port``: the chip in download mode behind ``espsec device serve``
(``socket://``), reached through esptool's and espefuse's APIs as a real chip would be.
Afterwards the device boots from what the line wrote, with its identity and its NVS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from espsec.device.download.host import serve_folder
from espsec.device.identity import read_identity
from espsec.device.virtual_device import VirtualDevice
from espsec.device.workflow import create_device
from espsec.factory import PortTarget, open_factory
from espsec.factory.targets import virtual_mac
from espsec.nvs import NvsKeys, read_partition

from .kit import write_batch

pytestmark = [pytest.mark.slow, pytest.mark.compat]  # real esptool and espefuse


def _chip_on_the_jig(folder: Path, chip: str, serial: str) -> Path:
    """A blank chip as it leaves Espressif (its factory MAC burned), in a device folder."""
    dev = create_device(folder, chip, "1MB")
    mac = dev.efuses.field("MAC")
    dev.efuses.factory_program(
        mac.block, int.from_bytes(virtual_mac("jig", serial), "little") << mac.start
    )
    dev.save()
    return folder


@pytest.mark.parametrize("chip", ["esp32s3", "esp32p4"])
def test_factory_run_over_a_served_port_leaves_a_device_that_boots(tmp_path, chip):
    spec = write_batch(tmp_path / "line", chip=chip, count=2)
    folder = _chip_on_the_jig(tmp_path / "chip", chip, "one")
    with serve_folder(folder) as url, open_factory(spec, station="jig-1") as factory:
        summary = factory.run(PortTarget(url), limit=1)
        status = factory.status()
    assert summary.ok and summary.provisioned == 1
    assert status["counts"]["done"] == 1 and status["counts"]["free"] == 1
    (record,) = [
        json.loads(line)
        for line in (tmp_path / "line" / "out" / "manifest.jsonl").read_text().splitlines()
    ]
    assert record["target"] == url and record["verify"]["efuses"] == "5/5"

    dev = VirtualDevice.open(folder)
    assert record["mac"] == dev.efuses.get("MAC").hex(":", 1)  # type: ignore[union-attr]
    report = dev.boot()
    assert report.ok, report.refusal
    identity = read_identity(dev)
    assert identity.certificate.subject.rfc4514_string() == f"CN={record['device_id']}"
    hmac_key = dev.efuses.hardware_keys()[dev.efuses.block("BLOCK_KEY1").index]
    nvs = read_partition(
        bytes(dev.flash.data[0x9000 : 0x9000 + 0x6000]), keys=NvsKeys.from_hmac_key(hmac_key)
    )
    values = {(e.namespace, e.key): e.value for e in nvs.entries}
    assert values[("factory", "serial")] == record["serial"] == "SN00001"


def test_chip_of_another_kind_on_the_port_is_refused_and_journaled(tmp_path):
    spec = write_batch(tmp_path / "line", chip="esp32s3", count=2)
    folder = _chip_on_the_jig(tmp_path / "chip", "esp32p4", "one")
    with serve_folder(folder) as url, open_factory(spec) as factory:
        summary = factory.run(PortTarget(url), limit=1)
        status = factory.status()
    ((serial, error),) = summary.failed
    assert serial == "SN00001" and "\n" not in error
    assert error == f"the chip on {url} is esp32p4, the batch is for esp32s3"
    assert status["counts"]["failed"] == 1 and status["counts"]["free"] == 1
    assert not VirtualDevice.open(folder).efuses.hardware_keys()  # nothing burned
