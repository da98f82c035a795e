"""Wi-Fi provisioning on the device: the ``prov-config``, ``prov-scan`` and ``prov-ctrl``
endpoints of ESP-IDF's ``wifi_provisioning`` component, over a simulated radio.

* :class:`RadioEnvironment` is the table of access points the twin can see (SSID, BSSID,
  channel, RSSI, auth mode, PMF, passphrase), kept as JSON in the device folder.
* :class:`WifiPolicy` is the station's security policy: a minimum auth mode (ESP-IDF's
  ``wifi_sta_config_t.threshold.authmode``), PMF required (``pmf_cfg.required``) and
  WPA3 only. :func:`connect` applies it and says which AP was refused and why.
* :class:`WifiProvisioning` holds the station state machine and the endpoint handlers
  (``components/wifi_provisioning/src/wifi_config.c``, ``wifi_scan.c``, ``wifi_ctrl.c``);
  credentials go to a :class:`CredentialStore` (the device keeps them in NVS).
* :func:`provisioning_protocomm` puts it all behind one protocomm instance with the
  endpoint names of ``manager.c``: ``proto-ver``, ``prov-session``, ``prov-config``,
  ``prov-scan``, ``prov-ctrl`` and any custom endpoints.

A failed connection reports ``AuthError`` or ``NetworkNotFound`` as ``manager.c`` maps
the station's disconnect reason: an authentication or handshake failure is
``AuthError``; anything else, including an AP the policy refuses
(``WIFI_REASON_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD``), is ``NetworkNotFound``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Protocol

from google.protobuf.message import DecodeError, Message

from espsec.errors import FormatError, UsageError
from espsec.provisioning.errors import ProtocommError
from espsec.provisioning.proto import (
    wifi_config_pb2,
    wifi_constants_pb2,
    wifi_ctrl_pb2,
    wifi_scan_pb2,
)
from espsec.provisioning.protocomm.core import Handler, Protocomm, SessionLog, SessionPolicy
from espsec.provisioning.protocomm.security import (
    INVALID_ARGUMENT,
    INVALID_PROTO,
    SUCCESS,
    DeviceSecurity,
)

VERSION_ENDPOINT = "proto-ver"
SESSION_ENDPOINT = "prov-session"
CONFIG_ENDPOINT = "prov-config"
SCAN_ENDPOINT = "prov-scan"
CTRL_ENDPOINT = "prov-ctrl"
CUSTOM_DATA_ENDPOINT = "custom-data"
"""The custom endpoint of ESP-IDF's provisioning example (esp_prov ``--custom_data``)."""
PROV_VERSION = "v1.1"
MAX_SSID_LEN = 32
MAX_PASSPHRASE_LEN = 64
MAX_SCAN_ENTRIES = 16
"""Entries per ``ScanResult`` reply (``CONFIG_WIFI_PROV_SCAN_MAX_ENTRIES`` default)."""


class AuthMode(IntEnum):
    """``wifi_auth_mode_t`` (``components/esp_wifi/include/esp_wifi_types_generic.h``);
    0-7 are also ``WifiAuthMode`` of ``wifi_constants.proto``."""

    OPEN = 0
    WEP = 1
    WPA_PSK = 2
    WPA2_PSK = 3
    WPA_WPA2_PSK = 4
    WPA2_ENTERPRISE = 5
    WPA3_PSK = 6
    WPA2_WPA3_PSK = 7
    WAPI_PSK = 8
    OWE = 9


AUTH_NAMES: Mapping[str, AuthMode] = {
    "open": AuthMode.OPEN,
    "wep": AuthMode.WEP,
    "wpa": AuthMode.WPA_PSK,
    "wpa2": AuthMode.WPA2_PSK,
    "wpa-wpa2": AuthMode.WPA_WPA2_PSK,
    "wpa2-enterprise": AuthMode.WPA2_ENTERPRISE,
    "wpa3-sae": AuthMode.WPA3_PSK,
    "wpa2-wpa3": AuthMode.WPA2_WPA3_PSK,
    "owe": AuthMode.OWE,
}
"""The names the AP table and ``--min-auth-mode`` use."""
_NAME_OF = {mode: name for name, mode in AUTH_NAMES.items()}

