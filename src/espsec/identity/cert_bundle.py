"""The x509 certificate bundle ESP-IDF devices verify TLS servers against.

Format (ESP-IDF ``components/mbedtls/esp_crt_bundle/gen_crt_bundle.py``,
``CertificateBundle.create_bundle``; read by ``esp_crt_bundle.c``):

* v5.4 and later: N little-endian u32 offsets (the first equals ``4 * N``, so it gives the
  count), then per certificate ``name_len`` u16 LE, ``key_len`` u16 LE, the subject Name
  (DER) and the SubjectPublicKeyInfo (DER).
* v5.3 and earlier (``legacy``): a big-endian u16 count, then ``>HH`` lengths.

Entries are sorted by the raw DER subject, because the device finds an issuer with a
binary search and ``memcmp`` (``esp_crt_find_cert``). :func:`verify_chain` models what a
device does with a server's chain after ``esp_crt_bundle_attach``: the chain's top
certificate that mbedTLS cannot anchor is looked up by issuer in the bundle and its
signature checked with the stored key (``esp_crt_verify_callback``).
"""

from __future__ import annotations

import csv
import datetime
import io
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from espsec._pem import key_kind, load_certificate, load_certificates
from espsec.errors import FormatError, UsageError

DEFAULT_MAX_CERTS = 200
"""``CONFIG_MBEDTLS_CERTIFICATE_BUNDLE_MAX_CERTS`` default (``DEFAULT_CERT_BUNDLE_MAX_CERTS``)."""
_HEADER = 4
"""``CRT_HEADER_SIZE``: the two u16 lengths before each entry's name."""
_NAMED_PEM = re.compile(r"(^.+?)\n(=+\n[\s\S]+?END CERTIFICATE-----\n)", re.MULTILINE)
_MOZILLA_PEM = "PEM Info"
_MOZILLA_NAME = "Common Name or Certificate Name"


@dataclass(frozen=True)
class BundleEntry:
    """One trusted root as the bundle stores it: its subject and public key, both DER."""

    subject: bytes
    public_key: bytes

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> BundleEntry:
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(cert.subject.public_bytes(), spki)

    @property
    def subject_text(self) -> str:
        """The subject as RFC 4514-style text, for reports."""
        return name_text(self.subject)

    def size(self) -> int:
        return _HEADER + len(self.subject) + len(self.public_key)


_SHORT = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.5": "serialNumber",
    "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.25": "DC",
}


def name_text(der: bytes) -> str:
    """A DER ``Name`` as RFC 4514-style text (most specific first), for reports.

    The bundle stores names as raw DER and pyca/cryptography parses names only inside
    certificates, so this walks the DER itself; anything it cannot read shows as hex.
    """
    try:
        rdns = _read_name(der)
    except ValueError:
        return f"<undecodable name {der[:16].hex()}>"
    return ",".join("+".join(f"{k}={v}" for k, v in rdn) for rdn in reversed(rdns))


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if not 1 <= n <= 3 or pos + n > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _read_name(der: bytes) -> list[list[tuple[str, str]]]:
    tag, pos, end = _tlv(der, 0)
    if tag != 0x30 or end != len(der):
        raise ValueError("not a DER Name")
    rdns: list[list[tuple[str, str]]] = []
    while pos < end:
        tag, apos, set_end = _tlv(der, pos)
        if tag != 0x31:
            raise ValueError("not a SET")
        rdn: list[tuple[str, str]] = []
        while apos < set_end:
            tag, a_start, a_end = _tlv(der, apos)
            otag, o_start, o_end = _tlv(der, a_start)
            vtag, v_start, v_end = _tlv(der, o_end)
            if tag != 0x30 or otag != 0x06 or v_end != a_end:
                raise ValueError("not an AttributeTypeAndValue")
            oid = _oid_text(der[o_start:o_end])
            raw = der[v_start:v_end]
            value = raw.decode("utf-16-be" if vtag == 0x1E else "utf-8", "replace")
            rdn.append((_SHORT.get(oid, oid), value))
            apos = a_end
        rdns.append(rdn)
        pos = set_end
    return rdns


