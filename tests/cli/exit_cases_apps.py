"""Exit-code rows (see ``exit_cases.py``) of the application groups: ``device``, ``efuse``,
``factory``, ``fleet``, ``prov`` and ``local-ctrl``.

Commands that talk to a server (the fleet's admin commands, ``local-ctrl``) run against
one server per test process, started on first use and stopped when the process exits.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import shutil
import tempfile
from pathlib import Path

from .exit_cases import junk, row, short_key
from .output_cases import Kit, device_folder, identity_device

KEY_DIGEST = bytes(range(32)).hex()


def _blank_device(kit: Kit) -> Path:
    """A blank virtual ESP32-S3 (nothing in flash: the ROM refuses to boot)."""
    folder = kit.folder / "blank"
    if not folder.exists():
        from espsec.device import workflow

        workflow.create_device(folder, "esp32s3", "1MB")
    return folder


def _secure_boot_device(kit: Kit) -> Path:
    """A device with Secure Boot on its first boot, bootloader and app signed with two
    RSA keys: the app can revoke the second one."""
    folder = kit.folder / "dev-sb"
    if not folder.exists():
        from espsec import secure_boot

        from ..device.kit import OTA0, SECURE, app, bootloader, device, signed

        keys = [
            secure_boot.load_private_key(kit.sb_key(name).read_bytes())
            for name in ("rsa3072", "rsa3072-b")
        ]
        device(
            SECURE, boot=signed(bootloader(), *keys), apps={OTA0: signed(app("1.0.0", 1), *keys)}
        ).save(folder)
    return folder


def _ca_files(kit: Kit) -> tuple[Path, Path]:
    """The device CA's certificate and private key (PEM)."""
    from cryptography.hazmat.primitives import serialization

    from .output_cases import _device_ca

    cert, key = _device_ca()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)  # type: ignore[attr-defined]
    key_pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return kit.file("device-ca.pem", cert_pem), kit.file("device-ca-key.pem", key_pem, mode=0o600)


def _efuse_file(kit: Kit, *, key0_readable: bool = False) -> Path:
    """A fresh ESP32-S3 eFuse file (with a readable HMAC key in BLOCK_KEY0 if asked)."""
    name = "efuse-key0.bin" if key0_readable else "efuse.bin"
    path = kit.folder / name
    if not path.exists():
        from espsec import efuse

        chip = efuse.create(path, "esp32s3")
        if key0_readable:
            efuse.burn_key(chip, "BLOCK_KEY0", bytes(range(32)), "HMAC_UP", read_protect=False)
            efuse.save(chip, path)
    return path


def _plan(kit: Kit, line: str) -> Path:
    return kit.file(f"plan-{abs(hash(line))}.txt", f"{line}\n".encode())


def _batch(kit: Kit) -> Path:
    """A one-device factory batch spec and its inputs."""
    folder = kit.folder / "batch"
    if not folder.exists():
        from ..factory.kit import write_batch

        folder.mkdir()
        return write_batch(folder, count=1)
    return next(folder.glob("*.toml"))


# -- device -----------------------------------------------------------------------------

D = "device"
row(f"{D} create", "ok", 0, lambda k: [D, "create", "--chip", "esp32s3", "--flash-size", "1MB",
    k.new("d")])  # fmt: skip
row(f"{D} create", "flash size above the chip's", 2, lambda k: [D, "create", "--chip", "esp32s3",
    "--flash-size", "0x100000000", k.new("d")], "larger than the chip's largest flash")  # fmt: skip
row(f"{D} flash", "ok", 0, lambda k: [D, "flash", device_folder(k), "--write", "0x10000",
    k.app("esp32s3")])  # fmt: skip
row(f"{D} flash", "--encrypt --pre-encrypted", 2, lambda k: [D, "flash", device_folder(k),
    "--encrypt", "--pre-encrypted", "--write", "0x10000", k.app("esp32s3")],
    "exclude each other")  # fmt: skip