_STRENGTH = {
    AuthMode.OPEN: 0,
    AuthMode.WEP: 1,
    AuthMode.OWE: 1,
    AuthMode.WPA_PSK: 2,
    AuthMode.WPA_WPA2_PSK: 2,
    AuthMode.WAPI_PSK: 3,
    AuthMode.WPA2_PSK: 3,
    AuthMode.WPA2_ENTERPRISE: 3,
    AuthMode.WPA2_WPA3_PSK: 3,
    AuthMode.WPA3_PSK: 4,
}
"""How strong each mode is for the minimum-auth-mode threshold: a mixed mode counts as
its weaker half (a WPA/WPA2 AP lets WPA in), OWE as encryption without authentication."""
_WPA3 = frozenset({AuthMode.WPA3_PSK, AuthMode.WPA2_WPA3_PSK})
_PSK = frozenset(
    {
        AuthMode.WPA_PSK,
        AuthMode.WPA2_PSK,
        AuthMode.WPA_WPA2_PSK,
        AuthMode.WPA3_PSK,
        AuthMode.WPA2_WPA3_PSK,
        AuthMode.WAPI_PSK,
    }
)


def auth_name(mode: int) -> str:
    try:
        return _NAME_OF[AuthMode(mode)]
    except (ValueError, KeyError):
        return f"auth({mode})"


def parse_auth(text: str) -> AuthMode:
    try:
        return AUTH_NAMES[text.strip().lower()]
    except KeyError:
        raise UsageError(f"unknown auth mode {text!r} (one of {', '.join(AUTH_NAMES)})") from None


class Pmf(StrEnum):
    """Protected Management Frames as the AP advertises them."""

    DISABLED = "disabled"
    CAPABLE = "capable"
    REQUIRED = "required"


def _bssid(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(text)
    return bytes(int(p, 16) for p in parts)


def bssid_text(bssid: bytes) -> str:
    return ":".join(f"{b:02x}" for b in bssid)


@dataclass(frozen=True)
class AccessPoint:
    """One AP the device can see."""

    ssid: bytes
    bssid: bytes
    channel: int
    rssi: int
    auth: AuthMode
    pmf: Pmf = Pmf.DISABLED
    passphrase: bytes | None = field(default=None, repr=False)

    def to_json(self, *, with_secret: bool = False) -> dict[str, object]:
        doc: dict[str, object] = {
            "ssid": self.ssid.decode("utf-8", "replace"),
            "bssid": bssid_text(self.bssid),
            "channel": self.channel,
            "rssi": self.rssi,
            "auth": auth_name(self.auth),
            "pmf": self.pmf.value,
        }
        if with_secret and self.passphrase is not None:
            doc["passphrase"] = self.passphrase.decode("utf-8", "replace")
        return doc


@dataclass(frozen=True)
class RadioEnvironment:
    """The APs in range: the table a twin's radio "sees"."""

    access_points: tuple[AccessPoint, ...] = ()

    @classmethod
    def parse(cls, data: bytes, *, source: str | None = None) -> RadioEnvironment:
        """The AP table: ``{"access_points": [{"ssid", "bssid", "channel", "rssi",
        "auth", "pmf", "passphrase"}, ...]}`` (or the bare list)."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise FormatError("not valid JSON", source=source) from None
        rows = doc.get("access_points") if isinstance(doc, dict) else doc
        if not isinstance(rows, list):
            raise FormatError(
                "not an AP table", field="access_points", expected="a list", source=source
            )
        return cls(tuple(_ap(row, i, source) for i, row in enumerate(rows)))

    def to_json(self, *, with_secret: bool = True) -> dict[str, object]:
        return {"access_points": [ap.to_json(with_secret=with_secret) for ap in self.access_points]}

    def scan(self) -> tuple[AccessPoint, ...]:
        """What a scan finds: every AP, strongest first (``esp_wifi_scan_get_ap_records``)."""
        return tuple(sorted(self.access_points, key=lambda ap: -ap.rssi))


def _ap(row: Any, index: int, source: str | None) -> AccessPoint:
    where = f"access_points[{index}]"

    def bad(name: str, expected: str, found: object) -> FormatError:
        return FormatError(
            "bad AP entry", field=f"{where}.{name}", expected=expected, found=found, source=source
        )

    if not isinstance(row, dict):
        raise bad("", "an object", type(row).__name__)
    ssid = row.get("ssid")
    if not isinstance(ssid, str) or not 0 < len(ssid.encode()) <= MAX_SSID_LEN:
        raise bad("ssid", "1-32 bytes of text", ssid)
    try:
        bssid = _bssid(str(row.get("bssid", "")))
    except ValueError:
        raise bad("bssid", "aa:bb:cc:dd:ee:ff", row.get("bssid")) from None
    channel = row.get("channel", 1)
    if not isinstance(channel, int) or not 1 <= channel <= 165:
        raise bad("channel", "1-165", channel)
    rssi = row.get("rssi", -50)
    if not isinstance(rssi, int) or not -127 <= rssi <= 0:
        raise bad("rssi", "-127..0 dBm", rssi)
    auth_text = row.get("auth", "open")
    if not isinstance(auth_text, str) or auth_text.lower() not in AUTH_NAMES:
        raise bad("auth", " | ".join(AUTH_NAMES), auth_text)
    auth = AUTH_NAMES[auth_text.lower()]
    try:
        pmf = Pmf(str(row.get("pmf", "required" if auth is AuthMode.WPA3_PSK else "disabled")))
    except ValueError:
        raise bad("pmf", "disabled | capable | required", row.get("pmf")) from None
    passphrase = row.get("passphrase")
    if passphrase is not None and not isinstance(passphrase, str):
        raise bad("passphrase", "text", type(passphrase).__name__)
    if auth in _PSK | {AuthMode.WEP} and not passphrase:
        raise bad("passphrase", f"a passphrase for a {auth_text} AP", None)
    return AccessPoint(
        ssid.encode(),
        bssid,
        channel,
        rssi,
        auth,
        pmf,
        None if passphrase is None else passphrase.encode(),
    )


@dataclass(frozen=True)
class WifiPolicy:
    """The station's Wi-Fi security policy."""

    min_auth_mode: AuthMode = AuthMode.OPEN
    """The weakest auth mode accepted (``threshold.authmode``)."""
    pmf_required: bool = False
    """Refuse APs that cannot do Protected Management Frames (``pmf_cfg.required``)."""
    wpa3_only: bool = False
    """Connect only with WPA3-SAE (a WPA2/WPA3 AP is joined with SAE)."""

    def refusal(self, ap: AccessPoint) -> tuple[str, str] | None:
        """``(why, ESP-IDF disconnect reason)`` if the policy refuses ``ap``, else ``None``."""
        if self.wpa3_only and ap.auth not in _WPA3:
            return (
                f"{auth_name(ap.auth)} is not WPA3 and the policy is WPA3-only",
                "NO_AP_FOUND_W_COMPATIBLE_SECURITY",
            )
        if _STRENGTH.get(ap.auth, 0) < _STRENGTH[self.min_auth_mode]:
            return (
                f"{auth_name(ap.auth)} is weaker than the minimum auth mode "
                f"{auth_name(self.min_auth_mode)}",
                "NO_AP_FOUND_IN_AUTHMODE_THRESHOLD",
            )
        if self.pmf_required and ap.pmf is Pmf.DISABLED:
            return (
                "the AP does not support PMF and PMF is required",
                "NO_AP_FOUND_W_COMPATIBLE_SECURITY",
            )
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "min_auth_mode": auth_name(self.min_auth_mode),
            "pmf_required": self.pmf_required,
            "wpa3_only": self.wpa3_only,
        }


