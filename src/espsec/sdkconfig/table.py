"""The shape of the option table: one row per Kconfig ``config`` or ``choice``.

A row keeps Kconfig's own words, so it reads like the upstream file it comes from::

    Option("SECURE_BOOT_ALLOW_JTAG", BOOL,
           depends="SECURE_BOOT_INSECURE || SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT",
           default=("n",),
           select=("SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE"
                   " if SECURE_FLASH_HAS_WRITE_PROTECTION_CACHE",))

``default``, ``select`` and ``range`` entries are ``"WHAT [if CONDITION]"``; the first
``default`` whose condition holds wins. Conditions are :mod:`~espsec.sdkconfig.expr`
expressions. :class:`Table` parses every row once and checks it hangs together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from espsec.sdkconfig import expr
from espsec.sdkconfig.expr import Expr

OptionType = Literal["bool", "int", "hex", "string"]
BOOL: OptionType = "bool"
INT: OptionType = "int"
HEX: OptionType = "hex"
STRING: OptionType = "string"


@dataclass(frozen=True)
class Option:
    """One ``config`` entry."""

    name: str
    type: OptionType
    prompt: bool | str = True
    """``False``: no prompt, the value is always computed (a file's value is ignored, as
    Kconfig ignores it); an expression: the prompt shows only when it holds."""
    depends: str = ""
    default: tuple[str, ...] = ()
    select: tuple[str, ...] = ()
    range: tuple[str, ...] = ()
    choice: str | None = None
    """The ``choice`` group this bool is a member of."""
    chips: frozenset[str] | None = None
    """Targets whose Kconfig defines the option (``None``: every target)."""
    source: str = ""
    """The upstream Kconfig file, relative to the ESP-IDF tree."""


@dataclass(frozen=True)
class Choice:
    """One ``choice`` group; its members are the :class:`Option` rows naming it."""

    name: str
    depends: str = ""
    default: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class Rename:
    """One ``sdkconfig.rename`` line: ``OLD NEW`` or, for a bool whose sense flipped,
    ``OLD !NEW``."""

    old: str
    new: str
    inverted: bool = False
    source: str = ""


@dataclass(frozen=True)
class Conditional:
    """A parsed ``WHAT [if CONDITION]`` entry."""

    what: Expr
    condition: Expr
    text: str


@dataclass(frozen=True)
class Range:
    low: Expr
    high: Expr
    condition: Expr
    text: str


@dataclass(frozen=True)
class Row:
    """An :class:`Option` with its expressions parsed."""

    option: Option
    depends: Expr
    prompt: Expr | None
    defaults: tuple[Conditional, ...]
    selects: tuple[Conditional, ...]
    ranges: tuple[Range, ...]

    @property
    def name(self) -> str:
        return self.option.name

    @property
    def type(self) -> OptionType:
        return self.option.type


@dataclass(frozen=True)
class ChoiceRow:
    """A :class:`Choice` with its expressions parsed and its members in file order."""

    choice: Choice
    depends: Expr
    defaults: tuple[Conditional, ...]
    members: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.choice.name


class TableError(ValueError):
    """The option table contradicts itself (a bug in the table, not in user input)."""


_IF = re.compile(r"^(.*?)\s+if\s+(.*)$")


def _conditional(text: str) -> tuple[str, Expr]:
    m = _IF.match(text.strip())
    if m is None:
        return text.strip(), expr.TRUE
    return m.group(1).strip(), expr.parse(m.group(2))


@dataclass(frozen=True)
class Table:
    """Every option, choice and rename, indexed (build one with :meth:`of`)."""

    rows: Mapping[str, Row]
    choices: Mapping[str, ChoiceRow]
    renames: Mapping[str, Rename]
    selected_by: Mapping[str, tuple[tuple[str, Expr], ...]]
    """For each option, the options that ``select`` it and the condition of each."""
    namespaces: tuple[str, ...] = ()
    """Name prefixes the table covers completely: a name under one that the table does
    not know is a typo, not another component's option."""
    not_ours: tuple[str, ...] = ()
    """Prefixes inside :attr:`namespaces` that belong to other components."""
    external: frozenset[str] = field(default_factory=frozenset)
    """Symbols the rows read that other Kconfig files define (values taken from the
    input when it has them; otherwise undefined, as in kconfiglib)."""
    unread: frozenset[str] = field(default_factory=frozenset)
    """Names in :attr:`namespaces` that have no row (other targets' options, options of
    earlier releases): a file may hold them; nothing reads them."""

    @classmethod
    def of(
        cls,
        entries: Iterable[Option | Choice],
        renames: Iterable[Rename] = (),
        *,
        namespaces: tuple[str, ...] = (),
        not_ours: tuple[str, ...] = (),
        external: Iterable[str] = (),
        unread: Iterable[str] = (),
        derived: tuple[str, ...] = (),
    ) -> Table:
        """Parse and index ``entries``.

        Raises :class:`TableError` for a duplicate name, a member of an unknown choice,
        a ``select`` of a choice member, or an expression that reads a symbol that is
        neither a row, in ``external`` or ``unread``, nor under one of the ``derived``
        prefixes (the symbols the resolver derives from the chip record).
        """
        rows: dict[str, Row] = {}
        choices: dict[str, Choice] = {}
        members: dict[str, list[str]] = {}
        for entry in entries:
            if isinstance(entry, Choice):
                if entry.name in choices:
                    raise TableError(f"choice {entry.name} defined twice")
                choices[entry.name] = entry
                members[entry.name] = []
                continue
            if entry.name in rows:
                raise TableError(f"option {entry.name} defined twice")
            try:
                rows[entry.name] = _row(entry)
            except expr.ExprError as exc:
                raise TableError(f"{entry.name}: {exc}") from None
            if entry.choice is not None:
                if entry.choice not in members:
                    raise TableError(f"{entry.name}: unknown choice {entry.choice}")
                if entry.type != BOOL:
                    raise TableError(f"{entry.name}: a choice member must be a bool")
                members[entry.choice].append(entry.name)
        choice_rows = {}
        for name, choice in choices.items():
            defaults = tuple(
                Conditional(expr.parse(what), cond, text)
                for text in choice.default
                for what, cond in [_conditional(text)]
            )
            choice_rows[name] = ChoiceRow(
                choice, expr.parse(choice.depends), defaults, tuple(members[name])
            )
        selected: dict[str, list[tuple[str, Expr]]] = {}
        for row in rows.values():
            for sel in row.selects:
                assert isinstance(sel.what, expr.Sym)
                target = rows.get(sel.what.name)
                if target is not None and target.option.choice is not None:
                    raise TableError(f"{row.name} selects choice member {target.name}")
                selected.setdefault(sel.what.name, []).append((row.name, sel.condition))
        rename_map = {}
        for rename in renames:
            if rename.new not in rows:
                raise TableError(f"rename {rename.old} -> unknown option {rename.new}")
            if rename.inverted and rows[rename.new].type != BOOL:
                raise TableError(f"rename {rename.old} inverts non-bool {rename.new}")
            rename_map[rename.old] = rename
        table = cls(
            rows,
            choice_rows,
            rename_map,
            {name: tuple(by) for name, by in selected.items()},
            namespaces,
            not_ours,
            frozenset(external),
            frozenset(unread),
        )
        unknown = sorted(
            name
            for name in table.referenced()
            if name not in rows
            and name not in table.external
            and name not in table.unread
            and name not in choice_rows
            and not name.startswith(derived)
        )
        if unknown:
            raise TableError(f"rows read undeclared symbols: {', '.join(unknown)}")
        return table

    def referenced(self) -> set[str]:
        """Every symbol a row's expressions read (``select`` targets excluded)."""
        found: set[str] = set()
        for row in self.rows.values():
            found |= expr.symbols(row.depends)
            if row.prompt is not None:
                found |= expr.symbols(row.prompt)
            for d in row.defaults:
                found |= expr.symbols(d.what) | expr.symbols(d.condition)
            for s in row.selects:
                found |= expr.symbols(s.condition)
            for r in row.ranges:
                found |= expr.symbols(r.low) | expr.symbols(r.high) | expr.symbols(r.condition)
        for choice in self.choices.values():
            found |= expr.symbols(choice.depends)
            for d in choice.defaults:
                found |= expr.symbols(d.what) | expr.symbols(d.condition)
        return found

    def owns(self, name: str) -> bool:
        """``name`` lies in a namespace this table covers completely."""
        return name.startswith(self.namespaces) and not name.startswith(self.not_ours)

    def knows(self, name: str) -> bool:
        """``name`` is an option of this table or a deprecated name of one."""
        return name in self.rows or name in self.renames


def _row(option: Option) -> Row:
    defaults = []
    for text in option.default:
        what, cond = _conditional(text)
        defaults.append(Conditional(expr.parse(what), cond, text))
    selects = []
    for text in option.select:
        what, cond = _conditional(text)
        target = expr.parse(what)
        if not isinstance(target, expr.Sym) or target.constant:
            raise expr.ExprError(f"select of {what!r}")
        selects.append(Conditional(target, cond, text))
    ranges = []
    for text in option.range:
        what, cond = _conditional(text)
        low, high = what.split()
        ranges.append(Range(expr.parse(low), expr.parse(high), cond, text))
    if option.prompt is True:
        prompt: Expr | None = expr.TRUE
    elif option.prompt is False:
        prompt = None
    else:
        prompt = expr.parse(option.prompt)
    return Row(
        option,
        expr.parse(option.depends),
        prompt,
        tuple(defaults),
        tuple(selects),
        tuple(ranges),
    )
