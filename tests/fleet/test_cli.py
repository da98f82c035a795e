"""``espsec fleet``: init, serve (as a real subprocess), and the admin commands over HTTPS."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from espsec import secure_boot
from espsec.cli.main import main
from espsec.ota import FleetClient, TlsTrust

from .conftest import Fleet


def _run(*args: object, code: int = 0, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert result.exit_code == code, result.output
    return result.output


def test_init_keeps_no_plaintext_token_unless_asked(tmp_path: Path, sb_key_dir: Path) -> None:
    state = tmp_path / "fleet"
    out = json.loads(
        _run("fleet", "init", "--pub-key", sb_key_dir / "ecdsa256.pub.pem", "--json", state)
    )
    assert out["admin_token_file"] is None and len(out["admin_token"]) > 30
    assert all(out["admin_token"].encode() not in p.read_bytes()
               for p in state.rglob("*") if p.is_file())  # fmt: skip


def test_init_writes_config_keys_and_a_private_token(tmp_path: Path, sb_key_dir: Path) -> None:
    state = tmp_path / "fleet"
    token = tmp_path / "token"
    key = sb_key_dir / "ecdsa256.pub.pem"
    out = json.loads(
        _run("fleet", "init", "--pub-key", key, "--token-output", token, "--json", state)
    )
    token_file = Path(out["admin_token_file"])
    assert "admin_token" not in out
    assert token_file.stat().st_mode & 0o077 == 0 and len(token_file.read_text().strip()) > 30
    assert (state / "manifest-key.pem").stat().st_mode & 0o077 == 0
    public = secure_boot.load_public_key((sb_key_dir / "ecdsa256.pub.pem").read_bytes())
    assert out["key_digests"] == [secure_boot.key_digest(public).hex()]
    _run("fleet", "init", "--key-digest", "00" * 32, state, code=2)  # never re-initialised


def test_init_needs_a_trusted_key(tmp_path: Path) -> None:
    _run("fleet", "init", tmp_path / "f", code=2)


def test_admin_commands(
    fleet: Fleet, release_factory: Callable[..., bytes], tmp_path: Path
) -> None:
    bundle = tmp_path / "rel.zip"
    bundle.write_bytes(release_factory("2.0.0", 3))
    conn = ["--url", fleet.admin_url, "--state-dir", fleet.state]
    (fleet.state / "admin-token").write_text(fleet.token)
    row = json.loads(_run("fleet", "release", "upload", *conn, "--json", bundle))
    assert row["secure_version"] == 3
    assert row["id"] in _run("fleet", "release", "list", *conn)
    _run("fleet", "cohort", "assign", *conn, "default", row["id"])
    _run("fleet", "devices", "assign", *conn, "dev-1", "beta")
    devices = json.loads(_run("fleet", "devices", "list", *conn, "--json"))
    assert devices[0]["device_id"] == "dev-1" and devices[0]["cohort"] == "beta"
    cohorts = json.loads(_run("fleet", "cohort", "list", *conn, "--json"))
    assert cohorts == [
        {"name": "default", "release_id": row["id"], "updated_at": cohorts[0]["updated_at"]}
    ]
    assert json.loads(_run("fleet", "reports", *conn, "--json")) == []
    assert "check_in_latency_s" in json.loads(_run("fleet", "stats", *conn, "--json"))
    assert "check-in latency:" in _run("fleet", "stats", *conn)
    # Same release again: a conflict, exit 1 with one line.
    assert "already uploaded" in _run("fleet", "release", "upload", *conn, bundle, code=1)
    # Token from the environment; a wrong one is refused.
    env = {"ESPSEC_FLEET_TOKEN": "nope"}
    ca = fleet.state / "tls" / "ca.pem"
    out = _run("fleet", "release", "list", "--url", fleet.admin_url, "--ca", ca, env=env, code=1)
    assert "401" in out


def test_serve_starts_an_https_server_with_a_generated_certificate(
    tmp_path: Path, sb_key_dir: Path
) -> None:
    state = tmp_path / "fleet"
    _run("fleet", "init", "--pub-key", sb_key_dir / "ecdsa256.pub.pem", state)
    espsec = Path(sys.executable).parent / "espsec"
    proc = subprocess.Popen(
        [str(espsec), "fleet", "serve", "--port", "0", "--admin-port", "0", str(state)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            match = re.search(r"fleet server on (https://\S+)", line)
            url = match[1] if match else None
        assert url, "server did not announce its URL"
        trust = TlsTrust.ca((state / "tls" / "ca.pem").read_bytes())
        for _ in range(100):  # the socket listens before uvicorn is ready to serve
            try:
                with FleetClient(url, trust) as client:
                    status, _, body = client.request("GET", "/api/v1/manifest-key")
                break
            except Exception:
                time.sleep(0.05)
        assert status == 200 and body == (state / "manifest-key.pub.pem").read_bytes()
        assert (state / "tls" / "server-key.pem").stat().st_mode & 0o077 == 0
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_init_checks_the_token_folder_before_making_the_fleet(
    tmp_path: Path, sb_key_dir: Path
) -> None:
    state = tmp_path / "fleet"
    key = sb_key_dir / "ecdsa256.pub.pem"
    out = _run(
        "fleet", "init", "--pub-key", key, "--token-output", tmp_path / "no/tok", state, code=2
    )
    assert "no such folder" in out and not state.exists()


def test_token_that_cannot_be_an_http_header_is_one_line(fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("abc\ndef\n")
    ca = fleet.state / "tls" / "ca.pem"
    args = ["--url", fleet.admin_url, "--token-file", tmp_path / "tok", "--ca", ca]
    out = _run("fleet", "release", "list", *args, code=2)
    assert "printable ASCII" in out


def test_serve_with_an_unusable_certificate_is_one_line(tmp_path: Path, sb_key_dir: Path) -> None:
    state = tmp_path / "fleet"
    _run("fleet", "init", "--pub-key", sb_key_dir / "ecdsa256.pub.pem", state)
    junk = tmp_path / "junk.pem"
    junk.write_text("junk")
    out = _run(
        "fleet", "serve", "--port", "0", "--admin-port", "0", "--cert", junk, "--key", junk,
        state, code=1,
    )  # fmt: skip
    assert "cannot load the server certificate" in out


def test_serve_refuses_a_port_out_of_range_in_one_line(tmp_path: Path) -> None:
    for option in ("--port", "--admin-port"):
        for port in ("99999", "-1"):
            out = _run("fleet", "serve", option, port, tmp_path / "fleet", code=2)
            assert f"expected a TCP port 0-65535, found '{port}'" in out
            assert "Traceback" not in out


def test_a_malformed_url_is_a_usage_error_in_every_fleet_command(tmp_path: Path) -> None:
    for url in ("https://[::1", "https://fleet.example:99999", "http://fleet.example"):
        for command in (["release", "list"], ["devices", "list"], ["stats"], ["posture"]):
            out = _run("fleet", *command, "--url", url, code=2)
            assert "Invalid value for '--url'" in out and "Traceback" not in out
    out = _run("fleet", "serve", "--database", "postgresql://[::1", tmp_path / "f", code=2)
    assert "Invalid value for '--database'" in out and "Traceback" not in out
    out = _run("fleet", "serve", "--host", "not a host", tmp_path / "f", code=2)
    assert "expected a host name or IP address" in out


def test_the_environment_variables_show_in_help() -> None:
    out = _run("fleet", "release", "list", "--help")
    for variable in ("ESPSEC_FLEET_URL", "ESPSEC_FLEET_TOKEN_FILE", "ESPSEC_FLEET_CA"):
        assert variable in out
    assert "ESPSEC_FLEET_DATABASE" in _run("fleet", "serve", "--help")


def test_init_writes_no_token_over_an_existing_file(tmp_path: Path, sb_key_dir: Path) -> None:
    state, token = tmp_path / "fleet", tmp_path / "token"
    token.write_text("keep me\n")
    key = sb_key_dir / "ecdsa256.pub.pem"
    out = _run("fleet", "init", "--pub-key", key, "--token-output", token, state, code=2)
    assert "refusing to overwrite" in out and not state.exists()
    assert token.read_text() == "keep me\n"
    out = _run("fleet", "init", "--pub-key", key, "--token-output", "-", state, code=2)
    assert "never written to standard output" in out and not state.exists()
