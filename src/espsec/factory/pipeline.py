"""The per-device pipeline as functions: keys in, artifacts out, no IO, no state.

:func:`load_batch` reads what every device of a batch shares (firmware, partition
table, CA certificate, Secure Boot digests, NVS template) once. Then for each device:

1. :func:`generate_keys`: the host-generated keys (:class:`DeviceKeys`, secret, in
   memory only) from ``secrets`` or the HSM's generator;
2. :func:`efuse_operations`: the burn plan (keys, Secure Boot digests, the profile's
   security eFuses), checked by :class:`espsec.efuse.BurnPlan`'s rules against the chip;
3. :func:`build_artifacts`: the device certificate (signed by the CA, in the HSM when
   the CA key is in one), the ``esp_secure_cert`` partition, the encrypted factory NVS
   and the flash image; all of it is ciphertext or public, so it may be kept;
4. :func:`public_record`: what the manifest says about the device, with no secret.

Key blocks: flash encryption, then the NVS ``HMAC_UP`` key, then the identity key
(``HMAC_DOWN_DIGITAL_SIGNATURE`` for DS, ``ECDSA_KEY`` on chips with the ECDSA
peripheral), then one block per Secure Boot digest.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from espsec import _pem
from espsec._io import read_bytes
from espsec.chips import Chip
from espsec.efuse import BurnField, BurnKey, BurnKeyDigest, BurnPlan, Efuses, Operation
from espsec.efuse import new as new_efuses
from espsec.efuse.plan import PlanReport
from espsec.errors import EspsecError, UsageError, with_source
from espsec.factory.spec import BatchSpec, SpecError
from espsec.image.partition_table import PartitionTable, load_partition_table
from espsec.sdkconfig import BootloaderConfig

ESP_SECURE_CERT = "esp_secure_cert"
FE_PURPOSE = "XTS_AES_128_KEY"
NVS_HMAC_PURPOSE = "HMAC_UP"
DS_PURPOSE = "HMAC_DOWN_DIGITAL_SIGNATURE"
ECDSA_PURPOSE = "ECDSA_KEY"
SB_PURPOSES = ("SECURE_BOOT_DIGEST0", "SECURE_BOOT_DIGEST1", "SECURE_BOOT_DIGEST2")

PRODUCTION_EFUSES: tuple[tuple[str, int | None], ...] = (
    ("SECURE_BOOT_EN", 1),
    ("DIS_PAD_JTAG", 1),
    ("DIS_USB_JTAG", 1),
    ("DIS_DOWNLOAD_MANUAL_ENCRYPT", 1),
    ("ENABLE_SECURITY_DOWNLOAD", 1),
)
"""What the production profile burns besides the keys (flash encryption adds
``SPI_BOOT_CRYPT_CNT``); the development profile leaves them to the bootloader."""

RandomSource = Callable[[int], bytes]


class FactoryError(EspsecError):
    """A device or batch cannot be provisioned as the spec asks."""


# -- the batch ---------------------------------------------------------------------------


class CaSigner:
    """The device CA: its certificate, and a key that signs in a token or in memory."""

    def __init__(self, certificate: x509.Certificate, sign_tbs: Callable[[bytes], bytes]) -> None:
        self.certificate = certificate
        self._sign_tbs = sign_tbs
        public = certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise UsageError("the device CA key must be RSA or ECDSA")
        self.public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey = public
        # A stand-in key of the CA's type: the certificate builder signs with it, then
        # the signature is replaced by the CA's (same algorithm identifier).
        self._stand_in: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            _rsa_stand_in()
            if isinstance(public, rsa.RSAPublicKey)
            else ec.generate_private_key(ec.SECP256R1())
        )

    @classmethod
    def from_key(cls, certificate: x509.Certificate, key: _pem.PrivateKey) -> CaSigner:
        """A CA whose private key is in memory (development)."""
        if isinstance(key, rsa.RSAPrivateKey):
            from cryptography.hazmat.primitives.asymmetric import padding

            return cls(certificate, lambda tbs: key.sign(tbs, padding.PKCS1v15(), hashes.SHA256()))
        return cls(certificate, lambda tbs: key.sign(tbs, ec.ECDSA(hashes.SHA256())))

    def issue(
        self, device_id: str, public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    ) -> x509.Certificate:
        """The device's TLS client certificate (``identity.tls`` profile), CA-signed."""
        from espsec.identity.tls import issue_device_certificate

        draft = issue_device_certificate(self.certificate, self._stand_in, device_id, public_key)
        tbs = draft.tbs_certificate_bytes
        der = draft.public_bytes(serialization.Encoding.DER)
        alg_start = _tlv_header_len(der, 0) + len(tbs)
        alg_end = alg_start + _tlv_total_len(der, alg_start)
        signature = self._sign_tbs(tbs)
        body = tbs + der[alg_start:alg_end] + _der(0x03, b"\x00" + signature)
        cert = x509.load_der_x509_certificate(_der(0x30, body))
        try:
            cert.verify_directly_issued_by(self.certificate)
        except Exception:
            raise FactoryError(
                "the CA key signed a device certificate that the CA certificate does not "
                "verify: the key and certificate do not belong together"
            ) from None
        return cert


