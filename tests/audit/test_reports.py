"""The report formats: text, SARIF 2.1.0 (checked against OASIS's schema, with what GitHub
code scanning reads) and the self-contained HTML page (rendered in Debian's Chromium)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from espsec.audit import Profile, Report, Severity, load_inputs
from espsec.audit.findings import Evidence, Finding, RuleInfo
from espsec.audit.report_html import render_html
from espsec.audit.report_sarif import to_sarif
from espsec.audit.report_text import render_text
from espsec.audit.subjects import ImageSubject, VersionSubject
from espsec.image import find_app_desc, parse_image

from ..device.kit import app
from .conftest import DATA, config_subject, sdkconfig_text

SCHEMA = json.loads(
    (Path(__file__).parents[1] / "vectors" / "sarif" / "sarif-schema-2.1.0.json").read_text()
)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def weak_report(run) -> Report:
    """Findings of every kind: Kconfig (with lines), eFuses, an app built with Bluetooth
    on an ESP-IDF release that advisories concern."""
    inputs = load_inputs(
        [DATA / "sdkconfig" / "weak.esp32s3", DATA / "efuse" / "s3-blank.summary.json"]
    )
    desc = find_app_desc(parse_image(app("1.0.0", 0)))
    assert desc is not None
    inputs.images.append(ImageSubject(str(DATA / "app.bin"), "esp32s3", desc))
    bluetooth = config_subject(sdkconfig_text({"BT_ENABLED": "y"})).config
    inputs.versions.append(
        VersionSubject(
            str(DATA / "app.bin"), "v5.4.1", _v("v5.4.1"), "esp32s3", "idf_ver", 0x70, bluetooth
        )
    )
    return run(inputs)


def _v(text: str):
    from espsec.audit.advisories import IdfVersion

    return IdfVersion.parse(text)


def hostile_report() -> Report:
    rule = RuleInfo("XSS001", "x<b>", "t<i>", "g<u>", "f<s>", Severity.HIGH)
    finding = Finding(
        "XSS001",
        Severity.HIGH,
        '"><img src=x onerror=alert(1)>',
        "<script>alert(1)</script>",
        (Evidence("kconfig", "CONFIG_<X>", "<y>", "a&b"),),
        "</td><script>alert(2)</script>",
    )
    return Report(Profile.PRODUCTION, ("<input>",), (rule,), (finding,))


# -- text ------------------------------------------------------------------------------


def test_text_report_lists_findings_with_evidence_fix_and_guide(weak_report):
    text = render_text(weak_report)
    assert "HIGH     TLS001 tls-server-verification-off" in text
    assert "evidence: CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY = y" in text
    assert "guide: ESP-IDF security guide (docs/en/security/security.rst)" in text
    assert text.rstrip().endswith(", ".join(f"{n} {s}" for s, n in weak_report.counts().items()))


# -- SARIF ------------------------------------------------------------------------------


def validate(log: dict) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(log)


def test_sarif_validates_against_the_oasis_schema(weak_report, tmp_path):
    log = to_sarif(weak_report, base=DATA)
    validate(log)
    validate(json.loads(json.dumps(log)))  # as written to a file


def test_empty_report_is_valid_sarif(run):
    report = run(configs=[])
    log = to_sarif(report)
    validate(log)
    assert log["runs"][0]["results"] == []


def test_sarif_rules_carry_github_security_severity_and_tags(weak_report):
    driver = to_sarif(weak_report)["runs"][0]["tool"]["driver"]
    assert driver["name"] == "espsec"
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids))
    for rule in driver["rules"]:
        assert "security" in rule["properties"]["tags"]
        assert 0.0 <= float(rule["properties"]["security-severity"]) <= 10.0
        assert rule["help"]["text"] and rule["shortDescription"]["text"]


def test_sarif_results_point_at_the_sdkconfig_line(weak_report):
    log = to_sarif(weak_report, base=DATA)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    text = (DATA / "sdkconfig" / "weak.esp32s3").read_text().splitlines()
    by_rule = {r["ruleId"]: r for r in run["results"]}
    tls = by_rule["TLS001"]
    location = tls["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "sdkconfig/weak.esp32s3", "uriBaseId": "SRCROOT"}
    line = location["region"]["startLine"]
    assert text[line - 1] == "CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY=y"
    assert tls["level"] == "error" and rules[tls["ruleIndex"]]["id"] == "TLS001"
    for result in run["results"]:
        assert result["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1


def test_sarif_advisory_results_keep_their_advisory_and_severity(weak_report):
    results = to_sarif(weak_report)["runs"][0]["results"]
    advisories = [r for r in results if r["ruleId"] == "ADV001"]
    assert advisories
    uaf = next(r for r in advisories if r["properties"]["advisory"] == "CVE-2026-25508")
    assert uaf["level"] == "error" and uaf["properties"]["advisoryUri"].startswith("https://")
    wps = next(r for r in advisories if r["properties"]["advisory"] == "CVE-2026-25532")
    assert wps["level"] == "warning"


def test_sarif_fingerprints_are_stable_and_distinct(weak_report, run):
    first = [r["partialFingerprints"] for r in to_sarif(weak_report)["runs"][0]["results"]]
    again = [r["partialFingerprints"] for r in to_sarif(weak_report)["runs"][0]["results"]]
    assert first == again
    assert len({json.dumps(f) for f in first}) == len(first)


# -- HTML --------------------------------------------------------------------------------


def test_html_is_self_contained(weak_report):
    page = render_html(weak_report, fail_on=Severity.HIGH)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"\bsrc\s*=", page) and "url(" not in page
    external = re.findall(r'href="([^"]+)"', page)
    assert external and all(h.startswith("https://") for h in external)  # advisory links


def test_html_escapes_what_inputs_say():
    page = render_html(hostile_report())
    assert "<script>alert" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (Debian package chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots of the rendered reports (kept with pytest's temporary folders)."""
    return tmp_path_factory.mktemp("artifacts")


