"""The resolver: raw assignments in, every option's value out, as Kconfig computes it.

One function, :func:`resolve`, reads the :class:`~espsec.sdkconfig.table.Table`; it has
no knowledge of particular options. Kconfig's rules, as kconfiglib implements them:

* an option whose ``depends on`` is false has no value (a bool is ``n``);
* an option with a visible prompt takes the value assigned to it, else its first
  ``default`` whose condition holds;
* an option without a prompt always takes its default (an assigned value is ignored);
* ``select`` forces a bool on, whatever its own dependencies say;
* a ``choice`` takes its assigned member if that member is visible, else its first
  applicable default, else its first visible member.

Where Kconfig would silently drop an assignment, espsec refuses it, naming the input and
line: an option its dependencies forbid, a bool switched off that another option selects,
two members of one choice, a value out of ``range``, a value of the wrong type.

Symbols the chip record supplies: ``IDF_TARGET``, ``IDF_TARGET_<CHIP>``, every ``SOC_*``
capability (:attr:`Chip.soc_caps <espsec.chips.Chip.soc_caps>`),
``ESP_ROM_BOOTLOADER_OFFSET_FLASH`` and ``CHIP_SECURE_VERSION_BITS``. Other components'
symbols take the input's value when it has one and are otherwise undefined.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from espsec.chips import DEFAULT_CHIP, Chip, get_chip
from espsec.errors import FormatError, UsageError
from espsec.sdkconfig import expr
from espsec.sdkconfig.expr import Value
from espsec.sdkconfig.options import TABLE
from espsec.sdkconfig.table import BOOL, Row, Table, TableError

TARGET = "IDF_TARGET"
"""The option naming the chip: not a table row, it selects the chip record."""


class SdkconfigError(FormatError):
    """A malformed or inconsistent configuration; ``line`` is 1-based (0: no line)."""

    def __init__(
        self,
        what: str,
        *,
        line: int = 0,
        option: str | None = None,
        expected: object = None,
        found: object = None,
        source: str | None = None,
    ) -> None:
        where = f"line {line}: " if line else ""
        prefix = f"{option}: " if option else ""
        super().__init__(where + prefix + what, expected=expected, found=found, source=source)
        self.field = option
        self.line = line


@dataclass(frozen=True)
class Assignment:
    """One ``NAME=VALUE`` as an input gave it."""

    value: Value
    source: str | None = None
    line: int = 0
    written: str = ""
    """The name as written, when a rename or a prefix changed it."""

    def error(self, name: str, what: str, **details: object) -> SdkconfigError:
        """An error about this assignment, naming its input and line."""
        return SdkconfigError(
            what,
            line=self.line,
            option=f"CONFIG_{self.written or name}",
            source=self.source,
            expected=details.get("expected"),
            found=details.get("found"),
        )


Assignments = Mapping[str, Assignment]
"""What every input reader returns: assignments by option name (without ``CONFIG_``)."""


@dataclass(frozen=True)
class Resolved:
    """The outcome of :func:`resolve`."""

    chip: Chip
    values: Mapping[str, Value]
    """Every table option that has a value (bools whose dependencies hold or that are
    selected, choice members of a visible choice, other options with a value)."""
    raw: Mapping[str, Value]
    """Assignments to other components' options, as read, and the ones the table's
    options ``select`` (``SPI_FLASH_ENABLE_ENCRYPTED_READ_WRITE`` with flash encryption)."""


def check_name(name: str, assignment: Assignment, *, foreign_ok: bool, table: Table) -> None:
    """Refuse a name the table does not know: any such name when ``foreign_ok`` is false
    (``--config``, :meth:`BootloaderConfig.from_options`), one in the table's namespaces
    otherwise (a file also holds other components' options)."""
    if name == TARGET or table.knows(name) or (foreign_ok and name in table.unread):
        return
    if not foreign_ok or table.owns(name):
        raise assignment.error(name, "unknown option")


def resolve(assignments: Assignments, *, table: Table = TABLE) -> Resolved:
    """Resolve ``assignments`` against ``table``; raises :class:`SdkconfigError`."""
    given: dict[str, Assignment] = {}
    raw: dict[str, Value] = {}
    for name, assignment in canonical(assignments, table=table).items():
        if name == TARGET or name in table.rows:
            given[name] = assignment
        else:
            raw[name] = assignment.value
    chip = _chip(given.pop(TARGET, None))
    for name, assignment in given.items():
        _check_type(table.rows[name], assignment)
    ctx = _Context(table, chip, given, raw)
    values: dict[str, Value] = {}
    for name, row in table.rows.items():
        found = ctx.value(name)
        if found is not None and (row.type != BOOL or ctx.has_value(name)):
            values[name] = found
    for name, assignment in given.items():
        ctx.check(name, assignment)
    raw.update({name: True for name in sorted(table.external) if ctx.selected(name)})
    for name, check, what in ESPSEC_RULES:
        found = values.get(name)
        if isinstance(found, int) and not check(found) and name in given:
            raise given[name].error(name, what, found=found)
    return Resolved(chip, values, raw)


ESPSEC_RULES: tuple[tuple[str, Callable[[int], bool], str], ...] = (
    ("PARTITION_TABLE_OFFSET", lambda v: v >= 0 and v % 0x1000 == 0, "must be 4 KiB aligned"),
    ("BOOTLOADER_APP_SECURE_VERSION", lambda v: v >= 0, "must not be negative"),
)
"""Values Kconfig accepts but no bootloader can use (Kconfig has no ``range`` for them)."""


def chip_symbol(chip: Chip, name: str) -> Value | None:
    """The value of a symbol the chip record supplies (``None``: undefined)."""
    if name == TARGET:
        return chip.name
    if name == "IDF_TARGET_ARCH":
        return chip.arch
    if name.startswith("IDF_TARGET_ARCH_"):
        return name == f"IDF_TARGET_ARCH_{chip.arch.upper()}"
    if name.startswith("IDF_TARGET_"):
        return name == f"IDF_TARGET_{chip.name.upper()}"
    if name.startswith("SOC_"):
        return True if name in chip.soc_caps else None
    if name == "ESP_ROM_BOOTLOADER_OFFSET_FLASH":
        return chip.bootloader_offset
    if name == "CHIP_SECURE_VERSION_BITS":
        return chip.secure_version_bits
    return None


def default_of(
    name: str, chip: Chip, values: Mapping[str, Value], *, table: Table = TABLE
) -> Value | None:
    """The value option ``name`` would take from its defaults, its dependencies aside
    (what a hidden ``int`` option stands for: ``BOOTLOADER_APP_SECURE_VERSION`` is 0)."""

    def lookup(symbol: str) -> Value | None:
        if symbol in table.rows:
            return values.get(symbol, False if table.rows[symbol].type == BOOL else None)
        return chip_symbol(chip, symbol)

    return _default(table.rows[name], lookup)


def _default(row: Row, lookup: expr.Lookup) -> Value | None:
    for default in row.defaults:
        if expr.truth(default.condition, lookup):
            return _typed(row, expr.value(default.what, lookup))
    return None


def _typed(row: Row, found: Value | None) -> Value | None:
    if row.type == BOOL:
        return found is True
    if row.type in ("int", "hex"):
        return found if isinstance(found, int) and not isinstance(found, bool) else None
    return found if isinstance(found, str) else None


def canonical(assignments: Assignments, *, table: Table = TABLE) -> dict[str, Assignment]:
    """``assignments`` by current names: a deprecated name (``sdkconfig.rename``) becomes
    its new name, negated when the rename inverts it. An old and a new name that disagree
    are refused (ESP-IDF writes both, with one value, in a generated ``sdkconfig``)."""
    given: dict[str, Assignment] = {}
    for name, assignment in assignments.items():
        rename = table.renames.get(name)
        if rename is not None:
            value = assignment.value
            if rename.inverted:
                if not isinstance(value, bool):
                    raise assignment.error(name, "wrong type", expected="y or n", found=value)
                value = not value
            name, assignment = (
                rename.new,
                Assignment(value, assignment.source, assignment.line, assignment.written or name),
            )
        earlier = given.get(name)
        if earlier is not None and earlier.value != assignment.value:
            first, second = sorted((earlier, assignment), key=lambda a: a.line)
            where = f"line {first.line}" if first.line else f"CONFIG_{first.written or name}"
            raise second.error(
                name, f"conflicts with {where}", expected=first.value, found=second.value
            )
        given[name] = assignment
    return given


def _chip(assignment: Assignment | None) -> Chip:
    if assignment is None:
        return get_chip(DEFAULT_CHIP)
    if not isinstance(assignment.value, str) or not assignment.value:
        raise assignment.error(TARGET, "wrong type", expected="a chip name", found=assignment.value)
    try:
        return get_chip(assignment.value)
    except UsageError as exc:
        raise assignment.error(TARGET, exc.message) from None


_EXPECTED = {"bool": "y or n", "int": "a number", "hex": "a number", "string": "a string"}


def _check_type(row: Row, assignment: Assignment) -> None:
    value = assignment.value
    if row.type == BOOL:
        ok = isinstance(value, bool)
    elif row.type == "string":
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok:
        raise assignment.error(row.name, "wrong type", expected=_EXPECTED[row.type], found=value)


class _Context:
    """One resolution: memoised values over a table, a chip and the assignments."""

    def __init__(
        self,
        table: Table,
        chip: Chip,
        given: Mapping[str, Assignment],
        raw: Mapping[str, Value],
    ) -> None:
        self.table = table
        self.chip = chip
        self.given = given
        self.raw = raw
        self.memo: dict[str, Value | None] = {}
        self.choice_memo: dict[str, str | None] = {}
        self.busy: set[str] = set()
        self.picks: dict[str, tuple[str, Assignment]] = {}
        for name, assignment in given.items():
            choice = table.rows[name].option.choice
            if choice is None or assignment.value is not True:
                continue
            if choice in self.picks:
                (first_name, first), (second_name, second) = sorted(
                    (self.picks[choice], (name, assignment)), key=lambda pick: pick[1].line
                )
                where = f"line {first.line}" if first.line else f"CONFIG_{first_name}"
                raise second.error(
                    second_name, f"conflicts with {where}: {choice} is a choice of one"
                )
            self.picks[choice] = (name, assignment)

    # -- lookups -----------------------------------------------------------------------

    def lookup(self, name: str) -> Value | None:
        if name in self.table.rows:
            return self.value(name)
        derived = chip_symbol(self.chip, name)
        if derived is not None or name.startswith(("IDF_TARGET", "SOC_")):
            return derived
        if self.selected(name):
            return True
        return self.raw.get(name)

    def truth(self, condition: expr.Expr) -> bool:
        return expr.truth(condition, self.lookup)

    def selected(self, name: str) -> list[str]:
        """The options that select ``name`` in this configuration."""
        return [
            by
            for by, condition in self.table.selected_by.get(name, ())
            if self.value(by) is True and self.truth(condition)
        ]

    def depends(self, name: str) -> bool:
        row = self.table.rows[name]
        chips = row.option.chips
        if chips is not None and self.chip.name not in chips:
            return False
        if row.option.choice is not None and not self.truth(
            self.table.choices[row.option.choice].depends
        ):
            return False
        return self.truth(row.depends)

    def visible(self, name: str) -> bool:
        row = self.table.rows[name]
        return row.prompt is not None and self.depends(name) and self.truth(row.prompt)

    def has_value(self, name: str) -> bool:
        return self.depends(name) or bool(self.selected(name))

    # -- values ------------------------------------------------------------------------

    def value(self, name: str) -> Value | None:
        if name in self.memo:
            return self.memo[name]
        if name in self.busy:
            raise TableError(f"dependency loop through {name}")
        self.busy.add(name)
        try:
            found = self._value(self.table.rows[name])
        finally:
            self.busy.discard(name)
        self.memo[name] = found
        return found

    def _value(self, row: Row) -> Value | None:
        name = row.name
        if row.option.choice is not None:
            return self.choice(row.option.choice) == name
        assigned = self.given.get(name)
        if row.type == BOOL:
            if self.visible(name) and assigned is not None:
                on = assigned.value is True
            else:
                on = self.depends(name) and _default(row, self.lookup) is True
            return on or bool(self.selected(name))
        if not self.depends(name):
            return None
        if self.visible(name) and assigned is not None:
            self.check_range(row, assigned)
            return assigned.value
        return _default(row, self.lookup)

    def choice(self, name: str) -> str | None:
        if name in self.choice_memo:
            return self.choice_memo[name]
        choice = self.table.choices[name]
        picked: str | None = None
        if self.truth(choice.depends):
            visible = [m for m in choice.members if self.visible(m)]
            pick = self.picks.get(name)
            if pick is not None and pick[0] in visible:
                picked = pick[0]
            else:
                for default in choice.defaults:
                    target = default.what
                    if (
                        isinstance(target, expr.Sym)
                        and target.name in visible
                        and self.truth(default.condition)
                    ):
                        picked = target.name
                        break
                else:
                    picked = visible[0] if visible else None
        self.choice_memo[name] = picked
        return picked

    # -- refusals ----------------------------------------------------------------------

    def check_range(self, row: Row, assigned: Assignment) -> None:
        value = assigned.value
        for bounds in row.ranges:
            if not self.truth(bounds.condition):
                continue
            low = expr.value(bounds.low, self.lookup)
            high = expr.value(bounds.high, self.lookup)
            if not (isinstance(low, int) and isinstance(high, int) and isinstance(value, int)):
                return
            if not low <= value <= high:
                fmt = (lambda v: f"0x{v:x}") if row.type == "hex" else str
                raise assigned.error(
                    row.name,
                    f"must be {fmt(low)}..{fmt(high)} on {self.chip.display_name}, "
                    f"got {fmt(value)}",
                )
            return

    def check(self, name: str, assigned: Assignment) -> None:
        """Refuse an assignment the resolved configuration contradicts."""
        row = self.table.rows[name]
        choice = row.option.choice
        if choice is not None:
            if assigned.value is True and self.choice(choice) != name:
                raise assigned.error(name, f"cannot be set: it depends on {self.why(name)}")
            return
        if row.prompt is None:
            return  # computed, as Kconfig computes it whatever the input says
        resolved = self.value(name)
        if row.type == BOOL:
            if assigned.value is False and resolved is True:
                by = self.selected(name)
                if by:
                    raise assigned.error(name, f"is selected by {', '.join(by)} and cannot be off")
            elif assigned.value is True and resolved is False and not self.depends(name):
                raise assigned.error(name, f"cannot be set: it depends on {self.why(name)}")
            return
        if not self.depends(name) and assigned.value != _default(row, self.lookup):
            raise assigned.error(name, f"cannot be set: it depends on {self.why(name)}")

    def why(self, name: str) -> str:
        """The condition that keeps ``name`` hidden, in the table's words."""
        row = self.table.rows[name]
        chips = row.option.chips
        if chips is not None and self.chip.name not in chips:
            return f"a target other than {self.chip.display_name}"
        choice = row.option.choice
        if choice is not None and not self.truth(self.table.choices[choice].depends):
            return self.table.choices[choice].choice.depends
        return row.option.depends or "a prompt that is hidden"
