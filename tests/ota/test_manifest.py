"""Signed manifests: each attack on the update decision is refused by ``verify_manifest``."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from espsec.errors import UsageError
from espsec.ota import (
    Manifest,
    ManifestError,
    ManifestTrust,
    Refusal,
    ReleaseTarget,
    load_manifest_private_key,
    sign_manifest,
    verify_manifest,
)
from espsec.ota.manifest import PAYLOAD_TYPE, generate_manifest_key, manifest_key_id, pae

NOW = 1_800_000_000
NONCE = bytes(range(16))
KEY = load_manifest_private_key(generate_manifest_key())
PUB = KEY.public_key()


def _target(secure_version: int = 3) -> ReleaseTarget:
    return ReleaseTarget(
        release_id="0123456789abcdef",
        project_name="app",
        version="2.0.0",
        secure_version=secure_version,
        chip="esp32p4",
        url="/api/v1/firmware/" + "ab" * 32,
        length=1024,
        sha256="ab" * 32,
        encryption="ecies-p256",
        image_length=512,
        image_sha256="cd" * 32,
        signed_digest="ef" * 32,
    )


def _manifest(**changes: object) -> Manifest:
    fields: dict[str, object] = {
        "device_id": "dev-1",
        "nonce": NONCE.hex(),
        "counter": 5,
        "issued_at": NOW,
        "expires_at": NOW + 600,
        "release": _target(),
        "reason": "",
    }
    fields.update(changes)
    return Manifest(**fields)  # type: ignore[arg-type]


def _verify(data: bytes, **changes: object) -> Manifest:
    kwargs: dict[str, object] = {
        "now": NOW + 10,
        "device_id": "dev-1",
        "nonce": NONCE,
        "last_counter": 4,
        "min_secure_version": 2,
    }
    kwargs.update(changes)
    return verify_manifest(data, PUB, **kwargs)  # type: ignore[arg-type]


def _refusal(data: bytes, **changes: object) -> Refusal:
    with pytest.raises(ManifestError) as info:
        _verify(data, **changes)
    return info.value.refusal


def _envelope(payload: bytes, key: ec.EllipticCurvePrivateKey = KEY) -> bytes:
    r, s = utils.decode_dss_signature(
        key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    )
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return json.dumps(
        {
            "payloadType": PAYLOAD_TYPE,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": manifest_key_id(key), "sig": base64.b64encode(sig).decode()}],
        }
    ).encode()


def test_valid_manifest_is_accepted() -> None:
    manifest = _manifest()
    assert _verify(sign_manifest(manifest, KEY)) == manifest


def test_no_update_answer_is_signed_too() -> None:
    manifest = _manifest(release=None, reason="up to date")
    assert _verify(sign_manifest(manifest, KEY)).release is None


def test_expired_manifest_is_refused() -> None:
    data = sign_manifest(_manifest(), KEY)
    assert _refusal(data, now=NOW + 600) is Refusal.EXPIRED


def test_manifest_from_the_future_is_refused() -> None:
    data = sign_manifest(_manifest(issued_at=NOW + 3600, expires_at=NOW + 4000), KEY)
    assert _refusal(data) is Refusal.NOT_YET_VALID


def test_replayed_manifest_is_refused() -> None:
    data = sign_manifest(_manifest(), KEY)  # answer to an earlier check-in
    assert _refusal(data, nonce=bytes(16)) is Refusal.REPLAYED


def test_manifest_with_an_old_counter_is_refused() -> None:
    data = sign_manifest(_manifest(counter=4), KEY)
    assert _refusal(data) is Refusal.STALE_COUNTER


def test_manifest_for_another_device_is_refused() -> None:
    data = sign_manifest(_manifest(device_id="dev-2"), KEY)
    assert _refusal(data) is Refusal.WRONG_DEVICE


def test_manifest_signed_by_another_key_is_refused() -> None:
    other = load_manifest_private_key(generate_manifest_key())
    assert _refusal(sign_manifest(_manifest(), other)) is Refusal.BAD_SIGNATURE


def test_manifest_with_altered_payload_is_refused() -> None:
    env = json.loads(sign_manifest(_manifest(), KEY))
    payload = base64.b64decode(env["payload"]).replace(b'"secure_version":3', b'"secure_version":9')
    env["payload"] = base64.b64encode(payload).decode()
    assert _refusal(json.dumps(env).encode()) is Refusal.BAD_SIGNATURE


def test_downgrade_in_a_valid_manifest_is_refused() -> None:
    data = sign_manifest(_manifest(release=_target(secure_version=1)), KEY)
    assert _refusal(data) is Refusal.DOWNGRADE


def test_duplicate_keys_in_a_signed_payload_are_refused() -> None:
    payload = _manifest().to_bytes()
    assert payload.startswith(b'{"_type"')
    payload = payload[:-1] + b',"device_id":"dev-1"}'
    assert _refusal(_envelope(payload)) is Refusal.MALFORMED


def test_float_in_a_signed_payload_is_refused() -> None:
    payload = _manifest().to_bytes().replace(b'"counter":5', b'"counter":5.0')
    assert _refusal(_envelope(payload)) is Refusal.MALFORMED


def test_release_url_must_be_a_path_on_the_fleet() -> None:
    payload = _manifest().to_bytes().replace(b'"url":"/api', b'"url":"https://evil/api')
    assert _refusal(_envelope(payload)) is Refusal.MALFORMED


def test_garbage_is_malformed() -> None:
    assert _refusal(b"not json") is Refusal.MALFORMED
    assert _refusal(b"x" * 70000) is Refusal.MALFORMED


def test_nonce_must_be_long_enough() -> None:
    with pytest.raises(UsageError):
        _verify(sign_manifest(_manifest(), KEY), nonce=b"short")


def test_trust_state_accepts_each_answer_once_and_advances_the_counter() -> None:
    trust = ManifestTrust("dev-1", PUB, last_counter=4)
    nonce = trust.begin_check_in()
    answer = sign_manifest(_manifest(nonce=nonce.hex()), KEY)
    assert trust.accept(answer, now=NOW, min_secure_version=3).counter == 5
    assert trust.last_counter == 5 and trust.last_accepted_at == NOW
    with pytest.raises(UsageError):
        trust.accept(answer, now=NOW)  # nonce used up
    trust.begin_check_in()
    with pytest.raises(ManifestError) as info:
        trust.accept(answer, now=NOW)  # replay into the next check-in
    assert info.value.refusal is Refusal.REPLAYED
    assert trust.last_counter == 5


def test_trust_state_reports_staleness() -> None:
    trust = ManifestTrust("dev-1", PUB)
    assert trust.is_stale(now=NOW, max_age=3600)
    trust.last_accepted_at = NOW
    assert not trust.is_stale(now=NOW + 3600, max_age=3600)
    assert trust.is_stale(now=NOW + 3601, max_age=3600)


def test_manifest_round_trips_through_its_canonical_bytes() -> None:
    manifest = _manifest()
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest
