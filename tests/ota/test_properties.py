"""Parsers of untrusted input give a value or a FormatError/refusal, never another exception."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espsec import ota, secure_boot
from espsec.chips import get_chip
from espsec.errors import FormatError, VerificationError
from espsec.image import build_app_image
from espsec.ota.encrypted_image import HEADER_SIZE, EncryptedImageHeader
from espsec.ota.manifest import (
    Manifest,
    generate_manifest_key,
    load_manifest_private_key,
    sign_manifest,
)
from espsec.ota.protocol import CheckIn
from espsec.ota.release import ReleaseBundle

KEY = load_manifest_private_key(generate_manifest_key())
DEVICE = ota.device_private_key(bytes(range(32)))
SAMPLE_IMAGE = ota.encrypt_image(b"hello world" * 10, DEVICE.public_key())
SAMPLE_MANIFEST = sign_manifest(Manifest("dev", "00" * 16, 1, 100, 200, None, "up to date"), KEY)
SAMPLE_BUNDLE = ota.pack(
    build_app_image(get_chip("esp32p4"), version="1.0.0", secure_version=1, code_size=1000),
    [secure_boot.load_private_key(secure_boot.generate_private_key("ecdsa256"))],
).to_bytes()
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        if out:
            out[pos % len(out)] = value
    return bytes(out)


edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8)


@FAST
@given(st.binary(max_size=HEADER_SIZE + 64))
def test_header_parse_random(data: bytes) -> None:
    try:
        header = EncryptedImageHeader.parse(data)
    except FormatError:
        return
    assert header.to_bytes() == data[:HEADER_SIZE]


@FAST
@given(edits, st.integers(1, 600))
def test_streaming_decrypt_of_mutated_images(changes: list[tuple[int, int]], chunk: int) -> None:
    data = _mutate(SAMPLE_IMAGE, changes)
    dec = ota.EncryptedImageDecryptor(DEVICE)
    try:
        for i in range(0, len(data), chunk):
            dec.feed(data[i : i + chunk])
        dec.finish()
    except (FormatError, VerificationError):
        assert not dec.verified
        return
    assert dec.verified  # only unauthenticated header bytes (reserved) were changed


@FAST
@given(st.binary(max_size=2048))
def test_bundle_parse_random(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        ReleaseBundle.parse(b"PK\x03\x04" + data)


@FAST
@given(edits, st.one_of(st.none(), st.integers(1, 4096)))
def test_bundle_parse_mutated(changes: list[tuple[int, int]], cut: int | None) -> None:
    # Edits land in the central directory (the last 512 bytes), where zipfile raises
    # exceptions of its own; a cut ends the bundle early.
    data = bytearray(SAMPLE_BUNDLE)
    for pos, value in changes:
        data[-1 - pos % 512] = value
    if cut is not None:
        data = data[:-cut]
    with contextlib.suppress(FormatError):
        ReleaseBundle.parse(bytes(data))


@FAST
@given(edits)
def test_verify_manifest_mutated(changes: list[tuple[int, int]]) -> None:
    data = _mutate(SAMPLE_MANIFEST, changes)
    with contextlib.suppress(ota.ManifestError):
        ota.verify_manifest(
            data, KEY.public_key(), now=150, device_id="dev", nonce=bytes(16), last_counter=0
        )


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "device_id",
                "chip",
                "version",
                "secure_version",
                "boot_state",
                "nonce",
                "last_counter",
                "image_sha256",
                "enc_key_id",
                "project_name",
            ]
        ),
        st.one_of(
            st.none(),
            st.integers(-5, 2**70),
            st.text(max_size=80),
            st.booleans(),
            st.lists(st.integers(), max_size=2),
        ),
    )
)
def test_check_in_parse_random(obj: dict[str, object]) -> None:
    with contextlib.suppress(FormatError):
        CheckIn.parse(json.dumps(obj).encode())