row(f"{D} boot", "ok", 0, lambda k: [D, "boot", device_folder(k)])
row(f"{D} boot", "refused", 1, lambda k: [D, "boot", _blank_device(k)])
row(f"{D} boot", "--mark-invalid refused", 1, lambda k: [D, "boot", device_folder(k),
    "--mark-invalid"])  # fmt: skip
row(f"{D} ota", "ok", 0, lambda k: [D, "ota", device_folder(k), k.app("esp32s3")])
row(f"{D} ota", "malformed --server", 2, lambda k: [D, "ota", device_folder(k), "--server",
    "https://[::1"], "--server")  # fmt: skip
row(f"{D} provision-ota", "ok", 0, lambda k: [D, "provision-ota", device_folder(k), "--server",
    "https://fleet.example", "--ca", k.certificate(), "--manifest-key", k.sb_pub("ecdsa256"),
    "--device-id", "dev-1"])  # fmt: skip
row(f"{D} provision-ota", "--ca and --pin", 2, lambda k: [D, "provision-ota", device_folder(k),
    "--server", "https://fleet.example", "--ca", k.certificate(), "--pin", k.certificate(),
    "--manifest-key", k.sb_pub("ecdsa256")], "exactly one of --ca or --pin")  # fmt: skip
row(f"{D} revoke-key", "ok", 0, lambda k: [D, "revoke-key", _secure_boot_device(k), "1"])
row(f"{D} revoke-key", "Secure Boot off", 1, lambda k: [D, "revoke-key", device_folder(k), "1"])
row(f"{D} status", "ok", 0, lambda k: [D, "status", device_folder(k)])
row(f"{D} status", "not a device", 1, lambda k: [D, "status", k.folder],
    "virtual device description not found")  # fmt: skip
row(f"{D} jtag", "ok", 0, lambda k: [D, "jtag", device_folder(k)])
row(f"{D} jtag", "not a token", 1, lambda k: [D, "jtag", device_folder(k), "--token-file",
    junk(k)], "not a JTAG token")  # fmt: skip
row(f"{D} sign", "ok", 0, lambda k: [D, "sign", identity_device(k), k.data(), "-o",
    k.new("s.bin")])  # fmt: skip
row(f"{D} sign", "no identity", 1, lambda k: [D, "sign", device_folder(k), k.data(), "-o",
    k.new("s.bin")])  # fmt: skip
row(f"{D} provision-identity", "ok", 0, lambda k: [D, "provision-identity",
    device_folder(k), "--device-id", "dev-1", "--ca", _ca_files(k)[0], "--ca-key",
    _ca_files(k)[1]])  # fmt: skip
row(f"{D} provision-identity", "not a certificate", 1, lambda k: [D, "provision-identity",
    device_folder(k), "--device-id", "dev-1", "--ca", junk(k), "--ca-key", _ca_files(k)[1]],
    "junk.bin")  # fmt: skip
row(f"{D} serve", "ok", 0, lambda k: [D, "serve", device_folder(k), "--quiet",
    "--max-seconds", "0"])  # fmt: skip
row(f"{D} serve", "port out of range", 2, lambda k: [D, "serve", device_folder(k), "--port",
    "99999"], "expected a TCP port 0-65535")  # fmt: skip
row(f"{D} provision-serve", "ok", 0, lambda k: [D, "provision-serve", device_folder(k),
    "--sec-ver", "0", "--port", "0", "--max-seconds", "0"])  # fmt: skip
row(f"{D} provision-serve", "security 2 without a user", 2, lambda k: [D, "provision-serve",
    device_folder(k), "--port", "0"], "--sec2-username")  # fmt: skip
row(f"{D} local-ctrl-serve", "ok", 0, lambda k: [D, "local-ctrl-serve", device_folder(k),
    "--sec-ver", "0", "--port", "0", "--max-seconds", "0"])  # fmt: skip
row(f"{D} local-ctrl-serve", "--cert without --key", 2, lambda k: [D, "local-ctrl-serve",
    device_folder(k), "--sec-ver", "0", "--cert", k.certificate()], "both")  # fmt: skip

# -- efuse ------------------------------------------------------------------------------

