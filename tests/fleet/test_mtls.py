"""Devices are authenticated by mutual TLS: each attack from the fleet's review is a test."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from espsec.cli.main import main
from espsec.errors import EspsecError
from espsec.fleet import start_server
from espsec.identity.tls import ClientKey, generate_device_ca, issue_device_certificate
from espsec.ota import CheckIn, FleetClient, HttpError, OutcomeReport, TlsTrust, new_nonce

from .conftest import Fleet, SimDevice


def _publish(fleet: Fleet, bundle: bytes) -> str:
    with fleet.admin() as admin:
        release_id: str = admin.upload_release(bundle)["id"]
        admin.assign_cohort("default", release_id)
    return release_id


def _check_in_body(device_id: str) -> CheckIn:
    return CheckIn(device_id, "esp32p4", "1.0.0", 1, "valid", new_nonce())


def _status(call: Callable[[], object]) -> int:
    with pytest.raises(HttpError) as info:
        call()
    return info.value.status


def test_device_api_without_a_client_certificate_is_refused(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    release_id = _publish(fleet, release_factory("2.0.0", 3))
    with fleet.client(device_id="dev-v") as client:
        offer = make_device("dev-v").check_in(client)
    assert offer.release is not None
    with FleetClient(fleet.url, fleet.trust) as anonymous:
        assert _status(lambda: anonymous.check_in(_check_in_body("dev-v"))) == 401
        report = OutcomeReport("dev-v", release_id, "rolled_back", counter=offer.counter)
        assert _status(lambda: anonymous.report(report)) == 401
        status, _, _ = anonymous.request("GET", offer.release.url, max_size=1 << 20)
        assert status == 401


def test_certificate_from_another_ca_is_refused_at_the_handshake(
    fleet: Fleet,
) -> None:
    rogue_ca, rogue_key = generate_device_ca("rogue CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_device_certificate(rogue_ca, rogue_key, "dev-v", key.public_key())
    identity = ClientKey((cert,), lambda: key)
    with (
        FleetClient(fleet.url, fleet.trust, identity=identity) as client,
        pytest.raises(EspsecError),
    ):
        client.check_in(_check_in_body("dev-v"))
    with fleet.admin() as admin:
        assert admin.devices() == []  # nothing reached the device API


def test_valid_certificate_with_another_device_id_is_forbidden(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    release_id = _publish(fleet, release_factory("2.0.0", 3))
    with fleet.client(device_id="victim") as client:
        offer = make_device("victim").check_in(client)
    assert offer.release is not None
    with fleet.admin() as admin:
        admin.assign_cohort("default", None)  # the attacker is offered nothing
    with fleet.client(device_id="attacker") as attacker:
        assert _status(lambda: attacker.check_in(_check_in_body("victim"))) == 403
        false_report = OutcomeReport("victim", release_id, "rolled_back", counter=offer.counter)
        assert _status(lambda: attacker.report(false_report)) == 403
        status, _, _ = attacker.request("GET", offer.release.url, max_size=1 << 20)
        assert status == 403  # the victim's firmware is not served to another device
    with fleet.admin() as admin:
        victim = next(d for d in admin.devices() if d["device_id"] == "victim")
        admin.assign_cohort("default", release_id)
    assert victim["blocked_release"] is None  # the false report froze nothing
    with fleet.client(device_id="victim") as client:
        assert make_device("victim").check_in(client).release is not None


def test_replayed_report_is_refused(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    release_id = _publish(fleet, release_factory("2.0.0", 3))
    dev = make_device("dev-r")
    with fleet.client(device_id="dev-r") as client:
        offer = dev.check_in(client)
        report = OutcomeReport("dev-r", release_id, "updated", counter=offer.counter)
        client.report(report)
        assert _status(lambda: client.report(report)) == 403
        rolled = OutcomeReport("dev-r", release_id, "rolled_back", counter=offer.counter)
        assert _status(lambda: client.report(rolled)) == 403
        unissued = OutcomeReport("dev-r", release_id, "rolled_back", counter=offer.counter + 7)
        assert _status(lambda: client.report(unissued)) == 403
    with fleet.admin() as admin:
        reports = admin.reports("dev-r")
    assert [r["outcome"] for r in reports] == ["updated"]


def test_report_naming_a_release_the_manifest_did_not_offer_is_refused(
    fleet: Fleet, make_device: Callable[..., SimDevice]
) -> None:
    dev = make_device("dev-n")
    with fleet.client(device_id="dev-n") as client:
        offer = dev.check_in(client)  # no release assigned: nothing offered
        report = OutcomeReport("dev-n", "r" * 16, "rolled_back", counter=offer.counter)
        assert _status(lambda: client.report(report)) == 403


def test_expired_device_certificate_is_refused(fleet: Fleet) -> None:
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    identity = fleet.identity("dev-old", days=2, now=long_ago)
    with (
        FleetClient(fleet.url, fleet.trust, identity=identity) as client,
        pytest.raises(EspsecError),
    ):
        client.check_in(_check_in_body("dev-old"))


def test_fleet_init_with_device_ca_trusts_that_ca(
    tmp_path: Path, signer: object, sb_key_dir: Path
) -> None:
    ca_cert, ca_key = generate_device_ca("factory CA")
    ca_file = tmp_path / "factory-ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    state = tmp_path / "fleet"
    res = CliRunner().invoke(
        main,
        [
            "fleet", "init", "--pub-key", str(sb_key_dir / "ecdsa256.pub.pem"),
            "--device-ca", str(ca_file), "--json", str(state),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (state / "device-ca.pem").read_bytes() == ca_file.read_bytes()
    assert not (state / "device-ca-key.pem").exists()
    server = start_server(state)
    try:
        assert server.tls.ca_cert is not None
        trust = TlsTrust.ca(server.tls.ca_cert.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue_device_certificate(ca_cert, ca_key, "factory-1", key.public_key())
        with FleetClient(server.url, trust, identity=ClientKey((cert,), lambda: key)) as client:
            assert client.check_in(_check_in_body("factory-1"))
    finally:
        server.stop()


def test_fleet_init_refuses_a_device_ca_that_is_not_a_ca(tmp_path: Path, sb_key_dir: Path) -> None:
    leaf = tmp_path / "leaf.pem"
    ca_cert, ca_key = generate_device_ca()
    key = ec.generate_private_key(ec.SECP256R1())
    leaf.write_bytes(
        issue_device_certificate(ca_cert, ca_key, "d", key.public_key()).public_bytes(
            serialization.Encoding.PEM
        )
    )
    state = tmp_path / "fleet"
    res = CliRunner().invoke(
        main,
        [
            "fleet", "init", "--pub-key", str(sb_key_dir / "ecdsa256.pub.pem"),
            "--device-ca", str(leaf), str(state),
        ],
    )  # fmt: skip
    assert res.exit_code == 1 and "not a CA certificate" in res.output
    assert not (state / "fleet.json").exists()