_STAND_IN: list[rsa.RSAPrivateKey] = []


def _rsa_stand_in() -> rsa.RSAPrivateKey:
    if not _STAND_IN:
        _STAND_IN.append(rsa.generate_private_key(65537, 2048))
    return _STAND_IN[0]


def _tlv_header_len(der: bytes, pos: int) -> int:
    first = der[pos + 1]
    return 2 if first < 0x80 else 2 + (first & 0x7F)


def _tlv_total_len(der: bytes, pos: int) -> int:
    first = der[pos + 1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    return 2 + n + int.from_bytes(der[pos + 2 : pos + 2 + n], "big")


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


@dataclass(frozen=True)
class Batch:
    """What every device of a batch shares, read once (no secret)."""

    spec: BatchSpec
    table: PartitionTable
    flash_size: int
    firmware: tuple[tuple[int, bytes, str], ...]
    """(offset, data, name): bootloader, partition table, app, as plaintext."""
    sb_digests: tuple[bytes, ...]
    ca_chain_pem: tuple[bytes, ...]
    secure_cert_offset: int | None
    secure_cert_size: int
    nvs_template: str | None
    nvs_offset: int | None
    nvs_size: int | None
    escrow_key: Any = None
    config: BootloaderConfig | None = None
    efuse_extra: tuple[tuple[str, int | None], ...] = ()
    template_efuses: Efuses | None = field(default=None, repr=False)

    @property
    def chip(self) -> Chip:
        return self.spec.chip

    @property
    def encrypt_flash_on_host(self) -> bool:
        """The factory burns ``SPI_BOOT_CRYPT_CNT`` and writes pre-encrypted flash."""
        return any(name == "SPI_BOOT_CRYPT_CNT" for name, _ in self.efuse_extra)


def _digest_of(text: str, base: Path) -> bytes:
    from espsec import secure_boot

    path = base / text
    if path.is_file():
        data = read_bytes(path, what="Secure Boot digest or public key")
        with with_source(str(path)):
            if data.lstrip().startswith(b"-----BEGIN"):
                return secure_boot.key_digest(secure_boot.load_public_key(data))
            if len(data) == 32:
                return data
            raise SpecError(
                f"[secure_boot] digests: expected a public key PEM or a 32-byte digest file, "
                f"found {len(data)} bytes"
            )
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise SpecError(
            f"[secure_boot] digests: {text!r} is neither a file nor 64 hex digits",
            source=str(base),
        ) from None
    if len(value) != 32:
        raise SpecError(
            f"[secure_boot] digests: expected 32 bytes (64 hex digits), found {len(value)} bytes"
        )
    return value


def load_batch(spec: BatchSpec) -> Batch:
    """Read and check the files a spec names (firmware, table, CA chain, digests, NVS)."""
    from espsec.flash_encryption import parse_flash_size

    fw = spec.firmware
    with with_source(str(fw.partition_table)):
        table = load_partition_table(read_bytes(fw.partition_table, what="partition table"))
    try:
        flash_size = parse_flash_size(fw.flash_size)
    except EspsecError as exc:
        raise SpecError(f"[firmware] flash_size: {exc.message}", source=str(spec.path)) from None
    if table.flash_end > flash_size:
        raise SpecError(
            f"[firmware] flash_size: the partition table needs 0x{table.flash_end:x} bytes, "
            f"flash_size gives 0x{flash_size:x}",
            source=str(spec.path),
        )
    if fw.sdkconfig is not None:
        from espsec.device.workflow import bootloader_config

        config = bootloader_config(fw.sdkconfig)
    else:  # ESP-IDF's defaults, resolved once for the whole batch
        config = BootloaderConfig.from_options(idf_target=spec.chip.name)
    table_offset = config.partition_table_offset if config else spec.chip.partition_table_offset
    firmware: list[tuple[int, bytes, str]] = [(table_offset, table.to_bytes(), "partition table")]
    if fw.bootloader is not None:
        firmware.append(
            (
                spec.chip.bootloader_offset,
                read_bytes(fw.bootloader, what="bootloader"),
                "bootloader",
            )
        )
    if fw.app is not None:
        target = table.find("factory") or table.find("ota_0")
        if target is None:
            raise SpecError(
                "[firmware] app: the partition table has no factory or ota_0 partition",
                source=str(fw.partition_table),
            )
        app = read_bytes(fw.app, what="app image")
        if len(app) > target.size:
            raise SpecError(
                f"[firmware] app: {len(app)} bytes do not fit {target.name} "
                f"(0x{target.size:x} bytes)",
                source=str(fw.app),
            )
        firmware.append((target.offset, app, "app"))
    firmware.sort()

    base = spec.path.parent
    digests = tuple(_digest_of(d, base) for d in spec.sb_digests)
    chain = []
    for path in spec.ca_chain:
        pem = read_bytes(path, what="CA certificate")
        _pem.load_certificates(pem, source=str(path))
        chain.append(pem)

    sc_part = table.find(ESP_SECURE_CERT)
    if spec.keys.identity == "host" and sc_part is None:
        raise SpecError(
            f"the partition table has no {ESP_SECURE_CERT!r} partition (type 0x3F) for the "
            "device identity",
            source=str(fw.partition_table),
        )
    nvs_template = nvs_offset = nvs_size = None
    if spec.nvs is not None:
        raw = read_bytes(spec.nvs.template, what="NVS template")
        try:
            nvs_template = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError("NVS template is not UTF-8", source=str(spec.nvs.template)) from None
        if spec.nvs.partition is not None:
            part = table.find(spec.nvs.partition)
            if part is None:
                raise SpecError(
                    f"[nvs] partition: no partition {spec.nvs.partition!r} in the table",
                    source=str(spec.path),
                )
            nvs_offset, nvs_size = part.offset, part.size
        else:
            nvs_offset, nvs_size = spec.nvs.offset, spec.nvs.size
        _fill_template(nvs_template, _fields("SAMPLE", "000000000000", spec.name, 0, "dev"))

    escrow = None
    if spec.keys.escrow is not None:
        from espsec.factory.escrow import load_escrow_key

        escrow = load_escrow_key(spec.keys.escrow)

    extra: list[tuple[str, int | None]] = []
    if spec.profile == "production":
        extra += [(n, v) for n, v in PRODUCTION_EFUSES]
        if spec.keys.flash_encryption == "host":
            extra.append(("SPI_BOOT_CRYPT_CNT", None))
        if not digests:
            extra = [(n, v) for n, v in extra if n != "SECURE_BOOT_EN"]
    extra += list(spec.efuses.items())
    layout = new_efuses(spec.chip.name).layout
    for name, _ in extra:
        try:
            layout.field(name)
        except UsageError:
            raise SpecError(
                f"[efuses] {name}: no such eFuse on {spec.chip.display_name}",
                source=str(spec.path),
            ) from None
    batch = Batch(
        spec=spec,
        table=table,
        flash_size=flash_size,
        firmware=tuple(firmware),
        sb_digests=digests,
        ca_chain_pem=tuple(chain),
        secure_cert_offset=sc_part.offset if sc_part else None,
        secure_cert_size=sc_part.size if sc_part else 0,
        nvs_template=nvs_template,
        nvs_offset=nvs_offset,
        nvs_size=nvs_size,
        escrow_key=escrow,
        config=config,
        efuse_extra=tuple(extra),
        template_efuses=new_efuses(spec.chip.name),
    )
    if fw.sdkconfig is not None and spec.nvs is not None and spec.nvs.encrypt:
        _check_app_reads_nvs(batch)
    return batch


def _check_app_reads_nvs(batch: Batch) -> None:
    """The app's ``nvs_flash_init`` (its sdkconfig) must derive its NVS keys from the
    ``HMAC_UP`` key the factory burns, or the factory NVS is unreadable ciphertext."""
    from espsec.sdkconfig.config import NvsSecKeyProtection

    spec, config = batch.spec, batch.config
    assert config is not None and spec.firmware.sdkconfig is not None
    source = str(spec.firmware.sdkconfig)
    if not config.nvs_encryption:
        raise SpecError(
            "[nvs] encrypt: the app's sdkconfig has CONFIG_NVS_ENCRYPTION off, so it could "
            "not read the encrypted factory NVS",
            source=source,
        )
    scheme = config.nvs_sec_key_protection_scheme
    if scheme is not NvsSecKeyProtection.HMAC:
        found = f"CONFIG_{scheme.value}" if scheme is not None else "no scheme"
        raise SpecError(
            "[nvs] encrypt: the factory NVS keys derive from an HMAC_UP eFuse key; the app's "
            f"sdkconfig: expected CONFIG_NVS_SEC_KEY_PROTECT_USING_HMAC, found {found}",
            source=source,
        )
    block = placement(batch).nvs_hmac
    key_id = [b.name for b in new_efuses(spec.chip.name).layout.key_blocks].index(block or "")
    if config.nvs_sec_hmac_efuse_key_id != key_id:
        raise SpecError(
            f"[nvs] encrypt: the factory burns the NVS HMAC key in {block} (key id {key_id}); "
            "the app's sdkconfig: expected CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID="
            f"{key_id}, found {config.nvs_sec_hmac_efuse_key_id}",
            source=source,
        )


# -- keys --------------------------------------------------------------------------------


@dataclass
class DeviceKeys:
    """A device's host-generated secrets: in memory only, burned then dropped."""

    flash_encryption: bytes | None = field(default=None, repr=False)
    nvs_hmac: bytes | None = field(default=None, repr=False)
    ds_hmac: bytes | None = field(default=None, repr=False)
    identity: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = field(
        default=None, repr=False
    )

    def destroy(self) -> None:
        """Drop every reference this object holds to key material."""
        self.flash_encryption = self.nvs_hmac = self.ds_hmac = None
        self.identity = None

    def secret_blob(self) -> bytes:
        """The secrets as one JSON document, for escrow wrapping only."""
        import json

        doc: dict[str, str] = {}
        if self.flash_encryption is not None:
            doc["flash_encryption"] = self.flash_encryption.hex()
        if self.nvs_hmac is not None:
            doc["nvs_hmac"] = self.nvs_hmac.hex()
        if self.ds_hmac is not None:
            doc["ds_hmac"] = self.ds_hmac.hex()
        if self.identity is not None:
            doc["identity"] = self.identity.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
        return json.dumps(doc, sort_keys=True).encode()


def os_random(size: int) -> bytes:
    """``size`` bytes from the OS CSPRNG (``secrets``)."""
    return secrets.token_bytes(size)


def needs_rsa_identity(batch: Batch) -> bool:
    """Each device gets a DS RSA key (made by the host; the slow step of a batch)."""
    return batch.spec.keys.identity == "host" and "ecdsa" not in batch.chip.peripherals


def generate_keys(
    batch: Batch,
    random: RandomSource = os_random,
    rsa_key: Callable[[], rsa.RSAPrivateKey] | None = None,
) -> DeviceKeys:
    """The device's host-generated keys, as the spec asks.

    Symmetric keys come from ``random`` (the OS, or the HSM's generator); an ECDSA
    identity key's scalar too. DS RSA keys are made by OpenSSL's prime search, seeded
    from the OS: by ``rsa_key`` when given (a :class:`RsaKeysAhead`), else here.
    """
    spec = batch.spec
    keys = DeviceKeys()
    if spec.keys.flash_encryption == "host":
        keys.flash_encryption = random(32)
    if spec.keys.hmac == "host":
        keys.nvs_hmac = random(32)
    if spec.keys.identity == "host":
        if "ecdsa" in spec.chip.peripherals:
            keys.identity = _ec_key_from(random)
        else:
            keys.ds_hmac = random(32)
            keys.identity = (
                rsa_key() if rsa_key is not None else _new_rsa_key(spec.keys.ds_rsa_bits)
            )
    return keys


def _new_rsa_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, bits)


