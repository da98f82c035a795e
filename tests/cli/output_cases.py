"""Every command that writes a file, as a table ``test_output_rule.py`` walks.

A row maps a command path (``"secure-boot sign"``; for a second output, the command
path and its option: ``"secure-boot generate-key --pub-key-output"``) to a builder that
makes the command's inputs with a :class:`Kit` and returns the :class:`Invocation`: the
arguments after ``espsec``, with :data:`OUT` where the output under test goes, and the
files the command reads (the output must never be written over one of them).

Add a row with the :func:`case` decorator next to the others of its group; the walker
fails for any command with an ``OutputPath`` option that has no row here.
"""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

OUT = "{OUT}"
"""Stands for the output path under test in :attr:`Invocation.argv`."""


@dataclass(frozen=True)
class Invocation:
    """One command line: ``argv`` (after ``espsec``, with :data:`OUT`) and its input files."""

    argv: list[str]
    inputs: list[Path] = field(default_factory=list)

    def with_output(self, output: str | Path) -> list[str]:
        """``argv`` with the output under test at ``output``."""
        return [str(output) if a == OUT else a for a in self.argv]


@dataclass(frozen=True)
class OutputCase:
    """How to run a command for one of its outputs, and what the output rule means for it."""

    build: Callable[[Kit], Invocation]
    secret: bool = False
    """A generated secret: created 0600, never over anything existing, never to stdout."""
    stdout: bool = True
    """``-`` writes this output to standard output (for a non-secret output)."""
    reads_inputs: bool = True
    """The command reads input files (``False`` only for commands that make from nothing)."""


CASES: dict[str, OutputCase] = {}
"""The table: command path (plus ``--x-output`` for a second output) -> case."""


def case(
    path: str, *, secret: bool = False, stdout: bool = True, reads_inputs: bool = True
) -> Callable[[Callable[[Kit], Invocation]], Callable[[Kit], Invocation]]:
    """Register the decorated builder as the row for ``path``."""

    def register(build: Callable[[Kit], Invocation]) -> Callable[[Kit], Invocation]:
        assert path not in CASES, f"two rows for {path!r}"
        CASES[path] = OutputCase(build, secret, stdout and not secret, reads_inputs)
        return build

    return register


class Kit:
    """Makes the input files of one invocation in a fresh folder (each file once)."""

    def __init__(self, folder: Path, sb_key_dir: Path) -> None:
        self.folder = folder
        self._sb_key_dir = sb_key_dir

    def new(self, name: str) -> Path:
        """A path in the folder where nothing exists yet (for outputs not under test)."""
        path = self.folder / name
        assert not path.exists()
        return path

    def file(self, name: str, data: bytes, *, mode: int = 0o644) -> Path:
        """A file with ``data`` (made once; later calls return the same path)."""
        path = self.folder / name
        if not path.exists():
            path.write_bytes(data)
            path.chmod(mode)
        return path

    def sb_key(self, name: str = "ecdsa256") -> Path:
        """A Secure Boot signing key (private PEM, 0600) from the session's keys."""
        return self.file(f"{name}.pem", (self._sb_key_dir / f"{name}.pem").read_bytes(), mode=0o600)

    def sb_pub(self, name: str = "ecdsa256") -> Path:
        """The public key PEM of :meth:`sb_key`."""
        return self.file(f"{name}.pub.pem", (self._sb_key_dir / f"{name}.pub.pem").read_bytes())

    def app(self, chip: str = "esp32p4") -> Path:
        """A synthetic app image (ESP32-P4 takes ECDSA and RSA Secure Boot keys)."""
        return self.file(f"app-{chip}.bin", _app(chip))

    def signed_app(self) -> Path:
        """:meth:`app` signed with :meth:`sb_key`."""
        from espsec import secure_boot

        key = secure_boot.load_private_key(self.sb_key().read_bytes())
        return self.file("app-signed.bin", secure_boot.sign(_app("esp32p4"), [key]))

    def hmac_key(self) -> Path:
        """A 32-byte HMAC eFuse key file (0600)."""
        return self.file("hmac.key", bytes(range(32)), mode=0o600)

    def fe_key(self) -> Path:
        """A 256-bit flash-encryption key file (0600)."""
        return self.file("fe.key", bytes(range(32, 64)), mode=0o600)

    def data(self) -> Path:
        """Flash contents, 16-byte aligned."""
        return self.file("data.bin", os.urandom(0x400))

    def partition_csv(self) -> Path:
        """A partition table CSV with a factory app at 0x10000 (1 MB flash)."""
        return self.file(
            "partitions.csv",
            b"nvs,data,nvs,0x9000,0x4000\nfactory,app,factory,0x10000,0x80000\n",
        )

    def nvs_csv(self) -> Path:
        """A generator CSV with one namespace and two values."""
        return self.file(
            "factory.csv", b"key,type,encoding,value\nwifi,namespace,,\nssid,data,string,lab\n"
        )

    def nvs_keys(self) -> Path:
        """An nvs_keys partition image (0600)."""
        from espsec.nvs import NvsKeys

        keys = NvsKeys.from_hmac_key(bytes(32))
        return self.file("nvs_keys.bin", keys.to_bytes(), mode=0o600)

    def nvs_partition(self, *, encrypted: bool = False) -> Path:
        """A 0x3000-byte NVS partition from :meth:`nvs_csv` (encrypted with :meth:`nvs_keys`)."""
        from espsec.nvs import NvsKeys, generate_csv_partition

        keys = NvsKeys.from_hmac_key(bytes(32)) if encrypted else None
        text = self.nvs_csv().read_text()
        name = "nvs-encrypted.bin" if encrypted else "nvs.bin"
        return self.file(name, generate_csv_partition(text, 0x3000, keys=keys))

    def ota_encrypted(self) -> Path:
        """:meth:`app` pre-encrypted for the device of :meth:`hmac_key`."""
        from espsec import ota

        public = ota.device_public_key(self.hmac_key().read_bytes())
        return self.file("app.enc", ota.encrypt_image(_app("esp32p4"), public))

    def certificate(self) -> Path:
        """A self-signed P-256 CA certificate (PEM)."""
        return self.file("cert.pem", _certificate())


