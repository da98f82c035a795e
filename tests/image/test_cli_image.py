"""``espsec image info``: text and JSON reports, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from espsec.chips import Chip
from espsec.cli.image import group
from espsec.cli.main import main
from espsec.image import build_app_image, parse_image


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_info_json_reports_app(tmp_path: Path, demo_app: bytes) -> None:
    result = CliRunner().invoke(group, ["info", _write(tmp_path, "app.bin", demo_app), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    image = parse_image(demo_app)
    assert report["chip"] == "esp32s3"
    assert report["chip_id"] == 9
    assert report["entry_addr"] == image.header.entry_addr
    assert report["flash_mode"] == "DIO"
    assert report["flash_size"] == "2MB"
    assert report["flash_freq"] == "80m"
    assert report["max_chip_revision"] == "v0.99"
    assert [s["load_addr"] for s in report["segments"]] == [s.load_addr for s in image.segments]
    assert report["segments"][0]["memory_types"] == ["DROM"]
    assert report["segments"][0]["file_offset"] == 0x18
    assert report["checksum"]["valid"] is True
    assert report["validation_hash"]["valid"] is True
    assert report["app_desc"]["version"] == "2.1.0"
    assert report["app_desc"]["secure_version"] == 3
    assert report["bootloader_desc"] is None
    assert report["signature_sector"] == {"present": False, "offset": None, "length": 0}


def test_info_json_reports_bootloader(tmp_path: Path, demo_bootloader: bytes) -> None:
    path = _write(tmp_path, "bootloader.bin", demo_bootloader)
    report = json.loads(CliRunner().invoke(group, ["info", path, "--json"]).output)
    assert report["app_desc"] is None
    assert report["bootloader_desc"]["version"] == 7
    assert report["bootloader_desc"]["secure_version"] == 2


def test_info_text_report(tmp_path: Path, demo_app: bytes) -> None:
    result = CliRunner().invoke(group, ["info", _write(tmp_path, "app.bin", demo_app)])
    assert result.exit_code == 0
    assert "Detected chip: ESP32-S3" in result.output
    assert "Checksum: 0x" in result.output and "(valid)" in result.output
    assert "Project name: demo" in result.output
    assert "0x3c010020" in result.output


def test_info_reports_signature_sector(tmp_path: Path, demo_app: bytes) -> None:
    padded = demo_app + b"\xff" * (-len(demo_app) % 4096)
    signed = padded + b"\xe7\x02" + bytes(1214) + b"\xff" * (4096 - 1216)
    result = CliRunner().invoke(group, ["info", _write(tmp_path, "s.bin", signed), "--json"])
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["signature_sector"] == {"present": True, "offset": len(padded), "length": 4096}
    assert report["trailer_length"] == len(signed) - len(demo_app)


def test_info_exits_1_on_invalid_checksum(tmp_path: Path, demo_app: bytes) -> None:
    bad = bytearray(demo_app)
    bad[0x20 + 300] ^= 0xFF  # inside segment 0 data: checksum and hash both break
    result = CliRunner().invoke(group, ["info", _write(tmp_path, "bad.bin", bytes(bad)), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["checksum"]["valid"] is False
    assert report["validation_hash"]["valid"] is False


def test_info_text_shows_descriptor_strings_escaped(tmp_path: Path, s3: Chip) -> None:
    data = build_app_image(s3, project_name="evil\x1b[2J")
    result = CliRunner().invoke(group, ["info", _write(tmp_path, "a.bin", data)])
    assert "\x1b" not in result.output
    assert "evil\\x1b[2J" in result.output


def test_bad_magic_is_one_line_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "zip.bin", b"PK\x03\x04" + bytes(60))
    result = CliRunner().invoke(main, ["image", "info", path])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line]
    assert lines == [
        f"error: {path}: offset 0x0 magic: not an ESP image (expected 0xe9, found 0x50)"
    ]


def test_truncated_image_is_one_line_error(tmp_path: Path, demo_app: bytes) -> None:
    path = _write(tmp_path, "cut.bin", demo_app[:100])
    result = CliRunner().invoke(main, ["image", "info", path])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {path}: offset 0x64 segment 0 data: truncated")


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["image", "info", str(tmp_path / "nope.bin")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert "Traceback" not in result.output


def test_info_reports_a_damaged_app_descriptor(tmp_path: Path, demo_app: bytes) -> None:
    bad = bytearray(demo_app)
    bad[0x20 + 16 + 30] = ord("X")  # after the NUL of esp_app_desc_t.version
    result = CliRunner().invoke(group, ["info", _write(tmp_path, "d.bin", bytes(bad)), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["app_desc"] is None
    assert report["descriptor_error"].startswith("offset 0x4e version: bytes after")
    assert report["segments"]  # the rest of the report is still there


def test_build_app_then_info_roundtrip(tmp_path):
    from click.testing import CliRunner

    from espsec.cli.main import main

    out = tmp_path / "app.bin"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "image",
            "build-app",
            "--chip",
            "esp32p4",
            "--version",
            "3.1",
            "--secure-version",
            "4",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["image", "info", "--json", str(out)])
    assert result.exit_code == 0
    import json

    report = json.loads(result.stdout)
    assert '"3.1"' in json.dumps(report) and '"secure_version": 4' in json.dumps(report)


def test_build_bootloader_is_valid(tmp_path):
    from click.testing import CliRunner

    from espsec.cli.main import main

    out = tmp_path / "bl.bin"
    result = CliRunner().invoke(
        main, ["image", "build-bootloader", "--chip", "esp32s3", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(main, ["image", "info", str(out)]).exit_code == 0


def test_build_app_writes_to_standard_output_with_the_status_on_stderr() -> None:
    result = CliRunner().invoke(main, ["image", "build-app", "--chip", "esp32s3", "-o", "-"])
    assert result.exit_code == 0
    assert result.stdout_bytes[:1] == b"\xe9" and "esp32s3 app" in result.stderr


def test_build_app_json_report(tmp_path: Path) -> None:
    out = tmp_path / "app.bin"
    result = CliRunner().invoke(
        main, ["image", "build-app", "--chip", "esp32c3", "-o", str(out), "--json"]
    )
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["output"] == str(out) and report["size"] == out.stat().st_size