@dataclass(frozen=True)
class StationConfig:
    """The credentials ``prov-config`` sets (``wifi_sta_config_t``: ssid, password, bssid,
    channel)."""

    ssid: bytes
    passphrase: bytes = field(default=b"", repr=False)
    bssid: bytes = b""
    channel: int = 0


@dataclass(frozen=True)
class Refusal:
    ap: AccessPoint
    reason: str
    wifi_reason: str

    def to_json(self) -> dict[str, object]:
        return {**self.ap.to_json(), "reason": self.reason, "wifi_reason": self.wifi_reason}


@dataclass(frozen=True)
class ConnectResult:
    """What a connection attempt did."""

    connected: bool
    ssid: bytes
    ap: AccessPoint | None = None
    fail_reason: str | None = None
    """``AuthError`` or ``NetworkNotFound`` (``WifiConnectFailedReason``)."""
    wifi_reason: str | None = None
    """The station's disconnect reason (``wifi_err_reason_t`` name)."""
    ip4_addr: str = ""
    refused: tuple[Refusal, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "connected": self.connected,
            "ssid": self.ssid.decode("utf-8", "replace"),
            "ap": None if self.ap is None else self.ap.to_json(),
            "fail_reason": self.fail_reason,
            "wifi_reason": self.wifi_reason,
            "ip4_addr": self.ip4_addr or None,
            "refused": [r.to_json() for r in self.refused],
        }


