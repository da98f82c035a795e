"""Kconfig expressions as kconfiglib evaluates them (the option table's conditions)."""

from __future__ import annotations

import pytest

from espsec.sdkconfig import expr

VALUES: dict[str, expr.Value] = {"A": True, "B": False, "N": 300, "H": 0x8000, "S": "esp32s3"}


def truth(text: str) -> bool:
    return expr.truth(expr.parse(text), VALUES.get)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("A", True),
        ("B", False),
        ("!B", True),
        ("A && B", False),
        ("A || B", True),
        ("B && B || A", True),  # && binds tighter than ||
        ("B && (B || A)", False),
        ("!(A && B) && A", True),
        ("N >= 300", True),
        ("N < 300", False),
        ("N != 299", True),
        ("H = 0x8000", True),  # numbers compare as numbers, hex included
        ("H = 32768", True),
        ('S = "esp32s3"', True),
        ("S != esp32p4", True),
        ("UNDEFINED", False),  # an undefined symbol is n...
        ("!UNDEFINED", True),
        ("N", False),  # ...and so is a symbol that is not a bool
    ],
)
def test_expression_values(text, expected):
    assert truth(text) is expected


def test_undefined_symbol_compares_as_its_own_name():
    # kconfiglib: why upstream's "ESP32_REV_MIN_FULL >= 300" holds on targets without it
    assert truth("ESP32_REV_MIN_FULL >= 300")
    assert not truth("ESP32C3_REV_MIN_FULL < 3")


def test_default_values_are_typed():
    def value(text: str) -> expr.Value | None:
        return expr.value(expr.parse(text), VALUES.get)

    assert value("y") is True and value("n") is False
    assert value("0x10") == 16 and value("-1") == -1
    assert value('"nvs"') == "nvs"
    assert value("S") == "esp32s3"
    assert value("UNDEFINED") is None


def test_symbols_lists_what_an_expression_reads():
    assert expr.symbols(expr.parse('A && !(N >= 300) || S = "x"')) == {"A", "N", "S"}


@pytest.mark.parametrize("text", ["A &&", "(A", "A B", "&& A", "A = = B", "A @ B"])
def test_malformed_expressions_are_refused(text):
    with pytest.raises(expr.ExprError):
        expr.parse(text)
