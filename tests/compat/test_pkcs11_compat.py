"""Oracle: Secure Boot v2 signatures made inside a PKCS#11 token (SoftHSM2).

espsecure verifies what espsec signs in the token, and espsec verifies what espsecure's
own ``--hsm`` path signs with the same token key (parity with esptool espsecure/esp_hsm_sign).
"""

from __future__ import annotations

import pytest

from espsec import secure_boot
from espsec.secure_boot.pkcs11 import Pkcs11Signer

from ..hsm.softhsm import PIN
from .conftest import run_tool


def _slot_id(softhsm) -> int:
    import pkcs11

    lib = pkcs11.lib(softhsm.module)
    for slot in lib.get_slots(token_present=True):
        if slot.get_token().label == softhsm.label:
            return int(slot.slot_id)
    raise AssertionError("token not found")


@pytest.mark.parametrize("scheme", ["rsa3072", "ecdsa256", "ecdsa384"])
def test_espsecure_verifies_signature_made_in_token(
    tmp_path, softhsm, sb_key_dir, s3_app, p4_app, scheme
):
    image = s3_app if scheme == "rsa3072" else p4_app
    with Pkcs11Signer(softhsm.uri(scheme)) as signer:
        (tmp_path / "signed.bin").write_bytes(secure_boot.sign(image, [signer]))
    out = run_tool(
        "espsecure",
        "verify-signature",
        "-v",
        "2",
        "-k",
        sb_key_dir / f"{scheme}.pub.pem",
        tmp_path / "signed.bin",
    )
    assert "verification successful" in out.stdout


@pytest.mark.parametrize("scheme", ["rsa3072", "ecdsa256"])
def test_espsec_verifies_espsecure_hsm_signature_with_the_same_token_key(
    tmp_path, softhsm, sb_keys, s3_app, p4_app, scheme
):
    image = s3_app if scheme == "rsa3072" else p4_app
    (tmp_path / "app.bin").write_bytes(image)
    config = tmp_path / "hsm.ini"
    config.write_text(
        "[hsm_config]\n"
        f"pkcs11_lib = {softhsm.module}\n"
        f"credentials = {PIN}\n"
        f"slot = {_slot_id(softhsm)}\n"
        f"label = {scheme}\n"
        f"label_pubkey = {scheme}\n"
    )
    run_tool(
        "espsecure",
        "sign-data",
        "-v",
        "2",
        "--hsm",
        "--hsm-config",
        config,
        "-o",
        tmp_path / "theirs.bin",
        tmp_path / "app.bin",
    )
    theirs = (tmp_path / "theirs.bin").read_bytes()
    report = secure_boot.verify(theirs, keys=[sb_keys[scheme].public_key()])
    assert report.ok
    with Pkcs11Signer(softhsm.uri(scheme)) as signer:
        ours = secure_boot.sign(image, [signer])
    # Same content, same key block; only the (randomised) signature differs.
    assert ours[: -secure_boot.SECTOR_SIZE] == theirs[: -secure_boot.SECTOR_SIZE]
    assert secure_boot.info(ours)[0].key_digest == secure_boot.info(theirs)[0].key_digest
