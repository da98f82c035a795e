"""The Wi-Fi side: AP table, policy, connect results, the provisioning state machine."""

from __future__ import annotations

import json

import pytest

from espsec.errors import FormatError, UsageError
from espsec.provisioning.errors import ProtocommError
from espsec.provisioning.protocomm import ConsoleServer, ConsoleTransport
from espsec.provisioning.prov_client import ProvClient
from espsec.provisioning.wifi_prov import (
    AuthMode,
    RadioEnvironment,
    StationConfig,
    WifiPolicy,
    connect,
    parse_auth,
)

from .helpers import APS, client_kwargs, prov_device

ENV = RadioEnvironment.parse(json.dumps(APS).encode())


def _client(sec2_creds, policy=None):
    pc, service = prov_device(2, sec2_creds, policy=policy)
    client = ProvClient.connect(ConsoleTransport(ConsoleServer(pc).run_line), 2, **client_kwargs(2))
    return client, service


def test_connects_to_the_matching_ap_with_the_right_passphrase():
    result = connect(ENV, WifiPolicy(), StationConfig(b"home", b"secret123"))
    assert result.connected and result.ap is not None and result.ap.channel == 6


def test_wrong_passphrase_fails_with_auth_error():
    result = connect(ENV, WifiPolicy(), StationConfig(b"home", b"wrongpass"))
    assert not result.connected and result.fail_reason == "AuthError"
    assert result.wifi_reason == "4WAY_HANDSHAKE_TIMEOUT"


def test_unknown_ssid_fails_with_network_not_found():
    result = connect(ENV, WifiPolicy(), StationConfig(b"nowhere", b"whatever1"))
    assert result.fail_reason == "NetworkNotFound" and result.wifi_reason == "NO_AP_FOUND"


def test_ap_below_the_minimum_auth_mode_is_refused_and_reported():
    result = connect(ENV, WifiPolicy(min_auth_mode=AuthMode.WPA2_PSK), StationConfig(b"cafe"))
    assert result.fail_reason == "NetworkNotFound"
    assert result.wifi_reason == "NO_AP_FOUND_IN_AUTHMODE_THRESHOLD"
    (refused,) = result.refused
    assert refused.ap.bssid.hex() == "aabbcc000002" and "weaker than" in refused.reason


def test_wep_is_refused_by_a_wpa2_minimum():
    result = connect(
        ENV, WifiPolicy(min_auth_mode=AuthMode.WPA2_PSK), StationConfig(b"old", b"abcde")
    )
    assert not result.connected and result.refused[0].ap.auth is AuthMode.WEP


def test_pmf_required_skips_the_ap_without_pmf_and_names_it():
    result = connect(ENV, WifiPolicy(pmf_required=True), StationConfig(b"mixed", b"mixedpass"))
    assert result.connected and result.ap is not None and result.ap.bssid.hex() == "aabbcc000006"
    assert [r.ap.bssid.hex() for r in result.refused] == ["aabbcc000005"]
    assert "PMF" in result.refused[0].reason


def test_wpa3_only_refuses_wpa2_and_joins_wpa3():
    policy = WifiPolicy(wpa3_only=True)
    refused = connect(ENV, policy, StationConfig(b"home", b"secret123"))
    assert refused.fail_reason == "NetworkNotFound"
    assert refused.wifi_reason == "NO_AP_FOUND_W_COMPATIBLE_SECURITY"
    assert connect(ENV, policy, StationConfig(b"lab", b"labpass99")).connected


def test_scan_lists_strongest_first():
    assert [ap.rssi for ap in ENV.scan()] == sorted((ap.rssi for ap in ENV.scan()), reverse=True)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"ssid": "x", "bssid": "zz"}, "bssid"),
        ({"ssid": "", "bssid": "aa:bb:cc:dd:ee:ff"}, "ssid"),
        ({"ssid": "x", "bssid": "aa:bb:cc:dd:ee:ff", "auth": "wpa9"}, "auth"),
        ({"ssid": "x", "bssid": "aa:bb:cc:dd:ee:ff", "auth": "wpa2"}, "passphrase"),
        ({"ssid": "x", "bssid": "aa:bb:cc:dd:ee:ff", "rssi": 5}, "rssi"),
    ],
)
def test_bad_ap_table_entry_names_its_field(row, field):
    with pytest.raises(FormatError) as err:
        RadioEnvironment.parse(json.dumps([row]).encode(), source="wifi_aps.json")
    assert f"access_points[0].{field}" in str(err.value)
    assert "wifi_aps.json" in str(err.value)


def test_unknown_auth_mode_name_is_a_usage_error():
    assert parse_auth("WPA3-SAE") is AuthMode.WPA3_PSK
    with pytest.raises(UsageError):
        parse_auth("wpa4")


def test_failed_attempt_reports_reason_and_reset_clears_it(sec2_creds):
    client, service = _client(sec2_creds)
    status = client.provision(b"home", b"wrongpass")
    assert status.state == "failed" and status.fail_reason == "AuthError"
    client.reset()
    assert service.state_name == "disconnected" and service.store.load() is None
    assert client.provision(b"home", b"secret123").state == "connected"


def test_reset_is_refused_unless_the_last_attempt_failed(sec2_creds):
    client, _ = _client(sec2_creds)
    with pytest.raises(ProtocommError, match="InvalidArgument"):
        client.reset()


def test_provisioned_device_refuses_new_credentials_until_reprov(sec2_creds):
    client, service = _client(sec2_creds)
    assert client.provision(b"home", b"secret123").state == "connected"
    with pytest.raises(ProtocommError, match="InvalidArgument"):
        client.set_config(b"cafe", b"")
    assert service.store.load().ssid == b"home"
    client.reprov()
    assert client.provision(b"cafe", b"").state == "connected"
    assert service.store.load().ssid == b"cafe"


@pytest.mark.parametrize(
    ("ssid", "passphrase"), [(b"", b"secret123"), (b"x" * 33, b"secret123"), (b"home", b"short")]
)
def test_bad_credentials_are_refused_with_invalid_argument(sec2_creds, ssid, passphrase):
    client, service = _client(sec2_creds)
    with pytest.raises(ProtocommError, match="InvalidArgument"):
        client.set_config(ssid, passphrase)
    assert service.pending is None


def test_apply_without_credentials_is_refused(sec2_creds):
    client, service = _client(sec2_creds)
    with pytest.raises(ProtocommError, match="InvalidArgument"):
        client.apply()
    assert service.state_name == "disconnected"
