"""The host side of Wi-Fi provisioning, in the manner of esp_prov (``tools/esp_prov``):
read ``proto-ver``, establish the session, scan, send credentials, apply, poll the
status, send custom data, reset or re-provision."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import DecodeError, Message

from espsec.provisioning.errors import ProtocommError, status_name
from espsec.provisioning.proto import (
    wifi_config_pb2,
    wifi_constants_pb2,
    wifi_ctrl_pb2,
    wifi_scan_pb2,
)
from espsec.provisioning.protocomm.client import ServiceClient
from espsec.provisioning.protocomm.security import INVALID_PROTO, SUCCESS
from espsec.provisioning.wifi_prov import (
    CONFIG_ENDPOINT,
    CTRL_ENDPOINT,
    CUSTOM_DATA_ENDPOINT,
    MAX_SCAN_ENTRIES,
    SCAN_ENDPOINT,
    SESSION_ENDPOINT,
    VERSION_ENDPOINT,
    auth_name,
    bssid_text,
)

SCAN_BATCH = 4
"""Entries esp_prov asks for per ``ScanResult`` request."""


def _parse(message: Message, data: bytes, what: str) -> None:
    try:
        message.ParseFromString(data)
    except DecodeError:
        raise ProtocommError(
            f"the device's {what} reply is not protobuf", status=INVALID_PROTO
        ) from None


def _check(status: int, what: str) -> None:
    if status != SUCCESS:
        raise ProtocommError(f"the device refused {what}: {status_name(status)}", status=status)


@dataclass(frozen=True)
class WifiStatus:
    """``RespGetStatus`` as data."""

    state: str
    fail_reason: str | None = None
    connected: dict[str, object] = field(default_factory=dict)
    attempts_remaining: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "fail_reason": self.fail_reason,
            "connected": self.connected or None,
            "attempts_remaining": self.attempts_remaining,
        }


_STATES = {
    wifi_constants_pb2.Connected: "connected",
    wifi_constants_pb2.Connecting: "connecting",
    wifi_constants_pb2.Disconnected: "disconnected",
    wifi_constants_pb2.ConnectionFailed: "failed",
}


class ProvClient(ServiceClient):
    """A provisioning session with one device."""

    service = "prov"
    version_endpoint = VERSION_ENDPOINT
    session_endpoint = SESSION_ENDPOINT

    def scan(self, *, passive: bool = False) -> list[dict[str, object]]:
        """``prov-scan``: start a blocking scan, then read the results in batches of 4."""
        start = wifi_scan_pb2.WiFiScanPayload(msg=wifi_scan_pb2.TypeCmdScanStart)
        start.cmd_scan_start.blocking = True
        start.cmd_scan_start.passive = passive
        self._scan(start)
        status = self._scan(wifi_scan_pb2.WiFiScanPayload(msg=wifi_scan_pb2.TypeCmdScanStatus))
        total = status.resp_scan_status.result_count
        found: list[dict[str, object]] = []
        while len(found) < total:
            ask = wifi_scan_pb2.WiFiScanPayload(msg=wifi_scan_pb2.TypeCmdScanResult)
            ask.cmd_scan_result.start_index = len(found)
            ask.cmd_scan_result.count = min(SCAN_BATCH, MAX_SCAN_ENTRIES, total - len(found))
            for entry in self._scan(ask).resp_scan_result.entries:
                found.append(
                    {
                        "ssid": entry.ssid.decode("utf-8", "replace"),
                        "bssid": bssid_text(entry.bssid),
                        "channel": entry.channel,
                        "rssi": entry.rssi,
                        "auth": auth_name(entry.auth),
                    }
                )
        return found

    def _scan(self, request: wifi_scan_pb2.WiFiScanPayload) -> wifi_scan_pb2.WiFiScanPayload:
        reply = wifi_scan_pb2.WiFiScanPayload()
        _parse(reply, self.session.call(SCAN_ENDPOINT, request.SerializeToString()), "prov-scan")
        _check(reply.status, "the scan request")
        return reply

    def _config(
        self, request: wifi_config_pb2.WiFiConfigPayload
    ) -> wifi_config_pb2.WiFiConfigPayload:
        reply = wifi_config_pb2.WiFiConfigPayload()
        _parse(
            reply, self.session.call(CONFIG_ENDPOINT, request.SerializeToString()), "prov-config"
        )
        return reply

    def set_config(
        self, ssid: bytes, passphrase: bytes, *, bssid: bytes = b"", channel: int = 0
    ) -> None:
        request = wifi_config_pb2.WiFiConfigPayload(msg=wifi_config_pb2.TypeCmdSetConfig)
        request.cmd_set_config.ssid = ssid
        request.cmd_set_config.passphrase = passphrase
        request.cmd_set_config.bssid = bssid
        request.cmd_set_config.channel = channel
        _check(self._config(request).resp_set_config.status, "the Wi-Fi credentials")

    def apply(self) -> None:
        request = wifi_config_pb2.WiFiConfigPayload(msg=wifi_config_pb2.TypeCmdApplyConfig)
        request.cmd_apply_config.SetInParent()
        _check(self._config(request).resp_apply_config.status, "applying the configuration")

    def status(self) -> WifiStatus:
        request = wifi_config_pb2.WiFiConfigPayload(msg=wifi_config_pb2.TypeCmdGetStatus)
        request.cmd_get_status.SetInParent()
        reply = self._config(request).resp_get_status
        _check(reply.status, "the status request")
        state = _STATES.get(reply.sta_state, f"state({reply.sta_state})")
        which = reply.WhichOneof("state")
        if which == "fail_reason":
            name = wifi_constants_pb2.WifiConnectFailedReason.Name(reply.fail_reason)
            return WifiStatus(state, fail_reason=name)
        if which == "connected":
            c = reply.connected
            info: dict[str, object] = {
                "ip4_addr": c.ip4_addr,
                "auth_mode": auth_name(c.auth_mode),
                "ssid": c.ssid.decode("utf-8", "replace"),
                "bssid": bssid_text(c.bssid),
                "channel": c.channel,
            }
            return WifiStatus(state, connected=info)
        if which == "attempt_failed":
            return WifiStatus(state, attempts_remaining=reply.attempt_failed.attempts_remaining)
        return WifiStatus(state)

    def provision(self, ssid: bytes, passphrase: bytes, *, polls: int = 10) -> WifiStatus:
        """Send the credentials, apply them and poll until the device connects or fails."""
        self.set_config(ssid, passphrase)
        self.apply()
        result = self.status()
        for _ in range(polls):
            if result.state != "connecting":
                break
            result = self.status()
        return result

    def _ctrl(self, msg: int, what: str) -> None:
        request = wifi_ctrl_pb2.WiFiCtrlPayload(msg=msg)  # type: ignore[arg-type]
        if msg == wifi_ctrl_pb2.TypeCmdCtrlReset:
            request.cmd_ctrl_reset.SetInParent()
        else:
            request.cmd_ctrl_reprov.SetInParent()
        reply = wifi_ctrl_pb2.WiFiCtrlPayload()
        _parse(reply, self.session.call(CTRL_ENDPOINT, request.SerializeToString()), "prov-ctrl")
        _check(reply.status, what)

    def reset(self) -> None:
        """``prov-ctrl`` reset: after a failed attempt, forget it and take new credentials."""
        self._ctrl(wifi_ctrl_pb2.TypeCmdCtrlReset, "the reset (only after a failed attempt)")

    def reprov(self) -> None:
        """``prov-ctrl`` reprov: a provisioned device takes new credentials."""
        self._ctrl(wifi_ctrl_pb2.TypeCmdCtrlReprov, "re-provisioning (only once provisioned)")

    def custom_data(self, data: bytes, endpoint: str = CUSTOM_DATA_ENDPOINT) -> bytes:
        """Send ``data`` to a custom endpoint; the device's reply."""
        return self.session.call(endpoint, data)
