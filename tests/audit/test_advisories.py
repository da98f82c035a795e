"""The advisory database: signed data, version matching, the release table, import
(newer only, pinned key only), and the ADV/IDF rules that read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from espsec.audit import Profile, Severity, advisories
from espsec.audit.advisories import Database, IdfVersion
from espsec.audit.subjects import VersionSubject
from espsec.errors import FormatError, UsageError, VerificationError

from .conftest import config_subject, rule_ids, sdkconfig_text

REAL_KEYS = advisories.PINNED_KEYS


@pytest.fixture(scope="module")
def signing_key() -> Ed25519PrivateKey:
    """A key generated for the tests: the shipped database's key no longer exists."""
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def test_keys(signing_key: Ed25519PrivateKey) -> tuple[bytes, ...]:
    public = signing_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return (public,)


def shipped() -> dict:
    data, _ = advisories.packaged()
    return json.loads(data)


def write_db(folder: Path, doc: dict, key: Ed25519PrivateKey) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "advisories.json"
    data = json.dumps(doc).encode()
    path.write_bytes(data)
    Path(str(path) + ".sig").write_bytes(advisories.sign(data, key))
    return path


# -- the shipped database ------------------------------------------------------------------


def test_shipped_database_verifies_against_the_pinned_key(db):
    assert db.origin == "package" and db.serial >= 1
    assert len(db.advisories) >= 10


def test_every_entry_names_an_https_source_and_fixes_inside_its_ranges(db):
    for a in db.advisories:
        assert a.source.startswith("https://")
        assert all(r.startswith("https://") for r in a.references)
        assert a.severity_source
        fixed = {r.fixed for r in a.affected if r.fixed}
        for fix in a.fixes:
            assert fix.commit.startswith("https://github.com/espressif/esp-idf/commit/")
            # a fix on a release branch is the end of one affected range, or it landed
            # before the branch's first release (the range does not reach that branch)
            assert fix.first_release in fixed or IdfVersion.parse(fix.first_release).patch == 0


def test_release_table_has_a_latest_bugfix_per_branch(db):
    table = {b.branch: b.latest for b in db.releases.branches}
    assert table["5.5"] == "5.5.5" and table["4.4"] == "4.4.8"
    assert db.releases.recorded.isoformat() == "2026-07-23"


def test_tampered_database_is_refused():
    data, sig = advisories.packaged()
    tampered = data.replace(b'"severity": "high"', b'"severity": "info"', 1)
    assert tampered != data
    with pytest.raises(VerificationError, match="pinned"):
        advisories.verify(tampered, sig, source="advisories.json")


def test_database_signed_by_another_key_is_refused(signing_key):
    data, _ = advisories.packaged()
    with pytest.raises(VerificationError, match="pinned"):
        advisories.verify(data, advisories.sign(data, signing_key), source="advisories.json")


def test_garbage_signature_file_is_refused():
    data, _ = advisories.packaged()
    with pytest.raises(VerificationError, match="base64"):
        advisories.verify(data, b"not base64!!", source="advisories.json")


# -- versions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "branch"),
    [
        ("v5.5.1", (5, 5, 1, 0), "5.5"),
        ("v5.5", (5, 5, 0, 0), "5.5"),
        ("v5.4.2-123-gdeadbeef-dirty", (5, 4, 2, 0), "5.4"),
        ("v6.0-beta1", (6, 0, 0, -1), "6.0"),
        ("v5.5-dev-2345-g0123abc", (5, 5, 0, -1), "5.5"),
        ("5.3.2", (5, 3, 2, 0), "5.3"),
    ],
)
def test_idf_versions_parse(text, key, branch):
    version = IdfVersion.parse(text)
    assert version is not None and (version.key, version.branch) == (key, branch)


@pytest.mark.parametrize("text", ["", "deadbeef", "master", "v5"])
def test_non_versions_do_not_parse(text):
    assert IdfVersion.parse(text) is None


def test_ranges_match_affected_and_not_fixed_releases(db):
    toctou = db.get("CVE-2024-28183")
    for text, affected in [
        ("v4.4.6", True),
        ("v4.4.7", False),
        ("v5.1.3", True),
        ("v5.1.4", False),
        ("v5.2", True),
        ("v5.2.1", False),
        ("v5.3", False),
    ]:
        assert toctou.affects_version(IdfVersion.parse(text)) is affected, text


def test_a_pre_release_is_on_its_branch(db):
    websocket = db.get("GHSA-3j8v-xgrq-5vg8")
    assert websocket.affects_version(IdfVersion.parse("v6.0-beta1"))
    assert websocket.fixed_in(IdfVersion.parse("v6.0-beta1")) == "6.0.1"


def test_chip_scope(db):
    avrcp = db.get("CVE-2026-46532")
    assert avrcp.affects_chip("esp32") and not avrcp.affects_chip("esp32s3")


def test_unknown_advisory_id_is_a_usage_error(db):
    with pytest.raises(UsageError):
        db.get("CVE-1999-0001")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["advisories"][0].update(source="http://example.com"), "source"),
        (lambda d: d["advisories"][0]["affected"][0].update(fixed="five"), "affected"),
        (lambda d: d["advisories"][0].update(severity="dire"), "severity"),
        (lambda d: d["advisories"][0].update(requires="A &&"), "requires"),
        (lambda d: d["releases"]["branches"][0].update(latest="9.9.9"), "latest"),
        (lambda d: d.update(format="other"), "format"),
    ],
)
def test_malformed_database_names_the_field(mutate, field):
    doc = shipped()
    mutate(doc)
    with pytest.raises(FormatError, match=field):
        Database.parse(json.dumps(doc).encode(), origin="test.json")