def default_key_workers() -> int:
    """Threads making RSA keys ahead: one per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class RsaKeysAhead:
    """DS RSA keys made ahead of the devices that need them, on every core.

    OpenSSL's prime search (hundreds of milliseconds for RSA-3072) runs without the
    GIL, so ``workers`` threads keep the cores busy while the calling thread builds,
    burns and flashes devices. At most ``2 * workers`` keys wait in memory, and no more
    than ``budget`` are made in all (the devices the run may still provision); keys
    never taken are dropped with the pool, never stored.
    """

    def __init__(self, bits: int, workers: int, budget: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._bits = bits
        self._budget = budget
        self._depth = 2 * workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="espsec-rsa-keygen")
        self._ahead: deque[Future[rsa.RSAPrivateKey]] = deque()

    def _fill(self) -> None:
        while len(self._ahead) < self._depth and self._budget > 0:
            self._budget -= 1
            self._ahead.append(self._pool.submit(_new_rsa_key, self._bits))

    def __call__(self) -> rsa.RSAPrivateKey:
        """The next key (made ahead; waits only while the cores have none ready)."""
        if not self._ahead:
            self._budget = max(self._budget, 1)
        self._fill()
        key = self._ahead.popleft().result()
        self._fill()
        return key

    def close(self) -> None:
        """Stop making keys and drop those made ahead."""
        for future in self._ahead:
            future.cancel()
        self._ahead.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _ec_key_from(random: RandomSource) -> ec.EllipticCurvePrivateKey:
    while True:
        scalar = int.from_bytes(random(32), "big")
        if 1 <= scalar < _P256_N:
            return ec.derive_private_key(scalar, ec.SECP256R1())


# -- eFuses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPlacement:
    """Which key block each key goes to."""

    flash_encryption: str | None = None
    nvs_hmac: str | None = None
    identity: str | None = None
    identity_key_id: int | None = None
    digests: tuple[str, ...] = ()


def placement(batch: Batch) -> KeyPlacement:
    """Key blocks in order: flash encryption, NVS HMAC, identity, Secure Boot digests."""
    spec = batch.spec
    blocks = [b.name for b in new_efuses(spec.chip.name).layout.key_blocks]
    it = iter(enumerate(blocks))

    def take() -> tuple[int, str]:
        try:
            return next(it)
        except StopIteration:
            raise SpecError(
                f"the keys and digests need more than the {len(blocks)} key blocks of "
                f"{spec.chip.display_name}",
                source=str(spec.path),
            ) from None

    fe = take()[1] if spec.keys.flash_encryption == "host" else None
    nvs = take()[1] if spec.keys.hmac == "host" else None
    ident = take() if spec.keys.identity == "host" else None
    digests = tuple(take()[1] for _ in batch.sb_digests)
    return KeyPlacement(fe, nvs, ident[1] if ident else None, ident[0] if ident else None, digests)


def efuse_operations(batch: Batch, keys: DeviceKeys) -> list[Operation]:
    """The device's burn plan: keys, digests, then the profile's security eFuses."""
    where = placement(batch)
    ops: list[Operation] = []
    if where.flash_encryption and keys.flash_encryption is not None:
        ops.append(BurnKey(where.flash_encryption, keys.flash_encryption, FE_PURPOSE))
    if where.nvs_hmac and keys.nvs_hmac is not None:
        ops.append(BurnKey(where.nvs_hmac, keys.nvs_hmac, NVS_HMAC_PURPOSE))
    if where.identity and keys.identity is not None:
        if isinstance(keys.identity, ec.EllipticCurvePrivateKey):
            scalar = keys.identity.private_numbers().private_value.to_bytes(32, "big")
            ops.append(BurnKey(where.identity, scalar, ECDSA_PURPOSE))
        elif keys.ds_hmac is not None:
            ops.append(BurnKey(where.identity, keys.ds_hmac, DS_PURPOSE))
    for block, digest, purpose in zip(where.digests, batch.sb_digests, SB_PURPOSES, strict=False):
        ops.append(BurnKeyDigest(block, digest, purpose))
    ops += [BurnField(name, value) for name, value in batch.efuse_extra]
    return ops


def expected_efuses(batch: Batch, ops: Sequence[Operation]) -> dict[str, Any]:
    """What a fully applied plan leaves readable (no secret): block purposes, digests
    and field values. Resume compares a chip against it to tell none/all/part."""
    purposes: dict[str, str] = {}
    digests: dict[str, str] = {}
    fields: dict[str, int | None] = {}
    for op in ops:
        if isinstance(op, BurnKey):
            purposes[op.block] = op.purpose
        elif isinstance(op, BurnKeyDigest):
            purposes[op.block] = op.purpose
            digests[op.block] = op.digest.hex()
        elif isinstance(op, BurnField) and not isinstance(op.value, bytes):
            fields[op.name] = op.value
    return {"purposes": purposes, "digests": digests, "fields": fields}


def applied_fraction(efuses: Efuses, expected: dict[str, Any]) -> tuple[int, int]:
    """(items of ``expected`` the chip shows, items in all)."""
    layout = efuses.layout
    done = total = 0
    for block, purpose in expected["purposes"].items():
        total += 1
        # By value: a purpose may have two names (ESP32-P4 v3: ECDSA_KEY is ECDSA_KEY_P256).
        if efuses.key_purpose(block) == layout.purpose(purpose).id:
            done += 1
    for block, digest in expected["digests"].items():
        total += 1
        if efuses.read_block(block).hex() == digest:
            done += 1
    for name, value in expected["fields"].items():
        total += 1
        have = efuses.get_int(name)
        if (value is None and have) or (value is not None and have == value):
            done += 1
    return done, total


def check_plan(batch: Batch, ops: Sequence[Operation], efuses: Efuses | None = None) -> PlanReport:
    """Check the burn plan with the plan rules against ``efuses`` (a blank chip by
    default); raise :class:`FactoryError` naming the first refusal."""
    state = efuses if efuses is not None else (batch.template_efuses or new_efuses(batch.chip.name))
    report = BurnPlan(ops).check(state)
    if report.refused:
        first = next(f for f in report.findings if f.severity == "refuse" and not f.allowed)
        raise FactoryError(f"eFuse plan refused: {first.code}: {first.message}")
    return report


# -- artifacts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifacts:
    """What a device gets besides its eFuses: all public or ciphertext."""

    device_id: str
    certificate_der: bytes | None
    secure_cert: bytes | None
    nvs: bytes | None
    flash: tuple[tuple[int, bytes, str], ...]
    """(offset, data, name) as written to flash (pre-encrypted where the plan says)."""
    public_keys: dict[str, str]
    certificate_pem: str | None = None

    def digest(self) -> str:
        """SHA-256 over the flash writes, in order (binds the journal to the files)."""
        h = hashlib.sha256()
        for offset, data, _ in self.flash:
            h.update(offset.to_bytes(8, "little") + len(data).to_bytes(8, "little") + data)
        return h.hexdigest()


def _fields(serial: str, mac: str, batch: str, index: int, device_id: str) -> dict[str, str]:
    return {
        "serial": serial,
        "mac": mac,
        "batch": batch,
        "index": str(index),
        "device_id": device_id,
    }


def _fill_template(template: str, values: dict[str, str]) -> str:
    out = template
    for name, value in values.items():
        out = out.replace("{" + name + "}", value)
    if "{" in out and "}" in out:
        import re

        m = re.search(r"\{([a-z_]+)\}", out)
        if m:
            raise SpecError(
                f"[nvs] template: unknown field {{{m.group(1)}}} "
                "(known: serial, mac, device_id, batch, index)"
            )
    return out


def device_id_for(batch: Batch, serial: str) -> str:
    """The id a device checks in with: ``<batch>-<serial>``."""
    return f"{batch.spec.name}-{serial}"


def build_artifacts(
    batch: Batch, serial: str, index: int, mac: bytes, keys: DeviceKeys, ca: CaSigner | None
) -> Artifacts:
    """The device's certificate, ``esp_secure_cert`` partition, factory NVS and flash image."""
    from espsec.identity import ds as ds_lib
    from espsec.identity import secure_cert as sc

    device_id = device_id_for(batch, serial)
    where = placement(batch)
    public: dict[str, str] = {}
    cert_der = secure_cert = nvs_image = cert_pem = None
    if keys.identity is not None:
        if ca is None:
            raise FactoryError("a device identity needs the CA ([ca] in the spec)")
        pub = keys.identity.public_key()
        public["identity"] = base64.b64encode(
            pub.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode()
        cert = ca.issue(device_id, pub)
        cert_der = cert.public_bytes(serialization.Encoding.DER)
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)  # as esp_secure_cert_mgr reads
        assert where.identity_key_id is not None
        if isinstance(keys.identity, rsa.RSAPrivateKey):
            assert keys.ds_hmac is not None
            data = ds_lib.encrypt(keys.identity, keys.ds_hmac, chip=batch.chip.name)
            partition = sc.build(
                ca_certs=batch.ca_chain_pem,
                device_cert=cert_pem,
                ds=sc.DsKey(data, where.identity_key_id),
            )
        else:
            partition = sc.build(
                ca_certs=batch.ca_chain_pem,
                device_cert=cert_pem,
                ecdsa_key_id=where.identity_key_id,
            )
        secure_cert = partition.to_bytes()
    if batch.nvs_template is not None:
        from espsec.nvs import NvsKeys, generate_csv_partition

        assert batch.nvs_size is not None and batch.spec.nvs is not None
        text = _fill_template(
            batch.nvs_template, _fields(serial, mac.hex(), batch.spec.name, index, device_id)
        )
        nvs_keys = None
        if batch.spec.nvs.encrypt:
            assert keys.nvs_hmac is not None
            nvs_keys = NvsKeys.from_hmac_key(keys.nvs_hmac)
        try:
            nvs_image = generate_csv_partition(text, batch.nvs_size, keys=nvs_keys)
        except EspsecError as exc:
            raise SpecError(f"[nvs] template: {exc.message}") from None
    writes = list(batch.firmware)
    if secure_cert is not None:
        assert batch.secure_cert_offset is not None
        writes.append((batch.secure_cert_offset, secure_cert, ESP_SECURE_CERT))
    if nvs_image is not None:
        assert batch.nvs_offset is not None
        writes.append((batch.nvs_offset, nvs_image, "factory nvs"))
    writes.sort(key=lambda w: w[0])
    if batch.encrypt_flash_on_host and keys.flash_encryption is not None:
        writes = _encrypt_writes(batch, keys.flash_encryption, writes)
    return Artifacts(
        device_id,
        cert_der,
        secure_cert,
        nvs_image,
        tuple(writes),
        public,
        cert_pem.decode() if cert_pem is not None else None,
    )