def _oid_text(body: bytes) -> str:
    if not body:
        raise ValueError("empty OID")
    parts = [body[0] // 40, body[0] % 40] if body[0] < 80 else [2, body[0] - 80]
    value = 0
    for b in body[1:]:
        value = value << 7 | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


@dataclass(frozen=True)
class CertBundle:
    """An ``x509_crt_bundle``: trusted roots, sorted by DER subject."""

    entries: tuple[BundleEntry, ...]
    legacy: bool = False
    """The big-endian layout of ESP-IDF v5.3 and earlier."""

    @classmethod
    def from_certificates(
        cls,
        certs: Iterable[x509.Certificate],
        *,
        legacy: bool = False,
        max_certs: int = DEFAULT_MAX_CERTS,
    ) -> CertBundle:
        """A bundle of ``certs`` sorted as ``gen_crt_bundle.py`` sorts them (by DER subject)."""
        entries = [BundleEntry.from_certificate(c) for c in certs]
        if not entries:
            raise UsageError("a certificate bundle needs at least one certificate")
        if len(entries) > max_certs:
            raise UsageError(
                f"{len(entries)} certificates exceed the bundle limit of {max_certs} "
                "(CONFIG_MBEDTLS_CERTIFICATE_BUNDLE_MAX_CERTS); raise --max-certs or filter"
            )
        for e in entries:
            if len(e.subject) > 0xFFFF or len(e.public_key) > 0xFFFF:
                raise UsageError("a certificate's subject or key is longer than 65535 bytes")
        entries.sort(key=lambda e: e.subject)
        return cls(tuple(entries), legacy)

    @property
    def is_sorted(self) -> bool:
        """Sorted by DER subject, as the device's binary search needs."""
        pairs = zip(self.entries, self.entries[1:], strict=False)
        return all(a.subject <= b.subject for a, b in pairs)

    def offsets(self) -> tuple[int, ...]:
        """Where each entry starts (the v5.4+ offset table)."""
        pos = 4 * len(self.entries)
        out = []
        for e in self.entries:
            out.append(pos)
            pos += e.size()
        return tuple(out)

    def to_bytes(self) -> bytes:
        if self.legacy:
            body = b"".join(
                struct.pack(">HH", len(e.subject), len(e.public_key)) + e.subject + e.public_key
                for e in self.entries
            )
            return struct.pack(">H", len(self.entries)) + body
        body = b"".join(
            struct.pack("<HH", len(e.subject), len(e.public_key)) + e.subject + e.public_key
            for e in self.entries
        )
        offsets = self.offsets()
        return struct.pack(f"<{len(offsets)}I", *offsets) + body

    @classmethod
    def parse(
        cls, data: bytes, *, legacy: bool | None = None, max_certs: int = DEFAULT_MAX_CERTS
    ) -> CertBundle:
        """Parse a bundle strictly: the checks of ``esp_crt_check_bundle`` and more.

        ``legacy``: force the layout; ``None`` tells them apart (a v5.4+ bundle starts with
        a u32 multiple of 4 whose upper half is zero).
        """
        if legacy is None:
            legacy = not _looks_current(data)
        entries = _parse_legacy(data) if legacy else _parse_current(data, max_certs)
        if len(entries) > max_certs:
            raise FormatError(
                "more certificates than the device accepts "
                "(CONFIG_MBEDTLS_CERTIFICATE_BUNDLE_MAX_CERTS)",
                offset=0,
                field="count",
                expected=f"at most {max_certs}",
                found=len(entries),
            )
        for i, e in enumerate(entries):
            try:
                serialization.load_der_public_key(e.public_key)
            except (ValueError, UnsupportedAlgorithm):
                raise FormatError(
                    f"certificate {i}: the stored public key is not a DER SubjectPublicKeyInfo",
                    field=f"entries[{i}].key",
                ) from None
        return cls(tuple(entries), legacy)

    def find_issuer(self, issuer: bytes) -> BundleEntry | None:
        """``esp_crt_find_cert``: binary search by ``memcmp`` over the shorter length."""
        start, end = 0, len(self.entries) - 1
        while start <= end:
            middle = (start + end) // 2
            name = self.entries[middle].subject
            n = min(len(issuer), len(name))
            a, b = issuer[:n], name[:n]
            if a == b:
                return self.entries[middle]
            if a < b:
                end = middle - 1
            else:
                start = middle + 1
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "format": "legacy (v5.3 and earlier)" if self.legacy else "v5.4+",
            "count": len(self.entries),
            "sorted": self.is_sorted,
            "size": len(self.to_bytes()),
            "certificates": [
                {
                    "subject": name_text(e.subject),
                    "key": key_text(e.public_key),
                    "offset": None if self.legacy else off,
                }
                for e, off in zip(self.entries, self.offsets(), strict=True)
            ],
        }


