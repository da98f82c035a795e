"""Every command's exit codes, as a table ``test_exit_codes.py`` runs (``docs/cli.md``).

0: done (a check passed); 1: a check failed, or bad input; 2: a usage error (unknown
option, missing argument, contradictory flags, a value out of range). A row is a command
path, a name, the expected code, a builder returning the arguments after ``espsec``
(made with a :class:`~output_cases.Kit`; paths may be ``Path`` objects) and a piece of
the message standard error must hold.

Add rows with :func:`row` next to the others of the group. Every command of the click
tree needs a row exiting 0 and a row exiting non-zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .output_cases import Kit

Argv = Sequence[str | Path]


@dataclass(frozen=True)
class ExitCase:
    """One command line and the exit code and message it must give."""

    path: str
    name: str
    code: int
    build: Callable[[Kit], Argv]
    message: str = ""


EXIT_CASES: list[ExitCase] = []


def row(path: str, name: str, code: int, build: Callable[[Kit], Argv], message: str = "") -> None:
    """Add one row to :data:`EXIT_CASES`."""
    EXIT_CASES.append(ExitCase(path, name, code, build, message))


def junk(kit: Kit) -> Path:
    """A file that is nothing espsec reads."""
    return kit.file("junk.bin", b"this is not any format\n")


def short_key(kit: Kit) -> Path:
    """A 48-byte key file: the wrong size for every key espsec reads."""
    return kit.file("short.key", bytes(48), mode=0o600)


def _ds_data(kit: Kit) -> Path:
    from espsec._pem import load_private_key
    from espsec.identity import ds

    key = load_private_key(kit.sb_key("rsa3072").read_bytes())
    data = ds.encrypt(key, kit.hmac_key().read_bytes())  # type: ignore[arg-type]
    return kit.file("ds.bin", data.to_bytes())


def _secure_cert(kit: Kit) -> Path:
    from espsec.identity import secure_cert as sc

    cert = sc.encode_certificate(kit.certificate().read_bytes())
    return kit.file("esp_secure_cert.bin", sc.build(device_cert=cert).to_bytes())


def _bundle(kit: Kit) -> Path:
    from espsec._pem import load_certificates
    from espsec.identity.cert_bundle import CertBundle

    certs = load_certificates(kit.certificate().read_bytes())
    return kit.file("x509_crt_bundle", CertBundle.from_certificates(certs).to_bytes())


def _release(kit: Kit) -> Path:
    from espsec import ota, secure_boot

    key = secure_boot.load_private_key(kit.sb_key().read_bytes())
    return kit.file("release.zip", ota.pack(kit.app().read_bytes(), [key]).to_bytes())


def _tampered_signed_app(kit: Kit) -> Path:
    data = bytearray(kit.signed_app().read_bytes())
    data[0x40] ^= 1
    return kit.file("tampered.bin", bytes(data))


# -- secure-boot ------------------------------------------------------------------------

SB = "secure-boot"
row(f"{SB} generate-key", "ok", 0, lambda k: [SB, "generate-key", "--scheme", "ecdsa256",
    "-o", k.new("k.pem")])  # fmt: skip
row(f"{SB} generate-key", "unknown scheme", 2, lambda k: [SB, "generate-key", "--scheme", "rsa1024",
    "-o", k.new("k.pem")], "rsa1024")  # fmt: skip
row(f"{SB} generate-key", "existing file", 2, lambda k: [SB, "generate-key", "-o", k.data()],
    "refusing to overwrite")  # fmt: skip
row(f"{SB} extract-public-key", "ok", 0, lambda k: [SB, "extract-public-key", "-o",
    k.new("p.pem"), k.sb_key()])  # fmt: skip
row(f"{SB} extract-public-key", "not a key", 1, lambda k: [SB, "extract-public-key", "-o",
    k.new("p.pem"), junk(k)], "PEM")  # fmt: skip
row(f"{SB} extract-public-key", "missing -o", 2, lambda k: [SB, "extract-public-key", k.sb_key()],
    "--output")  # fmt: skip
row(f"{SB} sign", "ok", 0, lambda k: [SB, "sign", "-k", k.sb_key(), "-o", k.new("s.bin"),
    k.app()])  # fmt: skip
row(f"{SB} sign", "not an image", 1, lambda k: [SB, "sign", "-k", k.sb_key(), "-o",
    k.new("s.bin"), junk(k)], "magic")  # fmt: skip
row(f"{SB} sign", "append to an unsigned image", 1, lambda k: [SB, "sign", "-a", "-k",
    k.sb_key(), "-o", k.new("s.bin"), k.app()], "image is not signed")  # fmt: skip
row(f"{SB} sign", "unpaired --signature", 2, lambda k: [SB, "sign", "--signature", junk(k),
    "-o", k.new("s.bin"), k.app()], "in pairs")  # fmt: skip
row(f"{SB} sign", "scheme the ROM refuses", 2, lambda k: [SB, "sign", "-k", k.sb_key(),
    "--chip", "esp32s3", "-o", k.new("s.bin"), k.app("esp32s3")], "ROM")  # fmt: skip
row(f"{SB} digest", "ok", 0, lambda k: [SB, "digest", "--scheme", "ecdsa256", "-o",
    k.new("d.bin"), k.app()])  # fmt: skip
row(f"{SB} digest", "--scheme and --pub-key", 2, lambda k: [SB, "digest", "--scheme",
    "ecdsa256", "--pub-key", k.sb_pub(), "-o", k.new("d.bin"), k.app()], "exactly one")  # fmt: skip
row(f"{SB} digest", "not an image", 1, lambda k: [SB, "digest", "--scheme", "rsa3072", "-o",
    k.new("d.bin"), junk(k)], "magic")  # fmt: skip
row(f"{SB} verify", "verified", 0, lambda k: [SB, "verify", "-k", k.sb_pub(), k.signed_app()])
row(f"{SB} verify", "tampered image", 1, lambda k: [SB, "verify", "-k", k.sb_pub(),
    _tampered_signed_app(k)], "image digest mismatch")  # fmt: skip
row(f"{SB} verify", "untrusted key", 1, lambda k: [SB, "verify", "-k", k.sb_pub("ecdsa256-b"),
    k.signed_app()], "not trusted")  # fmt: skip
row(f"{SB} verify", "unsigned image", 1, lambda k: [SB, "verify", "-k", k.sb_pub(), k.app()],
    "image is not signed")  # fmt: skip
row(f"{SB} verify", "nothing to trust", 2, lambda k: [SB, "verify", k.signed_app()], "trust")
row(f"{SB} verify", "--efuse-file with --key-digest", 2, lambda k: [SB, "verify",
    "--efuse-file", junk(k), "--key-digest", "-", k.signed_app()], "--efuse-file")  # fmt: skip
row(f"{SB} verify", "--chip without --efuse-file", 2, lambda k: [SB, "verify", "-k", k.sb_pub(),
    "--chip", "esp32s3", k.signed_app()], "--efuse-file")  # fmt: skip
row(f"{SB} key-digest", "ok", 0, lambda k: [SB, "key-digest", k.sb_pub()])
row(f"{SB} key-digest", "not a key", 1, lambda k: [SB, "key-digest", junk(k)], "PEM")
row(f"{SB} key-digest", "--json with -o -", 2, lambda k: [SB, "key-digest", "--json", "-o", "-",
    k.sb_pub()], "standard output")  # fmt: skip
row(f"{SB} info", "ok", 0, lambda k: [SB, "info", k.signed_app()])
row(f"{SB} info", "unsigned image", 1, lambda k: [SB, "info", k.app()], "image is not signed")
row(f"{SB} info", "missing file", 2, lambda k: [SB, "info", k.folder / "nope.bin"], "nope.bin")

# -- flash-encryption -------------------------------------------------------------------

FE = "flash-encryption"
row(f"{FE} generate-key", "ok", 0, lambda k: [FE, "generate-key", "-o", k.new("fe.key")])
row(f"{FE} generate-key", "unsupported size", 2, lambda k: [FE, "generate-key", "--bits", "384",
    "-o", k.new("fe.key")], "384")  # fmt: skip
row(f"{FE} generate-key", "to standard output", 2, lambda k: [FE, "generate-key", "-o", "-"],
    "never written to standard output")  # fmt: skip
for _verb in ("encrypt", "decrypt"):
    row(f"{FE} {_verb}", "ok", 0, lambda k, v=_verb: [FE, v, "-k", k.fe_key(), "--address",
        "0x10000", "-o", k.new("o.bin"), k.data()])  # fmt: skip
    row(f"{FE} {_verb}", "key of the wrong size", 1, lambda k, v=_verb: [FE, v, "-k",
        short_key(k), "--address", "0", "-o", k.new("o.bin"), k.data()],
        "found 48 bytes")  # fmt: skip
    row(f"{FE} {_verb}", "key size the chip lacks", 1, lambda k, v=_verb: [FE, v, "-k",
        k.file("fe512.key", bytes(64), mode=0o600), "--chip", "esp32c3", "--address", "0", "-o",
        k.new("o.bin"), k.data()], "512-bit")  # fmt: skip
    row(f"{FE} {_verb}", "unaligned address", 2, lambda k, v=_verb: [FE, v, "-k", k.fe_key(),
        "--address", "0x1001", "-o", k.new("o.bin"), k.data()], "multiple of 16")  # fmt: skip
    row(f"{FE} {_verb}", "missing --address", 2, lambda k, v=_verb: [FE, v, "-k", k.fe_key(),
        "-o", k.new("o.bin"), k.data()], "--address")  # fmt: skip
row(f"{FE} encrypt-flash", "ok", 0, lambda k: [FE, "encrypt-flash", "-k", k.fe_key(),
    "--partition-table", k.partition_csv(), "--write", "0x10000", k.app("esp32s3"),
    "--flash-size", "1MB", "-o", k.new("flash.bin")])  # fmt: skip
row(f"{FE} encrypt-flash", "flash larger than any chip's", 2, lambda k: [FE, "encrypt-flash", "-k",
    k.fe_key(), "--partition-table", k.partition_csv(), "--flash-size", "0x100000000", "-o",
    k.new("flash.bin")], "larger than")  # fmt: skip
row(f"{FE} encrypt-flash", "--build-dir and --partition-table", 2, lambda k: [FE, "encrypt-flash",
    "-k", k.fe_key(), "--build-dir", k.folder, "--partition-table", k.partition_csv(), "-o",
    k.new("flash.bin")], "not both")  # fmt: skip
row(f"{FE} encrypt-flash", "malformed partition table", 1, lambda k: [FE, "encrypt-flash", "-k",
    k.fe_key(), "--partition-table", junk(k), "--flash-size", "1MB", "-o", k.new("flash.bin")],
    "junk.bin")  # fmt: skip

# -- image ------------------------------------------------------------------------------

row("image build-app", "ok", 0, lambda k: ["image", "build-app", "--chip", "esp32c6", "-o",
    k.new("a.bin")])  # fmt: skip
row("image build-app", "unknown chip", 2, lambda k: ["image", "build-app", "--chip", "esp8266",
    "-o", k.new("a.bin")], "esp8266")  # fmt: skip
row("image build-app", "code size out of range", 2, lambda k: ["image", "build-app", "--chip",
    "esp32s3", "--code-size", "0x10000000", "-o", k.new("a.bin")], "code-size")  # fmt: skip
row("image build-bootloader", "ok", 0, lambda k: ["image", "build-bootloader", "--chip",
    "esp32p4", "-o", k.new("b.bin")])  # fmt: skip
row("image build-bootloader", "missing --chip", 2, lambda k: ["image", "build-bootloader", "-o",
    k.new("b.bin")], "--chip")  # fmt: skip
row("image info", "valid image", 0, lambda k: ["image", "info", k.app()])
row("image info", "not an image", 1, lambda k: ["image", "info", junk(k)], "not an ESP image")
row("image info", "bad checksum", 1, lambda k: ["image", "info", k.file("bad.bin",
    k.app().read_bytes()[:-1] + b"\0")])  # fmt: skip

# -- nvs --------------------------------------------------------------------------------

row("nvs generate", "ok", 0, lambda k: ["nvs", "generate", k.nvs_csv(), "--size", "0x3000", "-o",
    k.new("n.bin")])  # fmt: skip
row("nvs generate", "size under 0x3000", 2, lambda k: ["nvs", "generate", k.nvs_csv(), "--size",
    "0x2000", "-o", k.new("n.bin")], "at least 0x3000")  # fmt: skip
row("nvs generate", "size over 128 MiB", 2, lambda k: ["nvs", "generate", k.nvs_csv(), "--size",
    "0x100000000", "-o", k.new("n.bin")], "larger than")  # fmt: skip
row("nvs generate", "malformed CSV", 1, lambda k: ["nvs", "generate", k.file("bad.csv",
    b"key,type,encoding,value\nx,data,u8,1\n"), "--size", "0x3000", "-o", k.new("n.bin")],
    "bad.csv")  # fmt: skip
row("nvs encrypt", "ok", 0, lambda k: ["nvs", "encrypt", k.nvs_csv(), "--size", "0x3000",
    "--keys", k.nvs_keys(), "-o", k.new("n.bin")])  # fmt: skip
row("nvs encrypt", "no keys", 2, lambda k: ["nvs", "encrypt", k.nvs_csv(), "--size", "0x3000",
    "-o", k.new("n.bin")], "--keys")  # fmt: skip
row("nvs encrypt", "--keys and --hmac-key", 2, lambda k: ["nvs", "encrypt", k.nvs_csv(), "--size",
    "0x3000", "--keys", k.nvs_keys(), "--hmac-key", k.hmac_key(), "-o", k.new("n.bin")],
    "not both")  # fmt: skip
row("nvs encrypt", "HMAC key of the wrong size", 1, lambda k: ["nvs", "encrypt", k.nvs_csv(),
    "--size", "0x3000", "--hmac-key", short_key(k), "-o", k.new("n.bin")], "short.key")  # fmt: skip
row("nvs decrypt", "ok", 0, lambda k: ["nvs", "decrypt", k.nvs_partition(encrypted=True),
    "--keys", k.nvs_keys(), "-o", k.new("p.bin")])  # fmt: skip
row("nvs decrypt", "plain partition", 1, lambda k: ["nvs", "decrypt", k.nvs_partition(),
    "--keys", k.nvs_keys(), "-o", k.new("p.bin")], "partition is not encrypted")  # fmt: skip
row("nvs decrypt", "wrong keys", 1, lambda k: ["nvs", "decrypt", k.nvs_partition(encrypted=True),
    "--hmac-key", k.hmac_key(), "-o", k.new("p.bin")], "wrong NVS keys")  # fmt: skip
row("nvs decrypt", "no keys", 2, lambda k: ["nvs", "decrypt", k.nvs_partition(), "-o",
    k.new("p.bin")], "--keys")  # fmt: skip
row("nvs dump", "ok", 0, lambda k: ["nvs", "dump", k.nvs_partition()])
row("nvs dump", "encrypted without keys", 1, lambda k: ["nvs", "dump",
    k.nvs_partition(encrypted=True)], "give its keys")  # fmt: skip
row("nvs dump", "partition and --device", 2, lambda k: ["nvs", "dump", k.nvs_partition(),
    "--device", k.folder], "not both")  # fmt: skip
row("nvs generate-keys", "ok", 0, lambda k: ["nvs", "generate-keys", "-o", k.new("k.bin")])
row("nvs generate-keys", "HMAC key of the wrong size", 1, lambda k: ["nvs", "generate-keys",
    "--hmac-key", short_key(k), "-o", k.new("k.bin")], "short.key")  # fmt: skip
row("nvs generate-keys", "--hmac-key and --hmac-key-output", 2, lambda k: ["nvs",
    "generate-keys", "--hmac-key", k.hmac_key(), "--hmac-key-output", k.new("h.bin"), "-o",
    k.new("k.bin")], "not both")  # fmt: skip

# -- ota --------------------------------------------------------------------------------

row("ota encrypt", "ok", 0, lambda k: ["ota", "encrypt", "-k", k.sb_pub("rsa3072"), "-o",
    k.new("e.bin"), k.app()])  # fmt: skip
row("ota encrypt", "not a recipient key", 1, lambda k: ["ota", "encrypt", "-k", junk(k), "-o",
    k.new("e.bin"), k.app()], "junk.bin")  # fmt: skip
row("ota decrypt", "ok", 0, lambda k: ["ota", "decrypt", "--hmac-key", k.hmac_key(), "-o",
    k.new("d.bin"), k.ota_encrypted()])  # fmt: skip
row("ota decrypt", "GCM tag failure", 1, lambda k: ["ota", "decrypt", "--hmac-key",
    k.file("other.key", bytes(32), mode=0o600), "-o", k.new("d.bin"), k.ota_encrypted()],
    "GCM tag does not verify")  # fmt: skip
row("ota decrypt", "HMAC key of the wrong size", 1, lambda k: ["ota", "decrypt", "--hmac-key",
    short_key(k), "-o", k.new("d.bin"), k.ota_encrypted()], "expected 32 bytes")  # fmt: skip
row("ota decrypt", "--key and --hmac-key", 2, lambda k: ["ota", "decrypt", "-k",
    k.sb_key("rsa3072"), "--hmac-key", k.hmac_key(), "-o", k.new("d.bin"), k.ota_encrypted()],
    "exactly one")  # fmt: skip
row("ota device-key", "ok", 0, lambda k: ["ota", "device-key", "--hmac-key", k.hmac_key(), "-o",
    k.new("dev.pem")])  # fmt: skip
row("ota device-key", "HMAC key of the wrong size", 1, lambda k: ["ota", "device-key",
    "--hmac-key", short_key(k), "-o", k.new("dev.pem")], "expected 32 bytes")  # fmt: skip
row("ota pack", "ok", 0, lambda k: ["ota", "pack", "-k", k.sb_key(), "-o", k.new("r.zip"),
    k.app()])  # fmt: skip
row("ota pack", "no key", 2, lambda k: ["ota", "pack", "-o", k.new("r.zip"), k.app()],
    "signing key")  # fmt: skip
row("ota pack", "--signed-image-output without a plain payload", 2, lambda k: ["ota", "pack",
    "-k", k.sb_key(), "--encrypt-to", k.sb_pub("rsa3072"), "--signed-image-output",
    k.new("s.bin"), "-o", k.new("r.zip"), k.app()], "--include-plaintext")  # fmt: skip
row("ota pack", "two outputs on one file", 2, lambda k: ["ota", "pack", "-k", k.sb_key(),
    "--signed-image-output", k.data(), "-o", k.data(), k.app()], "same output")  # fmt: skip
row("ota pack", "not an image", 1, lambda k: ["ota", "pack", "-k", k.sb_key(), "-o",
    k.new("r.zip"), junk(k)], "junk.bin")  # fmt: skip
row("ota inspect", "ok", 0, lambda k: ["ota", "inspect", _release(k)])
row("ota inspect", "unknown file", 1, lambda k: ["ota", "inspect", junk(k)], "junk.bin")
row("ota verify-release", "verified", 0, lambda k: ["ota", "verify-release", "-k", k.sb_pub(),
    _release(k)])  # fmt: skip
row("ota verify-release", "untrusted key", 1, lambda k: ["ota", "verify-release", "-k",
    k.sb_pub("ecdsa256-b"), _release(k)])  # fmt: skip
row("ota verify-release", "short key digest", 2, lambda k: ["ota", "verify-release",
    "--key-digest", "0011", _release(k)], "32 bytes")  # fmt: skip

# -- ds, secure-cert, cert-bundle -------------------------------------------------------

row("ds encrypt", "ok", 0, lambda k: ["ds", "encrypt", "--hmac-key", k.hmac_key(), "-k",
    k.sb_key("rsa3072"), "-o", k.new("ds.bin")])  # fmt: skip
row("ds encrypt", "HMAC key of the wrong size", 1, lambda k: ["ds", "encrypt", "--hmac-key",
    short_key(k), "-k", k.sb_key("rsa3072"), "-o", k.new("ds.bin")],
    "expected 32 bytes")  # fmt: skip
row("ds encrypt", "not an RSA key", 1, lambda k: ["ds", "encrypt", "--hmac-key", k.hmac_key(),
    "-k", k.sb_key(), "-o", k.new("ds.bin")], "ecdsa256.pem")  # fmt: skip
row("ds encrypt", "bad --iv", 2, lambda k: ["ds", "encrypt", "--hmac-key", k.hmac_key(), "-k",
    k.sb_key("rsa3072"), "--iv", "zz", "-o", k.new("ds.bin")], "--iv")  # fmt: skip
row("ds check", "opens", 0, lambda k: ["ds", "check", "--hmac-key", k.hmac_key(), _ds_data(k)])
row("ds check", "another HMAC key", 1, lambda k: ["ds", "check", "--hmac-key",
    k.file("other.key", bytes(32), mode=0o600), _ds_data(k)])  # fmt: skip
row("ds check", "not DS data", 1, lambda k: ["ds", "check", "--hmac-key", k.hmac_key(),
    junk(k)], "junk.bin")  # fmt: skip
row("secure-cert generate", "ok", 0, lambda k: ["secure-cert", "generate", "--device-cert",
    k.certificate(), "-o", k.new("c.bin")])  # fmt: skip
row("secure-cert generate", "two key sources", 2, lambda k: ["secure-cert", "generate",
    "--private-key", k.sb_key(), "--hmac-derived", "--hmac-key", k.hmac_key(), "-o",
    k.new("c.bin")], "choose one key")  # fmt: skip
row("secure-cert generate", "not a certificate", 1, lambda k: ["secure-cert", "generate",
    "--device-cert", junk(k), "-o", k.new("c.bin")], "junk.bin")  # fmt: skip
row("secure-cert dump", "ok", 0, lambda k: ["secure-cert", "dump", _secure_cert(k)])
row("secure-cert dump", "not a partition", 1, lambda k: ["secure-cert", "dump", junk(k)],
    "junk.bin")  # fmt: skip
row("cert-bundle build", "ok", 0, lambda k: ["cert-bundle", "build", "-o", k.new("b"),
    k.certificate()])  # fmt: skip
row("cert-bundle build", "no certificates", 2, lambda k: ["cert-bundle", "build", "-o",
    k.new("b")], "CERTS")  # fmt: skip
row("cert-bundle build", "not a certificate", 1, lambda k: ["cert-bundle", "build", "-o",
    k.new("b"), junk(k)], "junk.bin")  # fmt: skip
row("cert-bundle dump", "ok", 0, lambda k: ["cert-bundle", "dump", _bundle(k)])
row("cert-bundle dump", "not a bundle", 1, lambda k: ["cert-bundle", "dump", junk(k)], "junk.bin")
row("cert-bundle verify-chain", "trusted", 0, lambda k: ["cert-bundle", "verify-chain", "--at",
    "2026-06-01", _bundle(k), k.certificate()])  # fmt: skip
row("cert-bundle verify-chain", "expired", 1, lambda k: ["cert-bundle", "verify-chain", "--at",
    "2040-01-01", _bundle(k), k.certificate()])  # fmt: skip
row("cert-bundle verify-chain", "bad --at", 2, lambda k: ["cert-bundle", "verify-chain", "--at",
    "yesterday", _bundle(k), k.certificate()], "--at")  # fmt: skip


# -- device, efuse, factory, fleet, prov, local-ctrl; audit, advisories: in their own modules

from . import exit_cases_apps, exit_cases_audit  # noqa: E402, F401  (register their rows)
