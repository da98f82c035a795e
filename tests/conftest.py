"""Fixtures shared across the suite: Secure Boot keys (made once) and synthetic images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from espsec import secure_boot
from espsec.chips import SCHEMES, get_chip
from espsec.image import build_app_image

from .hsm.softhsm import SoftHsm, make_token


@pytest.fixture(scope="session")
def sb_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One private + public PEM per Secure Boot v2 scheme, plus a second RSA and P-256 key."""
    folder = tmp_path_factory.mktemp("sbkeys")
    for name, scheme in [(s, s) for s in SCHEMES] + [
        ("rsa3072-b", "rsa3072"),
        ("rsa3072-c", "rsa3072"),
        ("ecdsa256-b", "ecdsa256"),
        ("ecdsa256-c", "ecdsa256"),
    ]:
        pem = secure_boot.generate_private_key(scheme)
        (folder / f"{name}.pem").write_bytes(pem)
        key = secure_boot.load_private_key(pem)
        (folder / f"{name}.pub.pem").write_bytes(secure_boot.public_key_pem(key))
    return folder


@pytest.fixture(scope="session")
def sb_keys(sb_key_dir: Path) -> dict[str, secure_boot.PrivateKey]:
    return {
        p.name.removesuffix(".pem"): secure_boot.load_private_key(p.read_bytes())
        for p in sb_key_dir.glob("*.pem")
        if not p.name.endswith(".pub.pem")
    }


@pytest.fixture(scope="session")
def s3_app() -> bytes:
    return build_app_image(get_chip("esp32s3"), version="1.2.3", secure_version=2)


@pytest.fixture(scope="session")
def p4_app() -> bytes:
    return build_app_image(get_chip("esp32p4"), version="2.0.0")


@pytest.fixture(scope="session")
def softhsm(
    tmp_path_factory: pytest.TempPathFactory, sb_keys: dict[str, secure_boot.PrivateKey]
) -> SoftHsm:
    """A SoftHSM2 token holding every ``sb_keys`` key under its own name (e.g. ``rsa3072``)."""
    hsm = make_token(tmp_path_factory.mktemp("softhsm"))
    for name, key in sorted(sb_keys.items()):
        hsm.import_key(key, name)
    return hsm


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for this test session (one per xdist worker)."""
    from ._pg import postgres_server

    with postgres_server() as url:
        yield url
