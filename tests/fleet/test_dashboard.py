"""The fleet dashboard in a real headless Chromium (Debian's package, driven by Playwright):
login, releases, a halted rollout with its chart, devices filtered by posture, reports.
Screenshots are kept as artifacts (``ESPSEC_TEST_ARTIFACTS``, else pytest's temp folder)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from espsec import ota
from espsec.ota import CheckIn, ManifestTrust, OutcomeReport
from espsec.ota.protocol import Posture

from .._browser import artifacts_dir, chromium
from .conftest import Fleet
from .test_posture import STRONG, WEAK
from .test_rollout import HOUR, Clock

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_dir(tmp_path_factory.mktemp("dashboard"), "fleet-dashboard")


def _device(fleet: Fleet, device_id: str, key: ota.DecryptionKey, posture: Posture | None,
            clock: Clock) -> tuple[ManifestTrust, ota.Manifest]:  # fmt: skip
    trust = ManifestTrust(device_id, fleet.manifest_key)  # type: ignore[arg-type]
    request = CheckIn(
        device_id, "esp32p4", "1.0.0", 1, "valid", trust.begin_check_in(),
        enc_key_id=ota.recipient_id(key), posture=posture,
    )  # fmt: skip
    raw = fleet.server.service.check_in(request.to_bytes(), client_id=device_id)
    return trust, trust.accept(raw, now=clock.now)


@pytest.fixture
def busy_fleet(
    make_fleet: Callable[..., Fleet],
    release_factory: Callable[..., bytes],
    device_key: ota.DecryptionKey,
) -> Fleet:
    """A fleet with releases, weak and strong devices, and a rollout halted by failures."""
    clock = Clock()
    fleet = make_fleet(clock=clock, tick=None)
    svc = fleet.server.service
    with fleet.admin() as admin:
        base = admin.upload_release(release_factory("1.5.0", 1))["id"]
        admin.assign_cohort("default", base)
        new = admin.upload_release(release_factory("2.0.0", 3))["id"]
        admin.start_rollout(new, "default", steps="20,100", halt_on_failure_rate=0.25,
                            window_s=HOUR)  # fmt: skip
    offered = []
    for i in range(40):
        posture = (STRONG, WEAK, None)[i % 3]
        _, manifest = _device(fleet, f"dev-{i:03d}", device_key, posture, clock)
        if manifest.release is not None and manifest.release.release_id == new:
            offered.append((f"dev-{i:03d}", manifest))
    assert len(offered) >= 5
    outcomes = ["updated", "updated", "updated", "failed", "failed"]
    for (device_id, manifest), outcome in zip(offered, outcomes, strict=False):
        clock.now += 60
        reason = "boot loop <script>alert(1)</script>" if outcome == "failed" else "ok"
        report = OutcomeReport(device_id, new, outcome, reason, manifest.counter)
        svc.report(report.to_bytes(), client_id=device_id)
    return fleet


def _login(browser: Any, fleet: Fleet, token: str) -> Any:
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    page.goto(fleet.admin_url + "/dashboard/")
    assert page.url.endswith("/dashboard/login")  # no session: the login form
    page.fill("input[name=token]", token)
    page.click("button")
    return page


def test_dashboard_needs_the_admin_token(browser: Any, fleet: Fleet, shots: Path) -> None:
    page = _login(browser, fleet, "not-the-token")
    assert page.url.endswith("/dashboard/login")
    assert "wrong admin token" in page.inner_text("form")
    page.screenshot(path=str(shots / "login-refused.png"))
    for path in ("/dashboard/devices", "/dashboard/rollouts", "/dashboard/reports"):
        page.goto(fleet.admin_url + path)
        assert page.url.endswith("/dashboard/login")
    page.context.close()


def test_dashboard_shows_releases_rollouts_devices_and_reports(
    browser: Any, busy_fleet: Fleet, shots: Path
) -> None:
    fleet = busy_fleet
    page = _login(browser, fleet, fleet.token)
    assert page.url.endswith("/dashboard/")
    cards = page.inner_text(".cards")
    assert "Devices\n40" in cards and "Releases\n2" in cards
    assert "halted" in page.inner_text("table")
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    page.click("text=Releases")
    assert page.locator("tbody tr").count() == 2 and "2.0.0" in page.inner_text("table")
    page.screenshot(path=str(shots / "releases.png"), full_page=True)

    page.click("text=Rollouts")
    section = page.locator("section.rollout").first
    assert "halted" in section.inner_text()
    assert "Halted: failure rate 2/5 = 40.0% passed the threshold 25.0%" in section.inner_text()
    chart = section.locator("svg.chart")
    assert chart.is_visible() and chart.locator(".threshold").count() == 1
    assert chart.locator(".failure-rate").count() == 1
    assert section.locator("svg.progress").is_visible()
    page.screenshot(path=str(shots / "rollouts.png"), full_page=True)

    page.click("text=Devices")
    assert page.locator("tbody tr").count() == 40
    page.check("input[name=weak]")
    page.click("form.filters button")
    rows = page.locator("tbody tr")
    assert rows.count() == 26  # 13 weak and 13 that never reported a posture
    assert "EF001" in page.inner_text("tbody") and "no-posture" in page.inner_text("tbody")
    assert page.locator("tbody .flag[title='Secure Boot is not enabled in eFuse']").count() == 13
    page.screenshot(path=str(shots / "devices-weak.png"), full_page=True)
    page.select_option("select[name=flag]", "EF007")  # the audit's rule: JTAG enabled
    page.uncheck("input[name=weak]")
    page.click("form.filters button")
    assert page.locator("tbody tr").count() == 13

    page.click("text=Reports")
    text = page.inner_text("table")
    assert "<script>alert(1)</script>" in text  # shown as text, never run
    assert page.dialogs == []
    page.screenshot(path=str(shots / "reports.png"), full_page=True)

    page.click("text=Log out")
    page.goto(fleet.admin_url + "/dashboard/")
    assert page.url.endswith("/dashboard/login")
    page.context.close()