E = "efuse"
row(f"{E} new", "ok", 0, lambda k: [E, "new", "--chip", "esp32s3", "--efuse-file",
    k.new("e.bin")])  # fmt: skip
row(f"{E} new", "existing file", 2, lambda k: [E, "new", "--chip", "esp32s3", "--efuse-file",
    k.data()], "refusing to overwrite")  # fmt: skip
row(f"{E} summary", "ok", 0, lambda k: [E, "summary", "--efuse-file", _efuse_file(k)])
row(f"{E} summary", "not an eFuse file", 1, lambda k: [E, "summary", "--efuse-file", junk(k)],
    "not an eFuse file for any supported chip")  # fmt: skip
row(f"{E} burn", "ok", 0, lambda k: [E, "burn", "--efuse-file", _efuse_file(k),
    "SECURE_VERSION", "1"])  # fmt: skip
row(f"{E} burn", "refused by the plan", 1, lambda k: [E, "burn", "--efuse-file", _efuse_file(k),
    "SECURE_BOOT_EN", "1"])  # fmt: skip
row(f"{E} burn", "unknown --allow code", 2, lambda k: [E, "burn", "--efuse-file",
    _efuse_file(k), "SECURE_BOOT_EN", "1", "--allow", "NOPE"], "SB_NO_DIGEST")  # fmt: skip
row(f"{E} burn-key", "ok", 0, lambda k: [E, "burn-key", "--efuse-file", _efuse_file(k),
    "BLOCK_KEY0", k.hmac_key(), "HMAC_UP"])  # fmt: skip
row(f"{E} burn-key", "key of the wrong size", 2, lambda k: [E, "burn-key", "--efuse-file",
    _efuse_file(k), "BLOCK_KEY0", short_key(k), "HMAC_UP"])  # fmt: skip
row(f"{E} burn-key-digest", "ok", 0, lambda k: [E, "burn-key-digest", "--efuse-file",
    _efuse_file(k), "--key-digest", KEY_DIGEST, "BLOCK_KEY1", "SECURE_BOOT_DIGEST0"])  # fmt: skip
row(f"{E} burn-key-digest", "no key", 2, lambda k: [E, "burn-key-digest", "--efuse-file",
    _efuse_file(k), "BLOCK_KEY1", "SECURE_BOOT_DIGEST0"], "give BLOCK PUBKEY PURPOSE")  # fmt: skip
row(f"{E} write-protect", "ok", 0, lambda k: [E, "write-protect", "--efuse-file",
    _efuse_file(k), "DIS_DOWNLOAD_MODE"])  # fmt: skip
row(f"{E} write-protect", "unknown field", 2, lambda k: [E, "write-protect", "--efuse-file",
    _efuse_file(k), "NOPE"], "NOPE")  # fmt: skip
row(f"{E} read-protect", "ok", 0, lambda k: [E, "read-protect", "--efuse-file",
    _efuse_file(k, key0_readable=True), "BLOCK_KEY0"])  # fmt: skip
row(f"{E} read-protect", "a USER key block", 1, lambda k: [E, "read-protect", "--efuse-file",
    _efuse_file(k), "BLOCK_KEY0"], "must stay")  # fmt: skip
row(f"{E} plan", "ok", 0, lambda k: [E, "plan", "--efuse-file", _efuse_file(k),
    _plan(k, "burn-efuse SECURE_VERSION 1")])  # fmt: skip
row(f"{E} plan", "refused", 1, lambda k: [E, "plan", "--efuse-file", _efuse_file(k),
    _plan(k, "burn-efuse SECURE_BOOT_EN 1")])  # fmt: skip
row(f"{E} security-info", "ok", 0, lambda k: [E, "security-info", "--efuse-file", _efuse_file(k)])
row(f"{E} security-info", "malformed --port", 2, lambda k: [E, "security-info", "--port",
    "socket://[::1"], "socket://HOST:PORT")  # fmt: skip

# -- factory ----------------------------------------------------------------------------