def _passphrase_ok(ap: AccessPoint, passphrase: bytes) -> bool:
    if ap.auth in (AuthMode.OPEN, AuthMode.OWE):
        return True
    return ap.passphrase is not None and passphrase == ap.passphrase


def connect(env: RadioEnvironment, policy: WifiPolicy, config: StationConfig) -> ConnectResult:
    """``esp_wifi_connect`` with ``config`` in ``env`` under ``policy``: the strongest
    matching AP the policy allows, then the passphrase check."""
    matches = [
        ap
        for ap in env.scan()
        if ap.ssid == config.ssid
        and (not config.bssid or ap.bssid == config.bssid)
        and (not config.channel or ap.channel == config.channel)
    ]
    refused = []
    allowed = []
    for ap in matches:
        why = policy.refusal(ap)
        if why is None:
            allowed.append(ap)
        else:
            refused.append(Refusal(ap, *why))
    if not allowed:
        wifi_reason = refused[0].wifi_reason if refused else "NO_AP_FOUND"
        return ConnectResult(
            False, config.ssid, None, "NetworkNotFound", wifi_reason, refused=tuple(refused)
        )
    ap = allowed[0]
    if not _passphrase_ok(ap, config.passphrase):
        reason = (
            "AUTH_FAIL"
            if ap.auth in (AuthMode.WPA3_PSK, AuthMode.WEP)
            else "4WAY_HANDSHAKE_TIMEOUT"
        )
        return ConnectResult(False, config.ssid, ap, "AuthError", reason, refused=tuple(refused))
    ip4 = f"192.168.{ap.channel}.{100 + ap.bssid[-1] % 100}"
    return ConnectResult(True, config.ssid, ap, ip4_addr=ip4, refused=tuple(refused))


class CredentialStore(Protocol):
    """Where the device keeps the station credentials (NVS on the twin)."""

    def save(self, config: StationConfig) -> None: ...

    def load(self) -> StationConfig | None: ...

    def erase(self) -> None: ...


class MemoryCredentialStore:
    """A :class:`CredentialStore` in memory."""

    def __init__(self) -> None:
        self.config: StationConfig | None = None

    def __repr__(self) -> str:
        return "<MemoryCredentialStore>"

    def save(self, config: StationConfig) -> None:
        self.config = config

    def load(self) -> StationConfig | None:
        return self.config

    def erase(self) -> None:
        self.config = None


def _parse(message: Message, data: bytes, what: str) -> None:
    try:
        message.ParseFromString(data)
    except DecodeError:
        raise ProtocommError(f"not a {what} message", status=INVALID_PROTO) from None


_STATE_NAME = {
    wifi_constants_pb2.Connected: "connected",
    wifi_constants_pb2.Connecting: "connecting",
    wifi_constants_pb2.Disconnected: "disconnected",
    wifi_constants_pb2.ConnectionFailed: "failed",
}


def _state_after(result: ConnectResult) -> wifi_constants_pb2.WifiStationState:
    if result.connected:
        return wifi_constants_pb2.Connected
    return wifi_constants_pb2.ConnectionFailed


