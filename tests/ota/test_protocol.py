"""The OTA wire protocol: what both the device's client and the fleet server send and accept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espsec import ota, secure_boot
from espsec.chips import get_chip
from espsec.errors import EspsecError, FormatError, UsageError
from espsec.image import build_app_image
from espsec.ota.protocol import (
    FIRMWARE_PATH,
    BootState,
    CheckIn,
    Encryption,
    Outcome,
    OutcomeReport,
    ReleaseTarget,
)

NONCE = bytes(range(16))
CHECK_IN = CheckIn(
    device_id="dev-1",
    chip="esp32p4",
    version="1.0.0",
    secure_version=2,
    boot_state=BootState.VALID,
    nonce=NONCE,
    last_counter=7,
    project_name="app",
    image_sha256="ab" * 32,
    enc_key_id="cd" * 32,
)
REPORT = OutcomeReport(
    device_id="dev-1",
    release_id="0123456789abcdef",
    outcome=Outcome.ROLLED_BACK,
    reason="self-test failed",
    counter=8,
    version="1.0.0",
    secure_version=2,
)
TARGET = ReleaseTarget(
    release_id="0123456789abcdef",
    project_name="app",
    version="2.0.0",
    secure_version=3,
    chip="esp32p4",
    url=FIRMWARE_PATH + "ab" * 32,
    length=1024,
    sha256="ab" * 32,
    encryption=Encryption.ECIES_P256,
    image_length=512,
    image_sha256="cd" * 32,
    signed_digest="ef" * 32,
)
MESSAGES: list[Any] = [CHECK_IN, REPORT, TARGET]
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _with(message: Any, **changes: object) -> bytes:
    obj = message.to_json()
    obj.update(changes)
    return json.dumps(obj).encode()


def _without(message: Any, key: str) -> bytes:
    obj = message.to_json()
    del obj[key]
    return json.dumps(obj).encode()


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_through_its_wire_form(message: Any) -> None:
    assert type(message).parse(message.to_bytes()) == message


def test_check_in_body_is_the_one_devices_already_send() -> None:
    # The body a deployed device sends; the server must keep reading exactly this.
    assert CHECK_IN.to_bytes() == (
        b'{"device_id": "dev-1", "chip": "esp32p4", "version": "1.0.0", "secure_version": 2, '
        b'"boot_state": "valid", "nonce": "000102030405060708090a0b0c0d0e0f", '
        b'"last_counter": 7, "project_name": "app", "image_sha256": "' + b"ab" * 32 + b'", '
        b'"enc_key_id": "' + b"cd" * 32 + b'"}'
    )


def test_report_body_is_the_one_devices_already_send() -> None:
    assert OutcomeReport("dev-1", None, "failed").to_bytes() == (
        b'{"device_id": "dev-1", "release_id": null, "outcome": "failed", "reason": "", '
        b'"counter": null, "version": null, "secure_version": null}'
    )


def test_optional_members_may_be_missing_or_null() -> None:
    minimal = {
        "device_id": "dev-1",
        "chip": "esp32p4",
        "version": "1.0.0",
        "secure_version": 0,
        "boot_state": "new",
        "nonce": NONCE.hex(),
        "last_counter": 0,
        "enc_key_id": None,
    }
    parsed = CheckIn.parse(json.dumps(minimal).encode())
    assert parsed.boot_state is BootState.NEW and parsed.project_name is None
    report = OutcomeReport.parse(b'{"device_id": "d", "release_id": null, "outcome": "updated"}')
    assert report.outcome is Outcome.UPDATED and report.reason == "" and report.counter is None


def test_release_target_is_built_from_the_signed_statement() -> None:
    image = build_app_image(get_chip("esp32p4"), version="2.0.0", secure_version=3, code_size=900)
    signer = secure_boot.load_private_key(secure_boot.generate_private_key("ecdsa256"))
    bundle = ota.pack(image, [signer])
    st = bundle.statement
    (payload,) = st.payloads
    target = ReleaseTarget.from_statement(bundle.release_id, st, payload)
    assert (target.project_name, target.version, target.secure_version, target.chip) == (
        st.project_name,
        "2.0.0",
        3,
        "esp32p4",
    )
    assert (target.image_length, target.image_sha256, target.signed_digest) == (
        st.image_length,
        st.image_sha256,
        st.signed_digest,
    )
    assert target.url == FIRMWARE_PATH + payload.sha256 and target.length == payload.length
    assert target.encryption is Encryption.NONE


def test_boot_state_comes_from_the_esp_ota_img_state_name() -> None:
    assert BootState.from_ota_img_state("PENDING_VERIFY") is BootState.PENDING_VERIFY
    assert BootState.from_ota_img_state(None) is BootState.UNDEFINED
    with pytest.raises(UsageError):
        BootState.from_ota_img_state("HALF_BOOTED")


def test_a_device_cannot_build_a_report_with_an_outcome_the_fleet_does_not_know() -> None:
    with pytest.raises(UsageError, match="outcome must be one of"):
        OutcomeReport("dev-1", None, "no_update")


@pytest.mark.parametrize(
    ("message", "body", "field"),
    [
        # unknown members: a newer or forged sender is refused, not half-understood
        (CHECK_IN, _with(CHECK_IN, force=True), "force"),
        (REPORT, _with(REPORT, extra="x"), "extra"),
        (TARGET, _with(TARGET, url2="/x"), "url2"),
        # wrong types
        (CHECK_IN, _with(CHECK_IN, secure_version="2"), "secure_version"),
        (CHECK_IN, _with(CHECK_IN, secure_version=True), "secure_version"),
        (REPORT, _with(REPORT, counter=[1]), "counter"),
        (TARGET, _with(TARGET, length="1024"), "length"),
        # missing members
        (CHECK_IN, _without(CHECK_IN, "nonce"), "nonce"),
        (REPORT, _without(REPORT, "outcome"), "outcome"),
        (TARGET, _without(TARGET, "image_sha256"), "image_sha256"),
        # bad enum values
        (CHECK_IN, _with(CHECK_IN, boot_state="VALID"), "boot_state"),
        (REPORT, _with(REPORT, outcome="no_update"), "outcome"),
        (TARGET, _with(TARGET, encryption="aes"), "encryption"),
        # oversize strings and bad values
        (CHECK_IN, _with(CHECK_IN, version="1" * 33), "version"),
        (CHECK_IN, _with(CHECK_IN, nonce="00" * 8), "nonce"),
        (CHECK_IN, _with(CHECK_IN, device_id="dev 1"), "device_id"),
        (REPORT, _with(REPORT, reason="x" * 501), "reason"),
        (TARGET, _with(TARGET, url="https://evil.example/fw"), "url"),
        (TARGET, _with(TARGET, sha256="AB" * 32), "sha256"),
    ],
)
def test_strict_parse_refuses_and_names_the_member(message: Any, body: bytes, field: str) -> None:
    with pytest.raises(FormatError) as info:
        type(message).parse(body)
    error = info.value
    assert error.field == field
    assert error.expected is not None and error.found is not None, str(error)


@pytest.mark.parametrize("body", [b"[]", b"{", b'{"a": 1, "a": 2}', b'{"x": 1.5}', b"\xff"])
def test_not_a_json_object_is_a_format_error(body: bytes) -> None:
    for message in MESSAGES:
        with pytest.raises(FormatError):
            type(message).parse(body)


_NAMES = sorted({k for m in MESSAGES for k in m.to_json()})
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=80)
    | st.sampled_from(["valid", "updated", "ecies-p256", "00" * 16, "ab" * 32, "/x", "dev-1"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@pytest.mark.slow
@FAST
@given(
    st.sampled_from(MESSAGES),
    st.dictionaries(st.sampled_from(_NAMES) | st.text(max_size=12), _json_values, max_size=14),
)
def test_random_json_gives_a_message_or_the_projects_error(
    message: Any, obj: dict[str, object]
) -> None:
    try:
        parsed = type(message).parse(json.dumps(obj).encode())
    except EspsecError:
        return
    assert type(message).parse(parsed.to_bytes()) == parsed


@FAST
@given(st.sampled_from(MESSAGES), st.sampled_from(_NAMES), _json_values)
def test_one_member_replaced_gives_a_message_or_the_projects_error(
    message: Any, key: str, value: object
) -> None:
    body = _with(message, **{key: value})
    try:
        parsed = type(message).parse(body)
    except EspsecError:
        return
    assert type(message).parse(parsed.to_bytes()) == parsed


@FAST
@given(st.sampled_from(MESSAGES), st.binary(max_size=300))
def test_random_bytes_give_a_message_or_the_projects_error(message: Any, data: bytes) -> None:
    try:
        parsed = type(message).parse(data)
    except EspsecError:
        return
    assert type(message).parse(parsed.to_bytes()) == parsed
