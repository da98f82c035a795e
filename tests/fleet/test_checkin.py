"""Device API over HTTPS: the update decision, and the device-side refusals of bad answers."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable

import pytest

from espsec.errors import FormatError
from espsec.fleet.app import CheckInBatcher
from espsec.fleet.service import CheckInCall
from espsec.ota import CheckIn, HttpError, ManifestError, OutcomeReport, Refusal, new_nonce

from .conftest import Fleet, SimDevice


def _publish(fleet: Fleet, bundle: bytes, cohort: str = "default") -> str:
    with fleet.admin() as admin:
        release_id: str = admin.upload_release(bundle)["id"]
        admin.assign_cohort(cohort, release_id)
    return release_id


def test_device_is_offered_the_cohort_release_in_a_signed_manifest(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    release_id = _publish(fleet, release_factory("2.0.0", 3))
    dev = make_device("dev-a", secure_version=2)
    with fleet.client(device_id="dev-a") as client:
        first = dev.check_in(client)
        second = dev.check_in(client)
    assert first.release is not None and first.release.release_id == release_id
    assert first.release.encryption == "ecies-p256"  # the payload made for this device's key
    assert (first.release.secure_version, first.release.version) == (3, "2.0.0")
    assert second.counter == first.counter + 1
    with fleet.admin() as admin:
        (row,) = admin.devices()
    assert row["device_id"] == "dev-a" and row["offered_release"] == release_id
    assert (row["version"], row["secure_version"], row["boot_state"]) == ("1.0.0", 2, "valid")


def test_downgrade_is_never_offered(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    _publish(fleet, release_factory("2.0.0", 3))
    dev = make_device("dev-b", version="5.0.0", secure_version=5)
    with fleet.client(device_id="dev-b") as client:
        manifest = dev.check_in(client)
    assert manifest.release is None
    assert "downgrade refused" in manifest.reason


def test_up_to_date_and_pending_verify_devices_get_no_update(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    _publish(fleet, release_factory("2.0.0", 3))
    current = make_device("dev-c", version="2.0.0", secure_version=3)
    pending = make_device("dev-d", secure_version=1, boot_state="pending_verify")
    with fleet.client(device_id="dev-c") as client:
        assert current.check_in(client).reason == "up to date"
    with fleet.client(device_id="dev-d") as client:
        manifest = pending.check_in(client)
    assert manifest.release is None and "pending verification" in manifest.reason


def test_release_rolled_back_on_a_device_is_not_offered_again_until_reassigned(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    release_id = _publish(fleet, release_factory("2.0.0", 3))
    dev = make_device("dev-e")
    with fleet.client(device_id="dev-e") as client:
        offer = dev.check_in(client)
        assert offer.release is not None
        client.report(
            OutcomeReport(
                "dev-e", release_id, "rolled_back", "app failed self-test", counter=offer.counter
            )
        )
        assert dev.check_in(client).release is None
        with fleet.admin() as admin:
            admin.assign_cohort("default", release_id)
            reports = admin.reports("dev-e")
        assert dev.check_in(client).release is not None
    assert reports[0]["outcome"] == "rolled_back" and reports[0]["reason"] == "app failed self-test"


def test_cohorts_get_their_own_release(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    stable = _publish(fleet, release_factory("2.0.0", 3))
    beta = _publish(fleet, release_factory("2.1.0", 3), cohort="beta")
    with fleet.admin() as admin:
        admin.assign_device("dev-beta", "beta")
    with fleet.client(device_id="dev-beta") as client:
        m_beta = make_device("dev-beta").check_in(client)
    with fleet.client(device_id="dev-stable") as client:
        m_stable = make_device("dev-stable").check_in(client)
    with fleet.client(device_id="dev-s3") as client:
        m_other_chip = make_device("dev-s3", chip="esp32s3").check_in(client)
    assert m_beta.release is not None and m_beta.release.release_id == beta
    assert m_stable.release is not None and m_stable.release.release_id == stable
    assert m_other_chip.release is None and "is for esp32p4" in m_other_chip.reason


def test_counter_stays_above_what_the_device_accepted_after_a_server_restore(
    fleet: Fleet, make_device: Callable[..., SimDevice]
) -> None:
    dev = make_device("dev-f")
    dev.trust.last_counter = 100  # the device saw counter 100 before the DB was restored
    with fleet.client(device_id="dev-f") as client:
        assert dev.check_in(client).counter == 101


def test_replayed_manifest_is_refused_by_the_device(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    _publish(fleet, release_factory("2.0.0", 3))
    dev = make_device("dev-g")
    with fleet.client(device_id="dev-g") as client:
        dev.check_in(client)
        recorded = dev.last_raw
        dev.trust.begin_check_in()  # a new check-in; the attacker answers with the old one
    with pytest.raises(ManifestError) as info:
        dev.trust.accept(recorded, now=time.time())
    assert info.value.refusal is Refusal.REPLAYED


def test_manifest_for_another_device_is_refused_by_the_device(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    _publish(fleet, release_factory("2.0.0", 3))
    victim, other = make_device("dev-h"), make_device("dev-i")
    nonce = victim.trust.begin_check_in()
    with fleet.client(device_id="dev-i") as client:
        # The attacker relays the victim's nonce in its own check-in.
        answer = client.check_in(CheckIn("dev-i", "esp32p4", "1.0.0", 1, "valid", nonce))
    with pytest.raises(ManifestError) as info:
        victim.trust.accept(answer, now=time.time())
    assert info.value.refusal is Refusal.WRONG_DEVICE
    assert other.trust.last_counter == 0


def test_expired_manifest_is_refused_by_the_device(
    fleet: Fleet, make_device: Callable[..., SimDevice]
) -> None:
    dev = make_device("dev-j")
    nonce = dev.trust.begin_check_in()
    with fleet.client(device_id="dev-j") as client:
        answer = client.check_in(CheckIn("dev-j", "esp32p4", "1.0.0", 1, "valid", nonce))
    ttl = fleet.server.service.config.manifest_ttl
    with pytest.raises(ManifestError) as info:
        dev.trust.accept(answer, now=time.time() + ttl + 1)  # held back by an attacker
    assert info.value.refusal is Refusal.EXPIRED


def test_malformed_check_in_is_a_400(fleet: Fleet) -> None:
    with fleet.client(device_id="dev-k") as client:
        for body in (b"{", json.dumps({"device_id": "x"}).encode(), b"[]"):
            status, _, data = client.request("POST", "/api/v1/device/checkin", body=body)
            assert status == 400, data
        bad = CheckIn("dev k", "esp32p4", "1", 0, "valid", new_nonce())
        with pytest.raises(HttpError) as info:
            client.check_in(bad)
        assert info.value.status == 400


def _counter(envelope: bytes) -> int:
    payload = base64.b64decode(json.loads(envelope)["payload"])
    return int(json.loads(payload)["counter"])


def test_batched_check_ins_are_recorded_as_if_one_after_the_other(
    fleet: Fleet, release_factory: Callable[..., bytes]
) -> None:
    release_id = _publish(fleet, release_factory("2.0.0", 3))
    svc = fleet.server.service

    def call(device_id: str, body: bytes | None = None) -> CheckInCall:
        request = CheckIn(device_id, "esp32p4", "1.0.0", 2, "valid", new_nonce())
        return CheckInCall(body or request.to_bytes(), device_id)

    batch = [call("dev-a"), call("dev-b"), call("dev-a"), call("dev-c", b"{"), call("dev-a")]
    answers = svc.check_in_batch(batch)
    assert isinstance(answers[3], FormatError)  # one bad check-in fails alone
    a1, b, a2, _, a3 = answers
    assert isinstance(a1, bytes) and isinstance(a2, bytes) and isinstance(a3, bytes)
    assert isinstance(b, bytes)
    assert _counter(a1) < _counter(a2) < _counter(a3)  # each answer above the previous one
    with fleet.admin() as admin:
        rows = {d["device_id"]: d for d in admin.devices()}
    assert set(rows) == {"dev-a", "dev-b"}
    assert rows["dev-a"]["counter"] == _counter(a3)
    assert rows["dev-a"]["offered_release"] == release_id
    with fleet.admin() as admin:
        assert admin.stats()["counts"]["check_in_batches"] == 1


def test_check_ins_arriving_together_share_one_transaction() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.batches: list[int] = []

        def check_in_batch(self, calls: list[CheckInCall]) -> list[bytes | Exception]:
            self.batches.append(len(calls))
            return [call.body[::-1] for call in calls]

    recorder = Recorder()
    batcher = CheckInBatcher(recorder, linger=0.05)  # type: ignore[arg-type]

    async def devices() -> list[bytes]:
        calls = [CheckInCall(b"check-in %d" % n, f"dev-{n}") for n in range(10)]
        return await asyncio.gather(*(batcher.check_in(c) for c in calls))

    try:
        answers = asyncio.run(devices())
    finally:
        batcher.close()
    assert answers == [(b"check-in %d" % n)[::-1] for n in range(10)]  # each its own answer
    assert recorder.batches == [10]