F = "factory"
row(f"{F} plan", "ok", 0, lambda k: [F, "plan", _batch(k)])
row(f"{F} plan", "missing spec", 2, lambda k: [F, "plan", k.new("spec.toml")], "does not exist")
row(f"{F} run", "ok", 0, lambda k: [F, "run", "--devices", k.new("devices"), _batch(k)])
row(f"{F} run", "no target", 2, lambda k: [F, "run", _batch(k)], "nothing to provision")
row(f"{F} resume", "nothing to resume", 0, lambda k: [F, "resume", "--devices", k.new("devices"),
    _batch(k)])  # fmt: skip
row(f"{F} resume", "devices and ports", 2, lambda k: [F, "resume", "--devices", k.folder,
    "--port", "socket://127.0.0.1:1", _batch(k)], "not both")  # fmt: skip
row(f"{F} status", "ok", 0, lambda k: [F, "status", _batch(k)])
row(f"{F} status", "journal URL with a password", 2, lambda k: [F, "status", "--journal",
    "postgresql://u:secret@db.example/x", _batch(k)], "password")  # fmt: skip

# -- prov, local-ctrl -------------------------------------------------------------------


def _password(kit: Kit, data: bytes = b"wifi-password\n") -> Path:
    return kit.file(f"password-{len(data)}", data, mode=0o600)


row("prov gen-sec2-cred", "ok", 0, lambda k: ["prov", "gen-sec2-cred", "--sec2-username", "u",
    "--sec2-password-file", _password(k), "-o", k.new("sec2.c")])  # fmt: skip
row("prov gen-sec2-cred", "empty password", 2, lambda k: ["prov", "gen-sec2-cred",
    "--sec2-username", "u", "--sec2-password-file", _password(k, b""), "-o", k.new("sec2.c")],
    "empty")  # fmt: skip


@functools.cache
def _local_ctrl() -> tuple[str, Path]:
    """A local control server (security 0) on a device, for this process: its address and
    certificate."""
    from espsec.device.local_ctrl import open_local_ctrl, server_identity, server_ssl_context
    from espsec.device.provisioning import DeviceRuntimeService, SecurityOptions
    from espsec.provisioning.protocomm import ProtocommHttpServer

    folder = Path(tempfile.mkdtemp(prefix="espsec-exit-lctrl-"))
    kit = Kit(folder, folder)
    dev = device_folder(kit)
    runtime = DeviceRuntimeService(dev)
    _, pc = open_local_ctrl(runtime, SecurityOptions(0))
    server = ProtocommHttpServer(pc, ssl_context=server_ssl_context(*server_identity(dev)))
    server.start()

    def stop() -> None:
        server.stop()
        runtime.close()
        shutil.rmtree(folder, ignore_errors=True)

    atexit.register(stop)
    return server.address, dev / "local_ctrl_cert.pem"


def _lctrl(*argv: str) -> list[str | Path]:
    address, cert = _local_ctrl()
    return ["local-ctrl", *argv, "--service-name", address, "--sec-ver", "0", "--pin", cert]


row("local-ctrl list", "ok", 0, lambda k: _lctrl("list"))
row("local-ctrl list", "malformed --service-name", 2, lambda k: ["local-ctrl", "list",
    "--service-name", "[::1", "--pin", k.certificate()], "HOST:PORT")  # fmt: skip
row("local-ctrl get", "ok", 0, lambda k: _lctrl("get", "status"))
row("local-ctrl get", "no trust", 2, lambda k: ["local-ctrl", "get", "status", "--service-name",
    "127.0.0.1:1", "--sec-ver", "0"], "exactly one of --ca, --pin or --cert-bundle")  # fmt: skip
row("local-ctrl set", "ok", 0, lambda k: _lctrl("set", "brightness", "10"))
row("local-ctrl set", "read-only property", 2, lambda k: _lctrl("set", "status", "x"))

# -- fleet ------------------------------------------------------------------------------


