"""Kconfig expressions: the ``depends on`` / ``if`` conditions of the option table.

The grammar is Kconfig's (``docs/kconfig-language.rst`` in the Linux tree, which
esp-idf-kconfig follows): symbols and constants, ``=``, ``!=``, ``<``, ``<=``, ``>``,
``>=``, ``!``, ``&&``, ``||`` and parentheses, ``&&`` binding tighter than ``||``.

Values follow kconfiglib: a bool is ``y``/``n``; a symbol that is not bool is ``n`` where
a truth value is wanted; a comparison compares numbers when both sides read as numbers
(``0x`` hex included) and strings otherwise; an undefined symbol's string value is its
own name (which is why upstream's ``ESP32_REV_MIN_FULL >= 300`` holds on targets that do
not define ``ESP32_REV_MIN_FULL``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

Value = bool | int | str
"""A symbol's value: ``y``/``n`` as bool, int and hex as int, strings unquoted."""

Lookup = Callable[[str], Value | None]
"""A symbol's value by name; ``None`` when the symbol is undefined (or has no value)."""

_TOKEN = re.compile(
    r"\s*(?:(?P<op>&&|\|\||!=|<=|>=|[!()=<>])|(?P<str>\"(?:[^\"\\]|\\.)*\"|'[^']*')"
    r"|(?P<sym>[A-Za-z0-9_x-]+))"
)
_RELATIONS = ("=", "!=", "<", "<=", ">", ">=")


class ExprError(ValueError):
    """An expression the parser does not accept (a bug in the option table)."""


@dataclass(frozen=True)
class Sym:
    """A symbol reference, or a constant (a number, or a quoted string)."""

    name: str
    quoted: bool = False

    @property
    def constant(self) -> bool:
        return self.quoted or _number(self.name) is not None


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Rel:
    op: str
    left: Sym
    right: Sym


Expr = Sym | Not | And | Or | Rel

TRUE = Sym("y")
"""The expression that always holds (an empty ``depends on``)."""


def parse(text: str) -> Expr:
    """Parse ``text`` (``""`` is :data:`TRUE`); raises :class:`ExprError`."""
    tokens = _tokenize(text)
    if not tokens:
        return TRUE
    parser = _Parser(tokens, text)
    expr = parser.or_expr()
    if parser.pos != len(tokens):
        raise ExprError(f"unexpected {tokens[parser.pos][1]!r} in {text!r}")
    return expr


def symbols(expr: Expr) -> set[str]:
    """Names of the (non-constant) symbols ``expr`` reads."""
    if isinstance(expr, Sym):
        return set() if expr.constant or expr.name in ("y", "n") else {expr.name}
    if isinstance(expr, Not):
        return symbols(expr.operand)
    if isinstance(expr, Rel):
        return symbols(expr.left) | symbols(expr.right)
    return symbols(expr.left) | symbols(expr.right)


def truth(expr: Expr, lookup: Lookup) -> bool:
    """Evaluate ``expr`` as a condition."""
    if isinstance(expr, Sym):
        if expr.quoted:
            return False
        if expr.name == "y":
            return True
        value = None if expr.constant else lookup(expr.name)
        return value is True
    if isinstance(expr, Not):
        return not truth(expr.operand, lookup)
    if isinstance(expr, And):
        return truth(expr.left, lookup) and truth(expr.right, lookup)
    if isinstance(expr, Or):
        return truth(expr.left, lookup) or truth(expr.right, lookup)
    return _compare(expr.op, string(expr.left, lookup), string(expr.right, lookup))


def value(expr: Expr, lookup: Lookup) -> Value | None:
    """The value of a ``default`` expression: a constant, a symbol's value, or a truth."""
    if isinstance(expr, Sym):
        if expr.quoted:
            return _unquote(expr.name)
        if expr.name in ("y", "n"):
            return expr.name == "y"
        number = _number(expr.name)
        if number is not None:
            return number
        return lookup(expr.name)
    return truth(expr, lookup)


def string(sym: Sym, lookup: Lookup) -> str:
    """A symbol's string value, as kconfiglib compares it."""
    if sym.quoted:
        return _unquote(sym.name)
    if sym.constant or sym.name in ("y", "n"):
        return sym.name
    found = lookup(sym.name)
    if found is None:
        return sym.name
    if isinstance(found, bool):
        return "y" if found else "n"
    return str(found)


def _compare(op: str, left: str, right: str) -> bool:
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        order = (a > b) - (a < b)
    else:
        order = (left > right) - (left < right)
    return {
        "=": order == 0,
        "!=": order != 0,
        "<": order < 0,
        "<=": order <= 0,
        ">": order > 0,
        ">=": order >= 0,
    }[op]


def _number(text: str) -> int | None:
    try:
        return int(text, 16) if text.lower().startswith(("0x", "-0x")) else int(text, 10)
    except ValueError:
        return None


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ExprError(f"cannot read {text[pos:]!r} in {text!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str) -> None:
        self.tokens = tokens
        self.text = text
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ExprError(f"unexpected end of {self.text!r}")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def or_expr(self) -> Expr:
        expr = self.and_expr()
        while self.peek() == "||":
            self.take()
            expr = Or(expr, self.and_expr())
        return expr

    def and_expr(self) -> Expr:
        expr = self.unary()
        while self.peek() == "&&":
            self.take()
            expr = And(expr, self.unary())
        return expr

    def unary(self) -> Expr:
        if self.peek() == "!":
            self.take()
            return Not(self.unary())
        if self.peek() == "(":
            self.take()
            expr = self.or_expr()
            if self.take()[1] != ")":
                raise ExprError(f"missing ')' in {self.text!r}")
            return expr
        left = self.operand()
        if self.peek() in _RELATIONS:
            op = self.take()[1]
            return Rel(op, left, self.operand())
        return left

    def operand(self) -> Sym:
        kind, text = self.take()
        if kind == "op":
            raise ExprError(f"unexpected {text!r} in {self.text!r}")
        return Sym(text, quoted=kind == "str")