def _encrypt_writes(
    batch: Batch, key: bytes, writes: list[tuple[int, bytes, str]]
) -> list[tuple[int, bytes, str]]:
    from espsec.flash_encryption import FlashEncryptionKey, FlashWrite, encrypt_flash

    table_offset = next(o for o, _, n in writes if n == "partition table")
    placed = encrypt_flash(
        FlashEncryptionKey(key),
        batch.table,
        [FlashWrite(o, d, n) for o, d, n in writes],
        flash_size=batch.flash_size,
        chip=batch.chip,
        table_offset=table_offset,
    )
    return [(w.offset, w.flash_data, w.name) for w in placed.writes]


def public_record(batch: Batch, serial: str, mac: bytes, artifacts: Artifacts) -> dict[str, Any]:
    """The manifest's facts about a device: no secret (keys are public halves only)."""
    fingerprint = certificate = None
    if artifacts.certificate_der is not None:
        fingerprint = hashlib.sha256(artifacts.certificate_der).hexdigest()
        certificate = artifacts.certificate_pem
    return {
        "batch": batch.spec.name,
        "serial": serial,
        "mac": mac.hex(":", 1) if mac else None,
        "device_id": artifacts.device_id,
        "chip": batch.chip.name,
        "public_keys": artifacts.public_keys,
        "certificate_sha256": fingerprint,
        "certificate": certificate,
        "secure_boot_digests": [d.hex() for d in batch.sb_digests],
        "flash_sha256": artifacts.digest(),
    }
