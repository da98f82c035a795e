"""Attacks on a provisioning device over HTTP: each test is named after the attack."""

from __future__ import annotations

import http.client

import pytest

from espsec.provisioning.errors import ProtocommError, SessionError
from espsec.provisioning.proto import wifi_config_pb2
from espsec.provisioning.protocomm import (
    ClientSession,
    HttpTransport,
    ProtocommHttpServer,
    Security1Client,
    Security1Device,
    Security2Client,
    read_version,
)
from espsec.provisioning.protocomm.httpd import MAX_REQ_BODY_LEN, STATUS_HEADER
from espsec.provisioning.protocomm.security import (
    CRYPTO_ERROR,
    INVALID_ARGUMENT,
    INVALID_SEC_SCHEME,
    INVALID_SESSION,
    TOO_MANY_SESSIONS,
)
from espsec.provisioning.prov_client import ProvClient

from .helpers import PASSWORD, POP, USERNAME, client_kwargs, prov_device


def _set_config(ssid: bytes, passphrase: bytes = b"") -> bytes:
    msg = wifi_config_pb2.WiFiConfigPayload(msg=wifi_config_pb2.TypeCmdSetConfig)
    msg.cmd_set_config.ssid = ssid
    msg.cmd_set_config.passphrase = passphrase
    return msg.SerializeToString()


def _events(pc) -> list[str]:
    return [e.event for e in pc.log.events]


@pytest.fixture
def sec2_server(sec2_creds):
    pc, service = prov_device(2, sec2_creds)
    with ProtocommHttpServer(pc) as server:
        yield server, pc, service


def _sec2_session(server) -> ClientSession:
    transport = HttpTransport(server.address)
    session = ClientSession(
        transport, Security2Client(USERNAME, PASSWORD), session_endpoint="prov-session"
    )
    return session.establish()


def test_wrong_pop_is_refused_with_crypto_error_and_changes_nothing(sec2_creds):
    pc, service = prov_device(1, sec2_creds)
    with ProtocommHttpServer(pc) as server, pytest.raises(SessionError) as err:
        ProvClient.connect(HttpTransport(server.address), 1, pop=b"not the pop")
    assert err.value.status == CRYPTO_ERROR
    assert "established" not in _events(pc) and "failed" in _events(pc)
    assert service.pending is None and service.store.load() is None
    assert service.state_name == "disconnected"


@pytest.mark.parametrize("username", [USERNAME, b"someone-else"])
def test_wrong_password_or_username_is_refused_with_crypto_error(sec2_server, username):
    server, pc, service = sec2_server
    with pytest.raises(SessionError) as err:
        ProvClient.connect(
            HttpTransport(server.address), 2, username=username, password=b"wrong-password"
        )
    assert err.value.status == CRYPTO_ERROR
    assert pc.log.events[-1].status == "CryptoError"
    assert service.pending is None and service.state_name == "disconnected"


def test_replayed_request_is_refused(sec2_server):
    server, _, service = sec2_server
    session = _sec2_session(server)
    sent = session.security.encrypt(_set_config(b"home", b"secret123"))
    session.security.decrypt(session.transport.send("prov-config", sent))
    assert service.pending is not None and service.pending.ssid == b"home"
    service.pending = None
    with pytest.raises(ProtocommError) as err:
        session.transport.send("prov-config", sent)
    assert err.value.status == CRYPTO_ERROR
    assert service.pending is None


def test_reordered_requests_are_refused(sec2_server):
    server, _, service = sec2_server
    session = _sec2_session(server)
    first = session.security.encrypt(_set_config(b"home", b"secret123"))
    second = session.security.encrypt(_set_config(b"cafe"))
    with pytest.raises(ProtocommError) as err:
        session.transport.send("prov-config", second)
    assert err.value.status == CRYPTO_ERROR
    assert service.pending is None
    session.transport.send("prov-config", first)  # in order again: accepted
    assert service.pending is not None and service.pending.ssid == b"home"


@pytest.mark.parametrize("offset", [0, 5, -1])
def test_tampered_request_is_refused(sec2_server, offset):
    server, _, service = sec2_server
    session = _sec2_session(server)
    data = bytearray(session.security.encrypt(_set_config(b"home", b"secret123")))
    data[offset] ^= 0x01
    with pytest.raises(ProtocommError) as err:
        session.transport.send("prov-config", bytes(data))
    assert err.value.status == CRYPTO_ERROR
    assert service.pending is None


def test_replay_decrypts_under_sec_patch_ver_0_so_clients_refuse_it_by_default(sec2_creds):
    """Old firmware's fixed GCM nonce: the weakness sec_patch_ver 1 fixed."""
    pc, service = prov_device(2, sec2_creds, patch=0)
    with ProtocommHttpServer(pc) as server:
        transport = HttpTransport(server.address)
        info = read_version(transport, "proto-ver", "prov")
        assert info.sec_patch_ver == 0
        with pytest.raises(SessionError) as err:
            ProvClient.connect(transport, 2, username=USERNAME, password=PASSWORD)
        assert err.value.status == INVALID_SEC_SCHEME
        assert "established" not in _events(pc)
        client = Security2Client(USERNAME, PASSWORD, patch_version=0, min_patch_version=0)
        session = ClientSession(transport, client, session_endpoint="prov-session").establish()
        sent = client.encrypt(_set_config(b"home", b"secret123"))
        transport.send("prov-config", sent)
        service.pending = None
        transport.send("prov-config", sent)  # the replay is accepted
        assert service.pending is not None
        assert session.established


