"""x509 certificate bundles: upstream bundles byte for byte, strict parsing, device-side checks."""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from espsec.cli.main import main
from espsec.errors import FormatError, UsageError
from espsec.identity.cert_bundle import (
    CertBundle,
    certificates_from_file,
    filter_names,
    verify_chain,
)

from .pki import NOW, cert, ec_key

UPSTREAM = (
    Path(__file__).parents[1]
    / "vectors/esp-idf/components/mbedtls/esp_crt_bundle/test_gen_crt_bundle"
)


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@pytest.fixture(scope="module")
def pki() -> dict[str, object]:
    root_key, other_key, inter_key, leaf_key = ec_key(), ec_key(), ec_key(), ec_key()
    root = cert("Test Root", root_key, ca=True, days=3650)
    other = cert("Other Root", other_key, ca=True, days=3650)
    inter = cert("Test Intermediate", inter_key, issuer=root, issuer_key=root_key, ca=True)
    leaf = cert(
        "fleet.example", leaf_key, issuer=inter, issuer_key=inter_key, dns=("fleet.example",)
    )
    return {
        "root": root,
        "root_key": root_key,
        "other": other,
        "other_key": other_key,
        "inter": inter,
        "inter_key": inter_key,
        "leaf": leaf,
        "leaf_key": leaf_key,
    }


@pytest.mark.parametrize(
    ("source", "bundle"),
    [("baltimore.der", "baltimore_crt_bundle"), ("entrust.pem", "entrust_crt_bundle")],
)
def test_builds_upstream_test_bundles_byte_for_byte(source: str, bundle: str) -> None:
    certs = certificates_from_file((UPSTREAM / source).read_bytes(), source=source)
    expected = (UPSTREAM / bundle).read_bytes()
    built = CertBundle.from_certificates(certs)
    assert built.to_bytes() == expected
    assert CertBundle.parse(expected) == built


def test_legacy_layout_is_big_endian_count_and_lengths(pki: dict[str, object]) -> None:
    certs = [pki["root"], pki["other"]]
    legacy = CertBundle.from_certificates(certs, legacy=True)  # type: ignore[arg-type]
    data = legacy.to_bytes()
    assert struct.unpack_from(">H", data)[0] == 2
    name_len, key_len = struct.unpack_from(">HH", data, 2)
    assert data[6 : 6 + name_len] == legacy.entries[0].subject
    assert key_len == len(legacy.entries[0].public_key)
    assert CertBundle.parse(data) == legacy
    current = CertBundle.parse(CertBundle(legacy.entries).to_bytes())
    assert not current.legacy and current.entries == legacy.entries


def test_entries_are_sorted_by_der_subject(pki: dict[str, object]) -> None:
    bundle = CertBundle.from_certificates([pki["root"], pki["other"], pki["inter"]])  # type: ignore[list-item]
    subjects = [e.subject for e in bundle.entries]
    assert subjects == sorted(subjects) and bundle.is_sorted


def test_rejects_bundle_with_a_bad_offset_chain(pki: dict[str, object]) -> None:
    data = bytearray(CertBundle.from_certificates([pki["root"], pki["other"]]).to_bytes())  # type: ignore[list-item]
    struct.pack_into("<I", data, 4, struct.unpack_from("<I", data, 4)[0] + 1)
    with pytest.raises(FormatError, match=r"offsets\[1\].*offset chain broken"):
        CertBundle.parse(bytes(data))


def test_rejects_bundle_whose_last_certificate_runs_past_the_end(
    pki: dict[str, object],
) -> None:
    data = CertBundle.from_certificates([pki["root"]]).to_bytes()  # type: ignore[list-item]
    with pytest.raises(FormatError, match="past the end"):
        CertBundle.parse(data[:-3])


def test_rejects_more_certificates_than_max_certs(pki: dict[str, object]) -> None:
    certs = [pki["root"], pki["other"], pki["inter"]]
    with pytest.raises(UsageError, match="MAX_CERTS"):
        CertBundle.from_certificates(certs, max_certs=2)  # type: ignore[arg-type]
    data = CertBundle.from_certificates(certs).to_bytes()  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="MAX_CERTS"):
        CertBundle.parse(data, max_certs=2)


@given(st.binary(max_size=300))
def test_parser_gives_a_bundle_or_format_error(data: bytes) -> None:
    try:
        bundle = CertBundle.parse(data)
    except FormatError:
        return
    assert bundle.to_bytes() == data


def test_server_chain_through_intermediate_validates_against_bundle_root(
    pki: dict[str, object],
) -> None:
    bundle = CertBundle.from_certificates([pki["other"], pki["root"]])  # type: ignore[list-item]
    result = verify_chain(bundle, [pki["leaf"], pki["inter"]], now=NOW, hostname="fleet.example")  # type: ignore[list-item]
    assert result.trusted, result.reason
    assert result.anchor == "CN=Test Root"


