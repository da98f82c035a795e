"""The committed protobuf modules match the .proto files, and the wire bytes match ESP-IDF."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from espsec.provisioning.proto import (
    esp_local_ctrl_pb2,
    sec2_pb2,
    session_pb2,
    wifi_config_pb2,
    wifi_scan_pb2,
)

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_provisioning_protos", ROOT / "tools" / "gen_provisioning_protos.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_pb2_modules_match_the_proto_files(tmp_path):
    gen = _generator()
    made = gen.generate(tmp_path)
    assert {p.name for p in made} == {
        p.name for p in gen.PROTO_DIR.iterdir() if p.name.endswith(("_pb2.py", "_pb2.pyi"))
    }
    for path in made:
        assert path.read_bytes() == (gen.PROTO_DIR / path.name).read_bytes(), path.name


def test_every_proto_has_a_generated_module():
    gen = _generator()
    for proto in gen.PROTO_DIR.glob("*.proto"):
        assert (gen.PROTO_DIR / f"{proto.stem}_pb2.py").exists()


def test_session_bytes_are_esp_idf_field_numbers():
    # SessionData{sec_ver=2 (field 2), sec2 (field 12){msg=2, sc1 (22){client_proof (1)}}}
    msg = session_pb2.SessionData(sec_ver=session_pb2.SecScheme2)
    msg.sec2.msg = sec2_pb2.S2Session_Command1
    msg.sec2.sc1.client_proof = b"\xaa" * 2
    assert msg.SerializeToString() == bytes.fromhex(
        "1002" + "6209" + "0802" + "b20104" + "0a02aaaa"
    )


def test_wifi_and_local_ctrl_bytes_are_esp_idf_field_numbers():
    cfg = wifi_config_pb2.WiFiConfigPayload(msg=wifi_config_pb2.TypeCmdSetConfig)
    cfg.cmd_set_config.ssid = b"ab"
    cfg.cmd_set_config.channel = 6
    assert cfg.SerializeToString() == bytes.fromhex("0802" + "6206" + "0a026162" + "2006")
    scan = wifi_scan_pb2.WiFiScanPayload(msg=wifi_scan_pb2.TypeCmdScanResult)
    scan.cmd_scan_result.count = 4
    assert scan.SerializeToString() == bytes.fromhex("0804" + "7202" + "1004")
    lc = esp_local_ctrl_pb2.LocalCtrlMessage(msg=esp_local_ctrl_pb2.TypeCmdGetPropertyValues)
    lc.cmd_get_prop_vals.indices.extend([1, 2])
    assert lc.SerializeToString() == bytes.fromhex("0804" + "6204" + "0a020102")


def test_messages_decode_with_esp_prov_modules():
    """esp_prov's generated modules (shipped in esp-rainmaker-cli) read our bytes."""
    import rmaker_tools

    proto_dir = Path(rmaker_tools.__file__).parent / "rmaker_prov"
    sys.path.insert(0, str(proto_dir))
    try:
        import proto as esp_proto  # esp_prov's loader of its *_pb2 modules
    finally:
        sys.path.remove(str(proto_dir))
    ours = session_pb2.SessionData(sec_ver=session_pb2.SecScheme2)
    ours.sec2.msg = sec2_pb2.S2Session_Response0
    ours.sec2.sr0.device_pubkey = b"B" * 384
    ours.sec2.sr0.device_salt = b"s" * 16
    theirs = esp_proto.session_pb2.SessionData()
    theirs.ParseFromString(ours.SerializeToString())
    assert theirs.sec2.sr0.device_salt == b"s" * 16
    assert theirs.SerializeToString() == ours.SerializeToString()
