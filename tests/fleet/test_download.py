"""Firmware download over HTTPS: the full update flow, Range resume, and integrity checks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from espsec import ota, secure_boot
from espsec.errors import VerificationError
from espsec.ota import EncryptedImageDecryptor, HttpError, OutcomeReport

from .conftest import CuttingProxy, Fleet, SimDevice


def _offer(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> tuple[SimDevice, ota.Manifest]:
    with fleet.admin() as admin:
        release_id = admin.upload_release(release_factory("3.0.0", 4, 60_000))["id"]
        admin.assign_cohort("default", release_id)
    dev = make_device("dev-dl", secure_version=2)
    with fleet.client(device_id="dev-dl") as client:
        manifest = dev.check_in(client)
    assert manifest.release is not None
    return dev, manifest


def test_device_downloads_decrypts_verifies_and_reports(
    fleet: Fleet,
    release_factory: Callable[..., bytes],
    make_device: Callable[..., SimDevice],
    signer: secure_boot.PrivateKey,
) -> None:
    dev, manifest = _offer(fleet, release_factory, make_device)
    target = manifest.release
    assert target is not None
    dec = EncryptedImageDecryptor(dev.key)
    slot = bytearray()  # the inactive OTA slot
    with fleet.client(device_id="dev-dl") as client:
        result = client.download(
            target.url,
            lambda chunk: slot.extend(dec.feed(chunk)),
            length=target.length,
            sha256=bytes.fromhex(target.sha256),
        )
        decrypted = dec.finish()
        assert decrypted.sha256.hex() == target.image_sha256
        assert secure_boot.verify(bytes(slot), key_digests=[secure_boot.key_digest(signer)]).ok
        client.report(
            OutcomeReport(dev.device_id, target.release_id, "updated", counter=manifest.counter)
        )
    assert result.requests == 1 and result.resumed_at == ()
    with fleet.admin() as admin:
        (row,) = admin.devices()
        assert row["last_outcome"] == "updated"
        assert admin.stats()["counts"]["downloads_full"] == 1


def test_truncated_download_is_resumed_with_range(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    dev, manifest = _offer(fleet, release_factory, make_device)
    target = manifest.release
    assert target is not None and target.length > 60_000
    proxy = CuttingProxy(fleet.server.port, cut_after=40_000)  # link drops mid-body
    received = bytearray()
    try:
        with fleet.client(f"https://127.0.0.1:{proxy.port}", device_id="dev-dl") as client:
            result = client.download(
                target.url,
                received.extend,
                length=target.length,
                sha256=bytes.fromhex(target.sha256),
            )
    finally:
        proxy.close()
    assert proxy.connections == 2
    assert result.requests == 2 and len(result.resumed_at) == 1
    assert 0 < result.resumed_at[0] < 40_000
    assert hashlib.sha256(received).hexdigest() == target.sha256
    assert ota.decrypt_image(bytes(received), dev.key)  # the resumed image is whole
    with fleet.admin() as admin:
        counts = admin.stats()["counts"]
    assert counts["downloads_full"] == 1 and counts["downloads_partial"] == 1


def test_download_can_continue_from_bytes_already_held(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    _, manifest = _offer(fleet, release_factory, make_device)
    target = manifest.release
    assert target is not None
    with fleet.client(device_id="dev-dl") as client:
        whole = bytearray()
        client.download(
            target.url, whole.extend, length=target.length, sha256=bytes.fromhex(target.sha256)
        )
        held = bytes(whole[:12345])
        rest = bytearray()
        result = client.download(
            target.url,
            rest.extend,
            length=target.length,
            sha256=bytes.fromhex(target.sha256),
            start=len(held),
            hasher=hashlib.sha256(held),
        )
    assert held + rest == whole and result.requests == 1


def test_download_not_matching_the_manifest_hash_is_refused(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    _, manifest = _offer(fleet, release_factory, make_device)
    target = manifest.release
    assert target is not None
    with fleet.client(device_id="dev-dl") as client:
        with pytest.raises(VerificationError, match="SHA-256"):
            client.download(target.url, lambda _: None, length=target.length, sha256=bytes(32))
        with pytest.raises(VerificationError, match="larger than the manifest"):
            client.download(
                target.url,
                lambda _: None,
                length=target.length - 1,
                sha256=bytes.fromhex(target.sha256),
            )


def test_range_semantics(
    fleet: Fleet, release_factory: Callable[..., bytes], make_device: Callable[..., SimDevice]
) -> None:
    _, manifest = _offer(fleet, release_factory, make_device)
    target = manifest.release
    assert target is not None
    n = target.length
    with fleet.client(device_id="dev-dl") as client:
        status, headers, body = client.request(
            "GET", target.url, headers={"Range": "bytes=10-19"}, max_size=n
        )
        assert status == 206 and len(body) == 10
        assert headers["content-range"] == f"bytes 10-19/{n}"
        assert headers["etag"] == f'"{target.sha256}"'
        status, _, body = client.request(
            "GET", target.url, headers={"Range": "bytes=-5"}, max_size=n
        )
        assert status == 206 and len(body) == 5
        # A partial copy of another file: If-Range does not match, so the whole file comes.
        status, _, body = client.request(
            "GET", target.url, headers={"Range": "bytes=10-", "If-Range": '"other"'}, max_size=n
        )
        assert status == 200 and len(body) == n
        status, headers, _ = client.request("GET", target.url, headers={"Range": f"bytes={n}-"})
        assert status == 416 and headers["content-range"] == f"bytes */{n}"
        status, _, _ = client.request("GET", "/api/v1/firmware/" + "00" * 32)
        assert status == 403  # not offered to this device (whether or not it exists)
        with pytest.raises(HttpError) as info:
            client.download(
                "/api/v1/firmware/" + "00" * 32, lambda _: None, length=1, sha256=bytes(32)
            )
        assert info.value.status == 403