def open_page(browser, html: str, path: Path):
    path.write_text(html)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    return page, requests


@pytest.mark.slow
def test_html_report_renders_in_chromium(browser, weak_report, tmp_path, artifacts):
    page, requests = open_page(
        browser, render_html(weak_report, fail_on=Severity.HIGH), tmp_path / "report.html"
    )
    assert requests == [(tmp_path / "report.html").as_uri()]  # nothing else is fetched
    assert page.title() == "espsec security audit (production)"
    assert page.locator("tr.finding").count() == len(weak_report.findings)
    assert page.locator("#chart rect").count() == len(Severity)
    high = page.locator('tr.finding[data-severity="high"]').count()
    assert high == weak_report.counts()["high"]
    assert page.inner_text("#verdict") == "FAIL at --fail-on high"
    box = page.locator("#chart").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    page.screenshot(path=str(artifacts / "weak-report.png"), full_page=True)
    assert (artifacts / "weak-report.png").stat().st_size > 10_000
    page.close()


@pytest.mark.slow
def test_html_report_of_a_passing_audit_in_chromium(browser, run, tmp_path, artifacts):
    report = run(load_inputs([DATA / "sdkconfig" / "production.esp32s3"]))
    page, _ = open_page(browser, render_html(report, fail_on=Severity.HIGH), tmp_path / "p.html")
    assert page.inner_text("#verdict") == "PASS at --fail-on high"
    assert page.locator("tr.finding").count() == 0
    assert "No findings." in page.inner_text("body")
    page.screenshot(path=str(artifacts / "passing-report.png"), full_page=True)
    page.close()


@pytest.mark.slow
def test_hostile_input_runs_no_script_in_chromium(browser, tmp_path):
    page, _ = open_page(browser, render_html(hostile_report()), tmp_path / "x.html")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.reload()
    assert dialogs == []
    assert page.locator("script").count() == 0 and page.locator("img").count() == 0
    assert "<script>alert(1)</script>" in page.inner_text("tr.finding")
    page.close()