@functools.cache
def _app(chip: str) -> bytes:
    from espsec.chips import get_chip
    from espsec.image import build_app_image

    return build_app_image(get_chip(chip), version="1.0.0", code_size=4096)


@functools.cache
def _certificate() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "espsec test root")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


# -- secure-boot ------------------------------------------------------------------------


@case("secure-boot generate-key", secret=True, reads_inputs=False)
def _sb_generate_key(kit: Kit) -> Invocation:
    return Invocation(["secure-boot", "generate-key", "--scheme", "ecdsa256", "-o", OUT])


@case("secure-boot generate-key --pub-key-output", reads_inputs=False)
def _sb_generate_key_pub(kit: Kit) -> Invocation:
    argv = ["secure-boot", "generate-key", "--scheme", "ecdsa256"]
    return Invocation([*argv, "-o", str(kit.new("k.pem")), "--pub-key-output", OUT])


@case("secure-boot extract-public-key")
def _sb_extract(kit: Kit) -> Invocation:
    key = kit.sb_key()
    return Invocation(["secure-boot", "extract-public-key", "-o", OUT, str(key)], [key])


@case("secure-boot sign")
def _sb_sign(kit: Kit) -> Invocation:
    key, app = kit.sb_key(), kit.app()
    return Invocation(["secure-boot", "sign", "-k", str(key), "-o", OUT, str(app)], [key, app])


@case("secure-boot digest")
def _sb_digest(kit: Kit) -> Invocation:
    pub, app = kit.sb_pub(), kit.app()
    argv = ["secure-boot", "digest", "--pub-key", str(pub), "-o", OUT, str(app)]
    return Invocation(argv, [pub, app])


@case("secure-boot digest --padded-image-output")
def _sb_digest_padded(kit: Kit) -> Invocation:
    pub, app = kit.sb_pub(), kit.app()
    argv = ["secure-boot", "digest", "--pub-key", str(pub), "-o", str(kit.new("d.bin"))]
    return Invocation([*argv, "--padded-image-output", OUT, str(app)], [pub, app])


@case("secure-boot key-digest")
def _sb_key_digest(kit: Kit) -> Invocation:
    pub = kit.sb_pub()
    return Invocation(["secure-boot", "key-digest", "-o", OUT, str(pub)], [pub])


# -- flash-encryption -------------------------------------------------------------------


@case("flash-encryption generate-key", secret=True, reads_inputs=False)
def _fe_generate_key(kit: Kit) -> Invocation:
    return Invocation(["flash-encryption", "generate-key", "--bits", "512", "-o", OUT])


def _fe_transform(verb: str) -> Callable[[Kit], Invocation]:
    def build(kit: Kit) -> Invocation:
        key, data = kit.fe_key(), kit.data()
        argv = ["flash-encryption", verb, "-k", str(key), "--address", "0x10000"]
        return Invocation([*argv, "-o", OUT, str(data)], [key, data])

    return build


case("flash-encryption encrypt")(_fe_transform("encrypt"))
case("flash-encryption decrypt")(_fe_transform("decrypt"))