def key_text(spki: bytes) -> str:
    """The key type of a DER SubjectPublicKeyInfo (``RSA-2048``, ``ECDSA P-256``)."""
    try:
        return key_kind(serialization.load_der_public_key(spki))
    except (ValueError, UnsupportedAlgorithm):
        return "unreadable key"


def _looks_current(data: bytes) -> bool:
    if len(data) < 4:
        return True
    first = struct.unpack_from("<I", data)[0]
    return first != 0 and first % 4 == 0 and data[2:4] == b"\0\0"


def _entry_at(data: bytes, off: int, index: int, fmt: str) -> BundleEntry:
    if off + _HEADER > len(data):
        raise FormatError(
            f"certificate {index} header runs past the end of the bundle",
            offset=off,
            field=f"entries[{index}]",
            expected=f"{_HEADER} bytes",
            found=f"{max(0, len(data) - off)} bytes",
        )
    name_len, key_len = struct.unpack_from(fmt, data, off)
    end = off + _HEADER + name_len + key_len
    if end > len(data):
        raise FormatError(
            f"certificate {index} runs past the end of the bundle",
            offset=off,
            field=f"entries[{index}].key_len",
            expected=f"end at most {len(data)}",
            found=f"end {end}",
        )
    name = data[off + _HEADER : off + _HEADER + name_len]
    return BundleEntry(name, data[off + _HEADER + name_len : end])


def _parse_current(data: bytes, max_certs: int) -> list[BundleEntry]:
    if len(data) <= 4 + _HEADER:
        raise FormatError(
            "too short for a certificate bundle",
            offset=0,
            expected=f"more than {4 + _HEADER} bytes",
            found=f"{len(data)} bytes",
        )
    first = struct.unpack_from("<I", data)[0]
    if first == 0 or first % 4 or first >= len(data):
        raise FormatError(
            "bad first offset (it must equal 4 x the number of certificates)",
            offset=0,
            field="offsets[0]",
            expected=f"a non-zero multiple of 4 below {len(data)}",
            found=first,
        )
    count = first // 4
    if count > max_certs:
        raise FormatError(
            "more certificates than the device accepts "
            "(CONFIG_MBEDTLS_CERTIFICATE_BUNDLE_MAX_CERTS)",
            offset=0,
            field="count",
            expected=f"at most {max_certs}",
            found=count,
        )
    offsets = struct.unpack_from(f"<{count}I", data)
    entries: list[BundleEntry] = []
    expected = first
    for i, off in enumerate(offsets):
        if off != expected:
            raise FormatError(
                "offset chain broken: an offset must point right after the previous certificate",
                offset=4 * i,
                field=f"offsets[{i}]",
                expected=expected,
                found=off,
            )
        entry = _entry_at(data, off, i, "<HH")
        entries.append(entry)
        expected = off + entry.size()
    if expected != len(data):
        raise FormatError(
            "trailing bytes after the last certificate",
            offset=expected,
            expected=f"end of bundle at {expected}",
            found=f"{len(data)} bytes",
        )
    return entries