def test_refuses_chain_from_a_root_not_in_the_bundle(pki: dict[str, object]) -> None:
    bundle = CertBundle.from_certificates([pki["other"]])  # type: ignore[list-item]
    result = verify_chain(bundle, [pki["leaf"], pki["inter"]], now=NOW)  # type: ignore[list-item]
    assert not result.trusted and "no matching trusted root" in result.reason


def test_refuses_impostor_root_with_the_right_name_but_another_key(
    pki: dict[str, object],
) -> None:
    impostor = cert("Test Root", ec_key(), ca=True)
    bundle = CertBundle.from_certificates([impostor])
    result = verify_chain(bundle, [pki["leaf"], pki["inter"]], now=NOW)  # type: ignore[list-item]
    assert not result.trusted and "signature verification failed" in result.reason


def test_refuses_expired_server_certificate(pki: dict[str, object]) -> None:
    bundle = CertBundle.from_certificates([pki["root"]])  # type: ignore[list-item]
    later = NOW + datetime.timedelta(days=400)
    result = verify_chain(bundle, [pki["leaf"], pki["inter"]], now=later)  # type: ignore[list-item]
    assert not result.trusted and "EXPIRED" in result.reason


def test_refuses_server_certificate_for_another_host(pki: dict[str, object]) -> None:
    bundle = CertBundle.from_certificates([pki["root"]])  # type: ignore[list-item]
    result = verify_chain(bundle, [pki["leaf"], pki["inter"]], now=NOW, hostname="evil.example")  # type: ignore[list-item]
    assert not result.trusted and "CN_MISMATCH" in result.reason


def test_filter_keeps_only_named_certificates(pki: dict[str, object]) -> None:
    named = b"".join(
        f"{label}\n{'=' * len(label)}\n".encode() + _pem(c)  # type: ignore[arg-type]
        for label, c in (("Test Root", pki["root"]), ("Other Root", pki["other"]))
    )
    names = filter_names(b"Owner,Common Name or Certificate Name\nx,Other Root\n", source="f.csv")
    kept = certificates_from_file(named, source="cacrt_all.pem", names=names)
    assert [c.subject for c in kept] == [pki["other"].subject]  # type: ignore[attr-defined]


def test_reads_mozilla_ca_csv(pki: dict[str, object]) -> None:
    pem = _pem(pki["root"]).decode().strip()  # type: ignore[arg-type]
    csv = f"Owner,Common Name or Certificate Name,PEM Info\nx,Test Root,\"'{pem}'\"\n"
    certs = certificates_from_file(csv.encode(), source="IncludedCACertificateReportPEMCSV.csv")
    assert certs == [pki["root"]]


def test_cli_build_dump_and_verify_chain(tmp_path: Path, pki: dict[str, object]) -> None:
    (tmp_path / "root.pem").write_bytes(_pem(pki["root"]))  # type: ignore[arg-type]
    (tmp_path / "chain.pem").write_bytes(_pem(pki["leaf"], pki["inter"]))  # type: ignore[arg-type]
    runner = CliRunner()
    out = tmp_path / "bundle.bin"
    res = runner.invoke(main, ["cert-bundle", "build", str(tmp_path / "root.pem"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["cert-bundle", "dump", "--json", str(out)])
    assert res.exit_code == 0 and '"count": 1' in res.output
    at = NOW.strftime("%Y-%m-%d")
    args = ["cert-bundle", "verify-chain", "--at", at, str(out), str(tmp_path / "chain.pem")]
    res = runner.invoke(main, args)
    assert res.exit_code == 0 and "trusted" in res.output
    (tmp_path / "other.pem").write_bytes(_pem(pki["other"]))  # type: ignore[arg-type]
    other = tmp_path / "other.bin"
    runner.invoke(main, ["cert-bundle", "build", str(tmp_path / "other.pem"), "-o", str(other)])
    args = ["cert-bundle", "verify-chain", "--at", at, str(other), str(tmp_path / "chain.pem")]
    res = runner.invoke(main, args)
    assert res.exit_code == 1 and "refused" in res.output


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    (tmp_path / "junk.pem").write_bytes(junk)
    out = tmp_path / "bundle.bin"
    res = CliRunner().invoke(
        main, ["cert-bundle", "build", str(tmp_path / "junk.pem"), "-o", str(out)]
    )
    assert res.exit_code == 1 and not out.exists()
    assert len(res.output.strip().splitlines()) == 1 and "junk.pem" in res.output
    bad = tmp_path / "bad.bin"
    bad.write_bytes(struct.pack("<II", 8, 9) + bytes(20))
    res = CliRunner().invoke(main, ["cert-bundle", "dump", str(bad)])
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1
