"""Packages whose public names load on first use (module ``__getattr__`` over a ``_LAZY``
table) give the same objects an eager import would, whatever was imported before."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import espsec

LAZY_PACKAGES = sorted(
    name
    for _, name, is_pkg in pkgutil.iter_modules(espsec.__path__, "espsec.")
    if is_pkg and hasattr(importlib.import_module(name), "_LAZY")
)


def test_the_heavy_packages_load_lazily() -> None:
    assert {"espsec.image", "espsec.secure_boot", "espsec.device"} <= set(LAZY_PACKAGES)


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_every_public_name_resolves_after_all_submodules_load(name: str) -> None:
    package = importlib.import_module(name)
    table: dict[str, str] = package._LAZY
    assert set(table) <= set(package.__all__), "a lazy name missing from __all__"
    for module in set(table.values()):
        importlib.import_module(module)  # binds each submodule to its name in the package
    for public, module in table.items():
        value = getattr(package, public)
        assert value is getattr(importlib.import_module(module), public), public
        assert not isinstance(value, ModuleType), f"{name}.{public} is a module"


def test_secure_boot_sign_and_verify_are_the_functions() -> None:
    from espsec import secure_boot

    importlib.import_module("espsec.secure_boot.verification")
    importlib.import_module("espsec.secure_boot.signing")
    assert callable(secure_boot.sign) and callable(secure_boot.verify)
    assert not isinstance(secure_boot.verify, ModuleType)
