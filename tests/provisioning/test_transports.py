"""Provisioning over every transport and security version; the BLE GATT layout."""

from __future__ import annotations

import pytest

from espsec.provisioning.errors import ProtocommError
from espsec.provisioning.protocomm import (
    BleSimTransport,
    ConsoleServer,
    ConsoleTransport,
    GattServer,
    HttpTransport,
    ProtocommHttpServer,
)
from espsec.provisioning.protocomm.ble_sim import (
    ATT_PREPARE_QUEUE_FULL,
    FALLBACK_SERVICE_UUID,
    PREPARE_BUF_MAX,
    USER_DESCRIPTION_UUID,
    AttError,
    characteristic_uuid,
)
from espsec.provisioning.protocomm.security import INVALID_SESSION
from espsec.provisioning.prov_client import ProvClient

from .helpers import client_kwargs, prov_device


@pytest.mark.parametrize("sec_ver", [0, 1, 2])
@pytest.mark.parametrize("transport", ["httpd", "ble-sim", "console"])
def test_provisions_wifi_over_every_transport_and_security(sec2_creds, sec_ver, transport):
    pc, service = prov_device(sec_ver, sec2_creds)
    server = None
    if transport == "httpd":
        server = ProtocommHttpServer(pc).start()
        link = HttpTransport(server.address)
    elif transport == "ble-sim":
        link = BleSimTransport(GattServer(pc), mtu=23)
    else:
        link = ConsoleTransport(ConsoleServer(pc).run_line)
    try:
        client = ProvClient.connect(link, sec_ver, **client_kwargs(sec_ver))
        assert [ap["ssid"] for ap in client.scan()][:2] == ["home", "mixed"]
        status = client.provision(b"home", b"secret123")
        assert client.custom_data(b"hello") == b"SUCCESS"
    finally:
        if server is not None:
            server.stop()
    assert status.state == "connected" and status.connected["ssid"] == "home"
    assert service.store.load().ssid == b"home"
    assert service.custom_data == [b"hello"]


def test_version_endpoint_reports_security_and_capabilities(sec2_creds):
    for sec_ver, cap in [(0, "no_sec"), (2, None)]:
        pc, _ = prov_device(sec_ver, sec2_creds)
        client = ProvClient.connect(
            ConsoleTransport(ConsoleServer(pc).run_line), sec_ver, **client_kwargs(sec_ver)
        )
        assert client.version.sec_ver == sec_ver and client.version.ver == "v1.1"
        assert "wifi_scan" in client.version.capabilities
        if cap:
            assert cap in client.version.capabilities


def test_ble_characteristic_uuids_replace_the_16_bit_part_of_the_service_uuid(sec2_creds):
    pc, _ = prov_device(2, sec2_creds)
    server = GattServer(pc)
    uuids = {c.name: c.uuid for c in server.characteristics}
    assert uuids["prov-session"] == "021aff51-0382-4aea-bff4-6b3f1c5adfb4"
    assert uuids["proto-ver"] == characteristic_uuid(FALLBACK_SERVICE_UUID, 0xFF53)
    assert uuids["prov-ctrl"].startswith("021aff4f")
    assert uuids["custom-data"].startswith("021aff54")
    link = server.connect()
    for name, uuid in uuids.items():
        assert server.read_descriptor(link.conn_id, uuid, USER_DESCRIPTION_UUID) == name.encode()


def test_ble_long_values_are_fragmented_to_the_mtu(sec2_creds):
    pc, _ = prov_device(2, sec2_creds)
    small = BleSimTransport(GattServer(pc), mtu=23)
    ProvClient.connect(small, 2, **client_kwargs(2))
    big = BleSimTransport(GattServer(pc), mtu=517)
    ProvClient.connect(big, 2, **client_kwargs(2))
    # a 384-byte SRP public key takes 22 prepare writes of 18 bytes at MTU 23
    assert small.link.packets > 4 * big.link.packets


def test_ble_prepare_queue_has_a_limit(sec2_creds):
    pc, _ = prov_device(2, sec2_creds)
    server = GattServer(pc)
    link = server.connect(mtu=517)
    uuid = link.discover()["prov-session"]
    with pytest.raises(AttError) as err:
        link.write_value(uuid, b"\x00" * (PREPARE_BUF_MAX + 1))
    assert err.value.code == ATT_PREPARE_QUEUE_FULL


def test_ble_disconnect_closes_the_session(sec2_creds):
    pc, _ = prov_device(2, sec2_creds)
    server = GattServer(pc)
    transport = BleSimTransport(server)
    client = ProvClient.connect(transport, 2, **client_kwargs(2))
    transport.close()
    assert pc.log.events[-1].event == "closed"
    other = BleSimTransport(server)
    other.lookup = transport.lookup
    with pytest.raises(ProtocommError) as err:
        other.send("prov-config", client.session.security.encrypt(b"\x08\x00"))
    assert err.value.status == INVALID_SESSION


def test_console_lines_are_endpoint_session_and_hex(sec2_creds):
    pc, _ = prov_device(0, sec2_creds)
    console = ConsoleServer(pc)
    reply = console.run_line("proto-ver 7 2d2d2d")
    assert bytes.fromhex(reply).startswith(b'{"prov":')
    assert console.run_line("proto-ver 7 zz").startswith("error: InvalidArgument")
    assert console.run_line("nope 7 00").startswith("error: InvalidArgument")