class WifiProvisioning:
    """The provisioning manager's station side and its endpoint handlers.

    ``on_change`` is called after every change the device must persist or report.
    """

    def __init__(
        self,
        env: RadioEnvironment,
        policy: WifiPolicy,
        store: CredentialStore,
        *,
        on_change: Callable[[WifiProvisioning], None] | None = None,
    ) -> None:
        self.env = env
        self.policy = policy
        self.store = store
        self.on_change = on_change
        self.pending: StationConfig | None = None
        self.sta_state = wifi_constants_pb2.Disconnected
        self.last: ConnectResult | None = None
        self.custom_data: list[bytes] = []
        self._scan: tuple[AccessPoint, ...] | None = None

    def __repr__(self) -> str:
        return f"<WifiProvisioning {self.state_name}>"

    @property
    def state_name(self) -> str:
        return _STATE_NAME[self.sta_state]

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    # -- prov-config ---------------------------------------------------------------

    def config_handler(self, session_id: int, data: bytes) -> bytes:
        request = wifi_config_pb2.WiFiConfigPayload()
        _parse(request, data, "WiFiConfigPayload")
        reply = wifi_config_pb2.WiFiConfigPayload()
        kind = request.msg
        if kind == wifi_config_pb2.TypeCmdGetStatus:
            reply.msg = wifi_config_pb2.TypeRespGetStatus
            self._get_status(reply.resp_get_status)
        elif kind == wifi_config_pb2.TypeCmdSetConfig:
            reply.msg = wifi_config_pb2.TypeRespSetConfig
            reply.resp_set_config.status = self._set_config(request.cmd_set_config)  # type: ignore[assignment]
        elif kind == wifi_config_pb2.TypeCmdApplyConfig:
            reply.msg = wifi_config_pb2.TypeRespApplyConfig
            reply.resp_apply_config.status = self._apply()  # type: ignore[assignment]
        else:
            raise ProtocommError(f"unknown prov-config message {kind}", status=INVALID_PROTO)
        return reply.SerializeToString()

    def _get_status(self, out: wifi_config_pb2.RespGetStatus) -> None:
        out.status = SUCCESS
        out.sta_state = self.sta_state
        last = self.last
        if self.sta_state == wifi_constants_pb2.Connected and last is not None and last.ap:
            out.connected.ip4_addr = last.ip4_addr
            out.connected.auth_mode = min(int(last.ap.auth), 7)  # type: ignore[assignment]
            out.connected.ssid = last.ap.ssid
            out.connected.bssid = last.ap.bssid
            out.connected.channel = last.ap.channel
        elif self.sta_state == wifi_constants_pb2.ConnectionFailed and last is not None:
            out.fail_reason = (
                wifi_constants_pb2.AuthError
                if last.fail_reason == "AuthError"
                else wifi_constants_pb2.NetworkNotFound
            )

    def _set_config(self, cmd: wifi_config_pb2.CmdSetConfig) -> int:
        if self.sta_state in (wifi_constants_pb2.Connected, wifi_constants_pb2.Connecting):
            return INVALID_ARGUMENT  # provisioned: a reprov must come first
        if not 0 < len(cmd.ssid) <= MAX_SSID_LEN:
            return INVALID_ARGUMENT
        if len(cmd.passphrase) > MAX_PASSPHRASE_LEN or 0 < len(cmd.passphrase) < 8:
            return INVALID_ARGUMENT  # esp_wifi_set_config refuses it (ESP_ERR_WIFI_PASSWORD)
        if cmd.bssid and len(cmd.bssid) != 6:
            return INVALID_ARGUMENT
        if cmd.channel < 0 or cmd.channel > 165:
            return INVALID_ARGUMENT
        self.pending = StationConfig(cmd.ssid, cmd.passphrase, cmd.bssid, cmd.channel)
        return SUCCESS

    def _apply(self) -> int:
        if self.pending is None:
            return INVALID_ARGUMENT
        config, self.pending = self.pending, None
        self.store.save(config)  # esp_wifi_set_config with WIFI_STORAGE_FLASH
        self.last = connect(self.env, self.policy, config)
        self.sta_state = (
            wifi_constants_pb2.Connected
            if self.last.connected
            else wifi_constants_pb2.ConnectionFailed
        )
        self._changed()
        return SUCCESS

    def connect_stored(self) -> ConnectResult | None:
        """At boot: connect with the credentials in the store (``esp_wifi_connect``)."""
        config = self.store.load()
        if config is None:
            return None
        self.last = connect(self.env, self.policy, config)
        self.sta_state = (
            wifi_constants_pb2.Connected
            if self.last.connected
            else wifi_constants_pb2.ConnectionFailed
        )
        return self.last

    # -- prov-scan -----------------------------------------------------------------

    def scan_handler(self, session_id: int, data: bytes) -> bytes:
        request = wifi_scan_pb2.WiFiScanPayload()
        _parse(request, data, "WiFiScanPayload")
        reply = wifi_scan_pb2.WiFiScanPayload(status=SUCCESS)
        kind = request.msg
        if kind == wifi_scan_pb2.TypeCmdScanStart:
            reply.msg = wifi_scan_pb2.TypeRespScanStart
            reply.resp_scan_start.SetInParent()
            self._scan = self.env.scan()
        elif kind == wifi_scan_pb2.TypeCmdScanStatus:
            reply.msg = wifi_scan_pb2.TypeRespScanStatus
            reply.resp_scan_status.scan_finished = self._scan is not None
            reply.resp_scan_status.result_count = len(self._scan or ())
        elif kind == wifi_scan_pb2.TypeCmdScanResult:
            reply.msg = wifi_scan_pb2.TypeRespScanResult
            start, n = request.cmd_scan_result.start_index, request.cmd_scan_result.count
            found = self._scan or ()
            if self._scan is None or start + n > len(found) or n > MAX_SCAN_ENTRIES:
                reply.status = INVALID_ARGUMENT
            else:
                reply.resp_scan_result.SetInParent()
                for ap in found[start : start + n]:
                    entry = reply.resp_scan_result.entries.add()
                    entry.ssid = ap.ssid
                    entry.channel = ap.channel
                    entry.rssi = ap.rssi
                    entry.bssid = ap.bssid
                    entry.auth = int(ap.auth)  # type: ignore[assignment]
        else:
            raise ProtocommError(f"unknown prov-scan message {kind}", status=INVALID_PROTO)
        return reply.SerializeToString()

    # -- prov-ctrl -----------------------------------------------------------------

    def ctrl_handler(self, session_id: int, data: bytes) -> bytes:
        request = wifi_ctrl_pb2.WiFiCtrlPayload()
        _parse(request, data, "WiFiCtrlPayload")
        reply = wifi_ctrl_pb2.WiFiCtrlPayload(status=SUCCESS)
        kind = request.msg
        if kind == wifi_ctrl_pb2.TypeCmdCtrlReset:
            # wifi_prov_mgr_reset_sm_state_on_failure: only after a failed attempt
            reply.msg = wifi_ctrl_pb2.TypeRespCtrlReset
            reply.resp_ctrl_reset.SetInParent()
            if self.sta_state != wifi_constants_pb2.ConnectionFailed:
                reply.status = INVALID_ARGUMENT
            else:
                self.store.erase()
                self.sta_state = wifi_constants_pb2.Disconnected
                self._changed()
        elif kind == wifi_ctrl_pb2.TypeCmdCtrlReprov:
            # wifi_prov_mgr_reset_sm_state_for_reprovision: only once provisioned
            reply.msg = wifi_ctrl_pb2.TypeRespCtrlReprov
            reply.resp_ctrl_reprov.SetInParent()
            if self.sta_state != wifi_constants_pb2.Connected:
                reply.status = INVALID_ARGUMENT
            else:
                self.sta_state = wifi_constants_pb2.Disconnected
                self._changed()
        else:
            raise ProtocommError(f"unknown prov-ctrl message {kind}", status=INVALID_PROTO)
        return reply.SerializeToString()

    # -- custom-data ---------------------------------------------------------------

    def custom_data_handler(self, session_id: int, data: bytes) -> bytes:
        """The provisioning example's custom endpoint: keep the data, answer ``SUCCESS``."""
        self.custom_data.append(data)
        self._changed()
        return b"SUCCESS"

    def report(self) -> dict[str, object]:
        return {
            "sta_state": self.state_name,
            "last_attempt": None if self.last is None else self.last.to_json(),
            "policy": self.policy.to_json(),
            "custom_data": [d.decode("utf-8", "replace") for d in self.custom_data],
        }