@case("flash-encryption encrypt-flash")
def _fe_encrypt_flash(kit: Kit) -> Invocation:
    key, table, app = kit.fe_key(), kit.partition_csv(), kit.app("esp32s3")
    argv = ["flash-encryption", "encrypt-flash", "-k", str(key), "--partition-table", str(table)]
    argv += ["--write", "0x10000", str(app), "--flash-size", "1MB", "-o", OUT]
    return Invocation(argv, [key, table, app])


# -- image ------------------------------------------------------------------------------


@case("image build-app", reads_inputs=False)
def _image_build_app(kit: Kit) -> Invocation:
    return Invocation(["image", "build-app", "--chip", "esp32s3", "-o", OUT])


@case("image build-bootloader", reads_inputs=False)
def _image_build_bootloader(kit: Kit) -> Invocation:
    return Invocation(["image", "build-bootloader", "--chip", "esp32s3", "-o", OUT])


# -- nvs --------------------------------------------------------------------------------


@case("nvs generate")
def _nvs_generate(kit: Kit) -> Invocation:
    csv = kit.nvs_csv()
    return Invocation(["nvs", "generate", str(csv), "--size", "0x3000", "-o", OUT], [csv])


@case("nvs encrypt")
def _nvs_encrypt(kit: Kit) -> Invocation:
    csv, keys = kit.nvs_csv(), kit.nvs_keys()
    argv = ["nvs", "encrypt", str(csv), "--size", "0x3000", "--keys", str(keys), "-o", OUT]
    return Invocation(argv, [csv, keys])


@case("nvs decrypt")
def _nvs_decrypt(kit: Kit) -> Invocation:
    part, keys = kit.nvs_partition(encrypted=True), kit.nvs_keys()
    return Invocation(["nvs", "decrypt", str(part), "--keys", str(keys), "-o", OUT], [part, keys])


@case("nvs dump")
def _nvs_dump(kit: Kit) -> Invocation:
    part = kit.nvs_partition()
    return Invocation(["nvs", "dump", str(part), "-o", OUT], [part])


@case("nvs generate-keys", secret=True)
def _nvs_generate_keys(kit: Kit) -> Invocation:
    hmac = kit.hmac_key()
    return Invocation(["nvs", "generate-keys", "--hmac-key", str(hmac), "-o", OUT], [hmac])


@case("nvs generate-keys --hmac-key-output", secret=True, reads_inputs=False)
def _nvs_generate_hmac_key(kit: Kit) -> Invocation:
    argv = ["nvs", "generate-keys", "-o", str(kit.new("nvs_keys.bin"))]
    return Invocation([*argv, "--hmac-key-output", OUT])


# -- ota --------------------------------------------------------------------------------


@case("ota encrypt")
def _ota_encrypt(kit: Kit) -> Invocation:
    pub, app = kit.sb_pub("rsa3072"), kit.app()
    return Invocation(["ota", "encrypt", "-k", str(pub), "-o", OUT, str(app)], [pub, app])


@case("ota decrypt")
def _ota_decrypt(kit: Kit) -> Invocation:
    hmac, enc = kit.hmac_key(), kit.ota_encrypted()
    argv = ["ota", "decrypt", "--hmac-key", str(hmac), "-o", OUT, str(enc)]
    return Invocation(argv, [hmac, enc])


@case("ota device-key")
def _ota_device_key(kit: Kit) -> Invocation:
    hmac = kit.hmac_key()
    return Invocation(["ota", "device-key", "--hmac-key", str(hmac), "-o", OUT], [hmac])


@case("ota pack")
def _ota_pack(kit: Kit) -> Invocation:
    key, app = kit.sb_key(), kit.app()
    return Invocation(["ota", "pack", "-k", str(key), "-o", OUT, str(app)], [key, app])


@case("ota pack --signed-image-output")
def _ota_pack_signed(kit: Kit) -> Invocation:
    key, app = kit.sb_key(), kit.app()
    argv = ["ota", "pack", "-k", str(key), "-o", str(kit.new("release.zip"))]
    return Invocation([*argv, "--signed-image-output", OUT, str(app)], [key, app])


# -- ds, secure-cert, cert-bundle -------------------------------------------------------


@case("ds encrypt")
def _ds_encrypt(kit: Kit) -> Invocation:
    hmac, rsa = kit.hmac_key(), kit.sb_key("rsa3072")
    argv = ["ds", "encrypt", "--hmac-key", str(hmac), "-k", str(rsa), "-o", OUT]
    return Invocation(argv, [hmac, rsa])


@case("secure-cert generate")
def _secure_cert_generate(kit: Kit) -> Invocation:
    cert, key = kit.certificate(), kit.sb_key()
    argv = ["secure-cert", "generate", "--device-cert", str(cert), "--private-key", str(key)]
    return Invocation([*argv, "-o", OUT], [cert, key])


