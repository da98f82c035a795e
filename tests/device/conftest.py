"""Fixtures for the virtual-device tests: signing keys (generated once per session by
the root conftest) and signed bootloaders."""

from __future__ import annotations

import pytest

from espsec import secure_boot

from .kit import bootloader, signed


@pytest.fixture(scope="session")
def k0(sb_keys: dict[str, secure_boot.PrivateKey]) -> secure_boot.PrivateKey:
    return sb_keys["rsa3072"]


@pytest.fixture(scope="session")
def k1(sb_keys: dict[str, secure_boot.PrivateKey]) -> secure_boot.PrivateKey:
    return sb_keys["rsa3072-b"]


@pytest.fixture(scope="session")
def rogue(sb_keys: dict[str, secure_boot.PrivateKey]) -> secure_boot.PrivateKey:
    """A key whose digest is never burned."""
    return sb_keys["rsa3072-c"]


@pytest.fixture(scope="session")
def sb_bootloader(k0: secure_boot.PrivateKey, k1: secure_boot.PrivateKey) -> bytes:
    """The bootloader signed with two keys: the first boot burns DIGEST0 and DIGEST1."""
    return signed(bootloader(), k0, k1)