def version_info(
    security: DeviceSecurity, *, capabilities: tuple[str, ...] = ("wifi_scan",)
) -> str:
    """The ``proto-ver`` reply (``manager.c``: ``{"prov": {"ver", "sec_ver", "sec_patch_ver",
    "cap"}}``; ``no_sec`` / ``no_pop`` added for security 0 / security 1 without a PoP)."""
    cap = list(capabilities)
    if security.version == 0:
        cap.append("no_sec")
    elif security.version == 1 and not getattr(security, "_pop", None):
        cap.append("no_pop")
    info = {
        "ver": PROV_VERSION,
        "sec_ver": security.version,
        "sec_patch_ver": security.patch_version,
        "cap": cap,
    }
    return json.dumps({"prov": info}, separators=(",", ":"))


def provisioning_protocomm(
    service: WifiProvisioning,
    security: DeviceSecurity,
    *,
    policy: SessionPolicy | None = None,
    log: SessionLog | None = None,
    custom_endpoints: Mapping[str, Handler] | None = None,
) -> Protocomm:
    """One protocomm instance with the provisioning manager's endpoints."""
    pc = Protocomm(
        security,
        session_endpoint=SESSION_ENDPOINT,
        version_endpoint=VERSION_ENDPOINT,
        version_info=version_info(security),
        policy=policy,
        log=log,
    )
    pc.add_endpoint(CTRL_ENDPOINT, service.ctrl_handler)
    pc.add_endpoint(SCAN_ENDPOINT, service.scan_handler)
    pc.add_endpoint(CONFIG_ENDPOINT, service.config_handler)
    endpoints = dict(custom_endpoints or {CUSTOM_DATA_ENDPOINT: service.custom_data_handler})
    for name, handler in endpoints.items():
        pc.add_endpoint(name, handler)
    return pc
