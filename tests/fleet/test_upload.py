"""Admin API over HTTPS: only releases a trusted Secure Boot key vouches for are accepted."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import pytest

from espsec import ota, secure_boot
from espsec.chips import get_chip
from espsec.fleet import AdminClient
from espsec.image import build_app_image
from espsec.ota import HttpError

from .conftest import Fleet


def test_release_signed_by_a_wrong_signer_is_refused_on_upload(
    fleet: Fleet, sb_keys: dict[str, secure_boot.PrivateKey]
) -> None:
    image = build_app_image(get_chip("esp32p4"), version="6.6.6", secure_version=9)
    evil = ota.pack(image, [sb_keys["ecdsa256-b"]]).to_bytes()
    with fleet.admin() as admin:
        with pytest.raises(HttpError) as info:
            admin.upload_release(evil)
        assert info.value.status == 422
        assert "key not trusted" in info.value.message
        assert admin.releases() == []


def test_tampered_release_is_refused_on_upload(
    fleet: Fleet, release_factory: Callable[..., bytes]
) -> None:
    good = release_factory("2.0.0", 3)
    src = zipfile.ZipFile(io.BytesIO(good))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = bytearray(src.read(name))
            if name == "payload-0.bin":
                data[1000] ^= 0x01
            dst.writestr(name, bytes(data))
    with fleet.admin() as admin:
        with pytest.raises(HttpError) as info:
            admin.upload_release(out.getvalue())
        assert info.value.status == 422
        assert admin.releases() == []


def test_good_release_is_accepted_once(fleet: Fleet, release_factory: Callable[..., bytes]) -> None:
    data = release_factory("2.0.0", 3)
    with fleet.admin() as admin:
        row = admin.upload_release(data)
        assert (row["version"], row["secure_version"], row["chip"]) == ("2.0.0", 3, "esp32p4")
        assert [r["id"] for r in admin.releases()] == [row["id"]]
        with pytest.raises(HttpError) as info:
            admin.upload_release(data)
        assert info.value.status == 409
    # Payloads are stored content-addressed, private to the server.
    blobs = sorted((fleet.state / "blobs").iterdir())
    assert len(blobs) == 2 and all(p.stat().st_mode & 0o077 == 0 for p in blobs)


def test_garbage_upload_is_a_400(fleet: Fleet) -> None:
    with fleet.admin() as admin, pytest.raises(HttpError) as info:
        admin.upload_release(b"not a bundle")
    assert info.value.status == 400


@pytest.mark.parametrize("token", ["", "wrong-token"])
def test_admin_api_needs_the_token(
    fleet: Fleet, token: str, release_factory: Callable[..., bytes]
) -> None:
    with AdminClient(fleet.admin_url, token or " ", fleet.trust) as admin:
        for call in (admin.releases, admin.devices, lambda: admin.upload_release(b"x")):
            with pytest.raises(HttpError) as info:
                call()
            assert info.value.status == 401
    with fleet.admin() as admin:
        assert admin.stats()["counts"]["admin_auth_failures"] == 3


def test_cohort_needs_an_existing_release(fleet: Fleet) -> None:
    with fleet.admin() as admin, pytest.raises(HttpError) as info:
        admin.assign_cohort("default", "0000000000000000")
    assert info.value.status == 404