@case("secure-cert generate --pub-key-output")
def _secure_cert_pub(kit: Kit) -> Invocation:
    cert, hmac = kit.certificate(), kit.hmac_key()
    argv = ["secure-cert", "generate", "--device-cert", str(cert), "--hmac-key", str(hmac)]
    argv += ["--hmac-derived", "-o", str(kit.new("cert.bin")), "--pub-key-output", OUT]
    return Invocation(argv, [cert, hmac])


@case("cert-bundle build")
def _cert_bundle_build(kit: Kit) -> Invocation:
    cert = kit.certificate()
    return Invocation(["cert-bundle", "build", "-o", OUT, str(cert)], [cert])


# -- device, prov, fleet ----------------------------------------------------------------


def device_folder(kit: Kit, name: str = "dev") -> Path:
    """A virtual ESP32-S3 with a bootloader and a plain app in ota_0 (no Secure Boot, no
    flash encryption): every app-side command runs on it. Made once per folder."""
    folder = kit.folder / name
    if not folder.exists():
        from espsec.image.partition_table import PartitionTable

        from ..device.kit import OTA0, OTA_TABLE, PLAIN, app, bootloader, device

        csv = OTA_TABLE.to_csv() + "esp_secure_cert, 0x3F, , 0x71000, 0x2000, encrypted\n"
        table = PartitionTable.from_csv(csv)
        device(PLAIN, boot=bootloader(), apps={OTA0: app("1.0.0", 1)}, table=table).save(folder)
    return folder


def identity_device(kit: Kit) -> Path:
    """:func:`device_folder` with a device identity (an RSA key in the DS peripheral)."""
    folder = kit.folder / "dev-id"
    if not folder.exists():
        from espsec.device import VirtualDevice
        from espsec.device.identity import provision_identity

        device_folder(kit, name="dev-id")
        dev = VirtualDevice.open(folder)
        ca_cert, ca_key = _device_ca()
        provision_identity(dev, "dev-1", ca_cert, ca_key)  # type: ignore[arg-type]
        dev.save()
    return folder


def hmac_device(kit: Kit) -> Path:
    """:func:`device_folder` with an ``HMAC_UP`` key in ``BLOCK_KEY5`` (ECIES OTA)."""
    folder = kit.folder / "dev-hmac"
    if not folder.exists():
        from espsec import efuse

        device_folder(kit, name="dev-hmac")
        chip = efuse.load(folder / "efuse.bin")
        efuse.burn_key(chip, "BLOCK_KEY5", bytes(range(32)), "HMAC_UP")
        efuse.save(chip, folder / "efuse.bin")
    return folder


@functools.cache
def _device_ca() -> tuple[object, object]:
    from espsec.identity.tls import generate_device_ca

    return generate_device_ca()


@case("device sign")
def _device_sign(kit: Kit) -> Invocation:
    folder, data = identity_device(kit), kit.data()
    return Invocation(["device", "sign", str(folder), str(data), "-o", OUT], [data])


@case("device provision-ota --pub-key-output")
def _device_provision_ota(kit: Kit) -> Invocation:
    folder, ca, manifest = hmac_device(kit), kit.certificate(), kit.sb_pub("ecdsa256")
    argv = ["device", "provision-ota", str(folder), "--server", "https://fleet.example"]
    argv += ["--ca", str(ca), "--manifest-key", str(manifest), "--device-id", "dev-1"]
    argv += ["--hmac-key-block", "BLOCK_KEY5", "--pub-key-output", OUT]
    return Invocation(argv, [ca, manifest])


@case("prov gen-sec2-cred")
def _prov_gen_sec2_cred(kit: Kit) -> Invocation:
    password = kit.file("password", b"wifi-password\n", mode=0o600)
    argv = ["prov", "gen-sec2-cred", "--sec2-username", "wifiprov"]
    return Invocation([*argv, "--sec2-password-file", str(password), "-o", OUT], [password])


@case("fleet init --token-output", secret=True)
def _fleet_init_token(kit: Kit) -> Invocation:
    pub = kit.sb_pub()
    argv = ["fleet", "init", "--pub-key", str(pub), "--token-output", OUT]
    return Invocation([*argv, str(kit.new("fleet"))], [pub])


@case("fleet init --ca-key-output", secret=True)
def _fleet_init_ca_key(kit: Kit) -> Invocation:
    pub = kit.sb_pub()
    argv = ["fleet", "init", "--pub-key", str(pub), "--ca-key-output", OUT]
    return Invocation([*argv, str(kit.new("fleet"))], [pub])


@case("audit")
def _audit(kit: Kit) -> Invocation:
    config = kit.file("sdkconfig", b'CONFIG_IDF_TARGET="esp32s3"\nCONFIG_SECURE_BOOT=y\n')
    return Invocation(["audit", "--format", "json", "-o", OUT, str(config)], [config])
