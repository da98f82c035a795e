"""Keys made once per session (RSA-4096 generation is slow)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa


@pytest.fixture(scope="session")
def rsa2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="session")
def rsa4096() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 4096)