def test_sec1_replay_decrypts_to_noise():
    """Security 1 has one CTR keystream and no integrity check: a replayed message is
    decrypted with later keystream bytes, never to the original request."""
    device, client = Security1Device(POP), Security1Client(POP)
    device.new_session(1)
    client.handshake(lambda data: device.session_request(1, data).data)
    message = _set_config(b"home", b"secret123")
    sent = client.encrypt(message)
    assert device.decrypt(1, sent) == message
    assert device.decrypt(1, sent) != message


def test_new_session_evicts_the_previous_one(sec2_server):
    """ESP-IDF keeps one session: a second client's handshake closes the first's."""
    server, pc, _ = sec2_server
    first = _sec2_session(server)
    second = _sec2_session(server)
    with pytest.raises(ProtocommError) as err:
        first.call("prov-config", _set_config(b"home", b"secret123"))
    assert err.value.status == INVALID_SESSION
    assert "closed" in _events(pc)
    assert second.established


def test_too_many_failed_sessions_lock_the_session_endpoint(sec2_creds):
    pc, _ = prov_device(2, sec2_creds, max_failed=2)
    with ProtocommHttpServer(pc) as server:
        for _ in range(2):
            with pytest.raises(SessionError):
                ProvClient.connect(
                    HttpTransport(server.address), 2, username=USERNAME, password=b"guess"
                )
        with pytest.raises(SessionError) as err:
            ProvClient.connect(HttpTransport(server.address), 2, **client_kwargs(2))
    assert err.value.status == TOO_MANY_SESSIONS
    assert pc.locked_out and _events(pc)[-1] == "locked-out"


def test_failed_sessions_do_not_lock_by_default_as_in_esp_idf(sec2_creds):
    pc, _ = prov_device(2, sec2_creds)
    with ProtocommHttpServer(pc) as server:
        for _ in range(2):  # what locks a device with --max-failed-sessions 2
            with pytest.raises(SessionError):
                ProvClient.connect(
                    HttpTransport(server.address), 2, username=USERNAME, password=b"guess"
                )
        ProvClient.connect(HttpTransport(server.address), 2, **client_kwargs(2))
    assert not pc.locked_out and _events(pc)[-1] == "established"


def test_oversized_body_is_refused_before_it_is_read(sec2_server):
    server, pc, _ = sec2_server
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("POST", "/prov-session", b"\x00" * (MAX_REQ_BODY_LEN + 1))
    response = conn.getresponse()
    assert response.status == 413
    assert response.getheader(STATUS_HEADER) == "InvalidArgument"
    assert not pc.log.events


def test_body_of_exactly_4_kb_is_accepted(sec2_server):
    server, _, _ = sec2_server
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("POST", "/proto-ver", b"-" * MAX_REQ_BODY_LEN)
    assert conn.getresponse().status == 200


def test_request_before_the_session_is_established_is_refused(sec2_server):
    server, _, service = sec2_server
    transport = HttpTransport(server.address)
    with pytest.raises(ProtocommError) as err:
        transport.send("prov-config", _set_config(b"home", b"secret123"))
    assert err.value.status == INVALID_SESSION
    assert service.pending is None


def test_client_refuses_a_device_offering_another_security_version(sec2_creds):
    pc, _ = prov_device(1, sec2_creds)
    with ProtocommHttpServer(pc) as server, pytest.raises(SessionError) as err:
        ProvClient.connect(HttpTransport(server.address), 2, **client_kwargs(2))
    assert err.value.status == INVALID_SEC_SCHEME


def test_garbage_on_the_session_endpoint_is_refused_with_invalid_proto(sec2_server):
    server, pc, _ = sec2_server
    from espsec.provisioning.proto import session_pb2

    reply = session_pb2.SessionData()
    reply.ParseFromString(HttpTransport(server.address).send("prov-session", b"\xff\xff\xff"))
    assert reply.sec2.sr0.status != 0
    assert pc.log.events[-1].event == "failed"


def test_unknown_endpoint_is_not_found(sec2_server):
    server, _, _ = sec2_server
    with pytest.raises(Exception, match="404"):
        HttpTransport(server.address).send("no-such-endpoint", b"x")


def test_bad_scan_index_is_refused_with_invalid_argument(sec2_server):
    from espsec.provisioning.proto import wifi_scan_pb2

    server, _, _ = sec2_server
    session = _sec2_session(server)
    ask = wifi_scan_pb2.WiFiScanPayload(msg=wifi_scan_pb2.TypeCmdScanResult)
    ask.cmd_scan_result.start_index = 100
    ask.cmd_scan_result.count = 1
    reply = wifi_scan_pb2.WiFiScanPayload()
    reply.ParseFromString(session.call("prov-scan", ask.SerializeToString()))
    assert reply.status == INVALID_ARGUMENT


def test_request_to_an_unknown_endpoint_does_not_close_the_session(sec2_server):
    server, pc, service = sec2_server
    session = _sec2_session(server)
    with pytest.raises(Exception, match="404"):
        HttpTransport(server.address).send("no-such-endpoint", b"x")
    session.call("prov-config", _set_config(b"home", b"secret123"))
    assert service.pending is not None and "closed" not in _events(pc)