@functools.cache
def _fleet(name: str = "fleet") -> tuple[str, Path, Path, object]:
    """A fleet server for this process: its admin URL, state folder, a token file and the
    key its releases must be signed with."""
    from espsec import secure_boot
    from espsec.fleet import init_fleet, start_server

    folder = Path(tempfile.mkdtemp(prefix="espsec-exit-fleet-"))
    state = folder / name
    signer = secure_boot.load_private_key(secure_boot.generate_private_key("ecdsa256"))
    token = init_fleet(state, key_digests=[secure_boot.key_digest(signer)])
    token_file = folder / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    server = start_server(state)

    def stop() -> None:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)

    atexit.register(stop)
    return server.admin_url, state, token_file, signer


def _admin(*argv: str | Path, fleet: str = "fleet") -> list[str | Path]:
    url, state, token, _ = _fleet(fleet)
    return ["fleet", *argv, "--url", url, "--state-dir", state, "--token-file", token]


_VERSIONS = itertools.count(1)


def _release(kit: Kit, *, trusted: bool = True) -> Path:
    """A new release bundle (a version of its own), signed with the fleet's key or not."""
    from espsec import ota, secure_boot
    from espsec.chips import get_chip
    from espsec.image import build_app_image

    version = f"1.0.{next(_VERSIONS)}"
    app = build_app_image(get_chip("esp32p4"), version=version, code_size=512)
    key = _fleet("fleet")[3] if trusted else secure_boot.load_private_key(kit.sb_key().read_bytes())
    bundle = ota.pack(app, [key]).to_bytes()  # type: ignore[list-item]
    return kit.file(f"release-{version}.zip", bundle)


def _uploaded(kit: Kit) -> str:
    """The id of a new release on the fleet."""
    from espsec.fleet import AdminClient
    from espsec.ota import TlsTrust

    url, state, token, _ = _fleet("fleet")
    trust = TlsTrust.ca((state / "tls" / "ca.pem").read_bytes())
    with AdminClient(url, token.read_text().strip(), trust) as client:
        return str(client.upload_release(_release(kit).read_bytes())["id"])


def _rollout(kit: Kit, *, paused: bool = False) -> str:
    """The id of a new rollout (of a new release, to a cohort of its own)."""
    from espsec.fleet import AdminClient
    from espsec.ota import TlsTrust

    release = _uploaded(kit)
    url, state, token, _ = _fleet("fleet")
    trust = TlsTrust.ca((state / "tls" / "ca.pem").read_bytes())
    with AdminClient(url, token.read_text().strip(), trust) as client:
        rollout = client.start_rollout(release, f"cohort-{release[:8]}")["id"]
        if paused:
            client.rollout_action(rollout, "pause")
        return str(rollout)


BAD_URL = ["--url", "https://[::1"]
FL = "fleet"
row(f"{FL} init", "ok", 0, lambda k: [FL, "init", "--pub-key", k.sb_pub(), k.new("fleet")])
row(f"{FL} init", "--key-digest not hex", 2, lambda k: [FL, "init", "--key-digest", "xyz",
    k.new("fleet")], "neither a file nor 64 hex digits")  # fmt: skip
row(f"{FL} serve", "ok", 0, lambda k: [FL, "serve", "--port", "0", "--admin-port", "0",
    "--max-seconds", "0", _fleet_state(k)])  # fmt: skip
row(f"{FL} serve", "port out of range", 2, lambda k: [FL, "serve", "--port", "99999",
    k.new("fleet")], "expected a TCP port 0-65535")  # fmt: skip
row(f"{FL} serve", "--admin-port out of range", 2, lambda k: [FL, "serve", "--admin-port", "-1",
    k.new("fleet")], "expected a TCP port 0-65535")  # fmt: skip
row(f"{FL} release upload", "ok", 0, lambda k: _admin("release", "upload", _release(k)))
row(f"{FL} release upload", "untrusted signer", 1, lambda k: _admin("release", "upload",
    _release(k, trusted=False)))  # fmt: skip
row(f"{FL} release upload", "malformed URL", 2, lambda k: [FL, "release", "upload", *BAD_URL,
    _release(k)], "--url")  # fmt: skip
