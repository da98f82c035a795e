"""Shared fixtures for the image tests: chips and images built by our builders."""

from __future__ import annotations

import pytest

from espsec.chips import Chip, get_chip
from espsec.image import build_app_image, build_bootloader_image


@pytest.fixture(scope="session")
def s3() -> Chip:
    return get_chip("esp32s3")


@pytest.fixture(scope="session")
def p4() -> Chip:
    return get_chip("esp32p4")


@pytest.fixture(scope="session")
def demo_app(s3: Chip) -> bytes:
    return build_app_image(s3, version="2.1.0", project_name="demo", secure_version=3)


@pytest.fixture(scope="session")
def demo_bootloader(s3: Chip) -> bytes:
    return build_bootloader_image(s3, version=7, secure_version=2)