def _parse_legacy(data: bytes) -> list[BundleEntry]:
    if len(data) < 2:
        raise FormatError("too short for a certificate bundle", offset=0, found=len(data))
    (count,) = struct.unpack_from(">H", data)
    if count == 0:
        raise FormatError("legacy bundle holds no certificate", offset=0, field="count", found=0)
    entries: list[BundleEntry] = []
    pos = 2
    for i in range(count):
        entry = _entry_at(data, pos, i, ">HH")
        entries.append(entry)
        pos += entry.size()
    if pos != len(data):
        raise FormatError(
            "trailing bytes after the last certificate (or a wrong count)",
            offset=pos,
            field="count",
            expected=f"end of bundle at {pos}",
            found=f"{len(data)} bytes",
        )
    return entries


# -- inputs ------------------------------------------------------------------------------


def certificates_from_file(
    data: bytes, *, source: str, names: frozenset[str] | None = None
) -> list[x509.Certificate]:
    """The certificates of one input file: PEM (any number), DER, or Mozilla's CSV.

    Mozilla's CSV is the CA report (``IncludedCACertificateReportPEMCSV``) with a
    ``PEM Info`` column. ``names`` keeps only named certificates, as ``gen_crt_bundle.py
    --filter`` does: by the ``name`` / ``====`` header before each PEM (``cacrt_all.pem``)
    or the ``Common Name or Certificate Name`` column of the CSV.
    """
    if source.lower().endswith(".csv"):
        return _from_mozilla_csv(data, source=source, names=names)
    if data.lstrip()[:1] == b"0" or b"-----BEGIN" not in data:
        if names is not None:
            raise UsageError(f"{source}: --filter needs a PEM bundle with named certificates")
        return [load_certificate(data, source=source, allow_der=True)]
    if names is None:
        return load_certificates(data, source=source)
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    picked = "".join(pem for name, pem in _NAMED_PEM.findall(text) if name.strip() in names)
    if not picked:
        raise FormatError(
            "no certificate matches the filter",
            expected="a named PEM (name, ===== line, certificate)",
            found="none",
            source=source,
        )
    return load_certificates(picked.encode(), source=source)


def _from_mozilla_csv(
    data: bytes, *, source: str, names: frozenset[str] | None
) -> list[x509.Certificate]:
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise FormatError(f"not a readable CSV ({exc})", source=source) from None
    if not rows or _MOZILLA_PEM not in rows[0]:
        raise FormatError(
            "not Mozilla's CA certificate CSV",
            field="header",
            expected=f"a {_MOZILLA_PEM!r} column",
            found="none",
            source=source,
        )
    certs: list[x509.Certificate] = []
    for line, row in enumerate(rows, start=2):
        if names is not None and (row.get(_MOZILLA_NAME) or "").strip() not in names:
            continue
        pem = (row.get(_MOZILLA_PEM) or "").strip().strip("'").strip()
        certs.extend(load_certificates(pem.encode(), source=f"{source}: line {line}"))
    if not certs:
        raise FormatError("no certificate in the CSV", field=_MOZILLA_PEM, source=source)
    return certs


def filter_names(data: bytes, *, source: str) -> frozenset[str]:
    """The certificate names of a ``--filter`` CSV (second column, header skipped), as
    ESP-IDF's ``cmn_crt_authorities.csv``."""
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise FormatError(f"not a readable CSV ({exc})", source=source) from None
    names = frozenset(r[1].strip() for r in rows[1:] if len(r) > 1 and r[1].strip())
    if not names:
        raise FormatError("filter CSV names no certificate", field="column 2", source=source)
    return names


# -- esp_crt_bundle_attach: verifying a server's chain -----------------------------------------


@dataclass(frozen=True)
class ChainStep:
    """One check on the way from the leaf to a bundle root."""

    subject: str
    check: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class ChainResult:
    """Whether a device with this bundle accepts the chain (``esp_crt_verify_callback``)."""

    trusted: bool
    reason: str
    anchor: str | None
    steps: tuple[ChainStep, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "trusted": self.trusted,
            "reason": self.reason,
            "anchor": self.anchor,
            "steps": [s.__dict__ for s in self.steps],
        }