# -- import ------------------------------------------------------------------------------


def test_import_installs_a_newer_signed_database(tmp_path, signing_key, test_keys, monkeypatch):
    # the packaged file verifies only against the real pinned key: load() with the test
    # key alone would refuse it, so the tests pin both
    monkeypatch.setattr(advisories, "PINNED_KEYS", (*test_keys, *REAL_KEYS))
    doc = shipped()
    doc["serial"] = 2
    doc["advisories"] = doc["advisories"][:3]
    path = write_db(tmp_path / "new", doc, signing_key)
    installed = advisories.import_database(path, data_dir=tmp_path / "data")
    assert installed.serial == 2 and len(installed.advisories) == 3
    assert advisories.load(tmp_path / "data").serial == 2


def test_import_refuses_a_rollback(tmp_path, signing_key, test_keys, monkeypatch):
    monkeypatch.setattr(advisories, "PINNED_KEYS", (*test_keys, *REAL_KEYS))
    doc = shipped()
    doc["serial"] = 3
    advisories.import_database(write_db(tmp_path / "v3", doc, signing_key), data_dir=tmp_path / "d")
    doc["serial"] = 2
    older = write_db(tmp_path / "v2", doc, signing_key)
    with pytest.raises(VerificationError, match="rollback"):
        advisories.import_database(older, data_dir=tmp_path / "d")
    assert advisories.load(tmp_path / "d").serial == 3


def test_import_refuses_a_database_no_pinned_key_signed(tmp_path, signing_key):
    doc = shipped()
    doc["serial"] = 2
    path = write_db(tmp_path / "new", doc, signing_key)
    with pytest.raises(VerificationError, match="pinned"):
        advisories.import_database(path, data_dir=tmp_path / "data")
    assert not (tmp_path / "data" / "advisories.json").exists()


def test_a_tampered_imported_database_is_an_error_not_a_fallback(
    tmp_path, signing_key, test_keys, monkeypatch
):
    monkeypatch.setattr(advisories, "PINNED_KEYS", (*test_keys, *REAL_KEYS))
    doc = shipped()
    doc["serial"] = 2
    advisories.import_database(write_db(tmp_path / "n", doc, signing_key), data_dir=tmp_path / "d")
    installed = tmp_path / "d" / "advisories.json"
    installed.write_bytes(installed.read_bytes().replace(b'"serial": 2', b'"serial": 9'))
    with pytest.raises(VerificationError):
        advisories.load(tmp_path / "d")


# -- the ADV and IDF rules ------------------------------------------------------------------


def version(text: str, chip: str = "esp32s3", config=None) -> VersionSubject:
    return VersionSubject("app.bin", text, IdfVersion.parse(text), chip, "idf_ver", 0x70, config)


def test_advisory_applies_when_its_feature_is_built(run):
    bt = config_subject(sdkconfig_text({"BT_ENABLED": "y"}))
    report = run(versions=[version("v5.4.1", config=bt.config)])
    found = {f.advisory for f in report.by_rule("ADV001")}
    assert {"CVE-2026-25508", "CVE-2026-45542"} <= found
    (uaf,) = [f for f in report.by_rule("ADV001") if f.advisory == "CVE-2026-25508"]
    assert uaf.severity is Severity.HIGH and "fixed in 5.4.4" in uaf.message
    assert (
        uaf.help_uri
        == "https://github.com/espressif/esp-idf/security/advisories/GHSA-h7r3-gmg9-xjmg"
    )


def test_advisory_does_not_apply_when_its_feature_is_not_built(run):
    no_bt = config_subject(sdkconfig_text())
    found = {f.advisory for f in run(versions=[version("v5.4.1", config=no_bt.config)]).findings}
    assert found.isdisjoint({"CVE-2026-25508", "CVE-2026-45542", "CVE-2026-25507"})
    assert "CVE-2026-45160" in found  # the DHCP server is on by default (LWIP_DHCPS)


def test_fixed_release_has_no_advisory(run):
    assert "ADV001" not in rule_ids(run(versions=[version("v5.5.5")]))


def test_unknown_configuration_matches_on_version_and_chip_and_says_so(run):
    report = run(versions=[version("v5.4.1")])
    (uaf,) = [f for f in report.by_rule("ADV001") if f.advisory == "CVE-2026-25508"]
    assert "configuration is unknown" in uaf.message


def test_not_latest_bugfix(run):
    (finding,) = run(versions=[version("v5.4.1")]).by_rule("IDF001")
    assert "5.4.4" in finding.message and "2026-07-23" in finding.message
    assert finding.evidence[0].offset == 0x70
    assert "IDF001" not in rule_ids(run(versions=[version("v5.4.4")]))


def test_end_of_life_release(run):
    assert "IDF002" in rule_ids(run(versions=[version("v4.4.8")]))
    assert "IDF002" in rule_ids(run(versions=[version("v3.3.6")]))
    assert "IDF002" not in rule_ids(run(versions=[version("v5.5.5")]))


def test_unknown_or_pre_release_version(run):
    assert "IDF003" in rule_ids(run(versions=[version("deadbeef")]))
    assert "IDF003" in rule_ids(run(versions=[version("v6.0-rc1")]))
    assert "IDF003" not in rule_ids(run(versions=[version("v6.0.2")]))


def test_version_findings_stay_in_development(run):
    report = run(versions=[version("v5.4.1")], profile=Profile.DEVELOPMENT)
    assert {"IDF001", "ADV001"} <= rule_ids(report)