row(f"{FL} release list", "ok", 0, lambda k: _admin("release", "list"))
row(f"{FL} release list", "malformed URL", 2, lambda k: [FL, "release", "list", *BAD_URL],
    "--url")  # fmt: skip
row(f"{FL} cohort assign", "ok", 0, lambda k: _admin("cohort", "assign", "beta"))
row(f"{FL} cohort assign", "malformed URL", 2, lambda k: [FL, "cohort", "assign", *BAD_URL, "b"],
    "--url")  # fmt: skip
row(f"{FL} cohort list", "ok", 0, lambda k: _admin("cohort", "list"))
row(f"{FL} cohort list", "malformed URL", 2, lambda k: [FL, "cohort", "list", *BAD_URL], "--url")
row(f"{FL} devices list", "ok", 0, lambda k: _admin("devices", "list"))
row(f"{FL} devices list", "malformed URL", 2, lambda k: [FL, "devices", "list", *BAD_URL],
    "--url")  # fmt: skip
row(f"{FL} devices assign", "ok", 0, lambda k: _admin("devices", "assign", "dev-1", "beta"))
row(f"{FL} devices assign", "malformed URL", 2, lambda k: [FL, "devices", "assign", *BAD_URL,
    "d", "c"], "--url")  # fmt: skip
row(f"{FL} reports", "ok", 0, lambda k: _admin("reports", "--device-id", "dev-1"))
row(f"{FL} reports", "malformed URL", 2, lambda k: [FL, "reports", *BAD_URL], "--url")
row(f"{FL} stats", "ok", 0, lambda k: _admin("stats"))
row(f"{FL} stats", "malformed URL", 2, lambda k: [FL, "stats", *BAD_URL], "--url")
row(f"{FL} posture", "ok", 0, lambda k: _admin("posture", fleet="no-devices"))
row(f"{FL} posture", "malformed URL", 2, lambda k: [FL, "posture", *BAD_URL], "--url")
row(f"{FL} rollout start", "ok", 0, lambda k: _admin("rollout", "start", _uploaded(k),
    "--cohort", "canary"))  # fmt: skip
row(f"{FL} rollout start", "unknown release", 1, lambda k: _admin("rollout", "start", "nope"))
row(f"{FL} rollout start", "malformed URL", 2, lambda k: [FL, "rollout", "start", *BAD_URL,
    "r"], "--url")  # fmt: skip
for _action in ("pause", "resume", "abort"):
    row(f"{FL} rollout {_action}", "ok", 0, lambda k, a=_action: _admin(  # type: ignore[misc]
        "rollout", a, _rollout(k, paused=a == "resume")))  # fmt: skip
    row(f"{FL} rollout {_action}", "no such rollout", 1, lambda k, a=_action: _admin(  # type: ignore[misc]
        "rollout", a, "999999"))  # fmt: skip
    row(f"{FL} rollout {_action}", "malformed URL", 2, lambda k, a=_action: [FL, "rollout", a,  # type: ignore[misc]
        *BAD_URL, "1"], "--url")  # fmt: skip
row(f"{FL} rollout status", "ok", 0, lambda k: _admin("rollout", "status"))
row(f"{FL} rollout status", "malformed URL", 2, lambda k: [FL, "rollout", "status", *BAD_URL],
    "--url")  # fmt: skip
row(f"{FL} tls renew", "ok", 0, lambda k: [FL, "tls", "renew", _fleet_state(k)])
row(f"{FL} tls renew", "not a fleet", 1, lambda k: [FL, "tls", "renew", k.folder])


def _fleet_state(kit: Kit) -> Path:
    """A fleet state folder whose TLS CA key is kept in it (``tls renew`` needs it)."""
    state = kit.folder / "fleet-tls"
    if not state.exists():
        from espsec.fleet import init_fleet
        from espsec.fleet.config import DEFAULT_HOSTNAMES, TLS_DIR
        from espsec.fleet.tls import generate_tls

        init_fleet(state, key_digests=[bytes(32)])
        generate_tls(state / TLS_DIR, DEFAULT_HOSTNAMES)
    return state