def check_signature(child: x509.Certificate, spki: bytes) -> bool:
    """``esp_crt_check_signature``: ``child``'s signature under the stored key."""
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm):
        return False
    algorithm = child.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if child.signature_algorithm_parameters is not None and not isinstance(
                child.signature_algorithm_parameters, padding.PKCS1v15
            ):
                return False
            key.verify(child.signature, child.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(child.signature, child.tbs_certificate_bytes, ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _valid_at(cert: x509.Certificate, now: datetime.datetime) -> str | None:
    if now < cert.not_valid_before_utc:
        return "not yet valid (MBEDTLS_X509_BADCERT_FUTURE)"
    if now > cert.not_valid_after_utc:
        return "expired (MBEDTLS_X509_BADCERT_EXPIRED)"
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return cert.version == x509.Version.v1


def verify_chain(
    bundle: CertBundle,
    chain: Sequence[x509.Certificate],
    *,
    now: datetime.datetime | None = None,
    hostname: str | None = None,
) -> ChainResult:
    """What an ESP-IDF device with ``bundle`` attached decides about a server's ``chain``.

    ``chain[0]`` is the server certificate, the rest the intermediates it sends. Each
    certificate must be valid at ``now``; mbedTLS links a certificate to the next one whose
    subject is its issuer and whose key verifies it (the next must be a CA). The first
    certificate with no parent in the chain is looked up by issuer in the bundle
    (``esp_crt_find_cert``) and its signature checked with the stored key. ``hostname``
    also checks the leaf's subjectAltName (``mbedtls_ssl_set_hostname``).
    """
    if not chain:
        raise UsageError("no certificate to verify")
    when = now or datetime.datetime.now(datetime.UTC)
    steps: list[ChainStep] = []

    def fail(reason: str) -> ChainResult:
        return ChainResult(False, reason, None, tuple(steps))

    if hostname is not None and not _hostname_ok(chain[0], hostname):
        steps.append(ChainStep(chain[0].subject.rfc4514_string(), "hostname", False, hostname))
        return fail(f"server certificate is not for {hostname} (MBEDTLS_X509_BADCERT_CN_MISMATCH)")
    for i, cert in enumerate(chain):
        subject = cert.subject.rfc4514_string()
        bad_time = _valid_at(cert, when)
        steps.append(ChainStep(subject, "validity", bad_time is None, bad_time or ""))
        if bad_time is not None:
            return fail(f"{subject}: {bad_time}")
        parent = chain[i + 1] if i + 1 < len(chain) else None
        if parent is not None and parent.subject == cert.issuer:
            ok = _is_ca(parent) and check_signature(
                cert,
                parent.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
            )
            steps.append(ChainStep(subject, "signed by next in chain", ok))
            if not ok:
                return fail(f"{subject}: not signed by the next certificate in the chain")
            continue
        entry = bundle.find_issuer(cert.issuer.public_bytes())
        if entry is None:
            steps.append(ChainStep(subject, "issuer in bundle", False))
            return fail(
                f"{subject}: no matching trusted root certificate found "
                f"(issuer {cert.issuer.rfc4514_string()})"
            )
        anchor = name_text(entry.subject)
        ok = check_signature(cert, entry.public_key)
        steps.append(ChainStep(subject, "signed by bundle root", ok, anchor))
        if not ok:
            return fail(f"{subject}: matched {anchor} but signature verification failed")
        return ChainResult(True, f"validated by bundle root {anchor}", anchor, tuple(steps))
    return fail("unreachable")  # pragma: no cover


def _hostname_ok(cert: x509.Certificate, hostname: str) -> bool:
    import ipaddress

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return any(str(c.value).lower() == hostname.lower() for c in cns)
    try:
        ip = ipaddress.ip_address(hostname)
    except ValueError:
        dns = [d.lower() for d in san.get_values_for_type(x509.DNSName)]
        host = hostname.lower()
        return host in dns or any(
            d.startswith("*.") and host.split(".", 1)[-1] == d[2:] for d in dns
        )
    return ip in san.get_values_for_type(x509.IPAddress)
