"""Reading TOML tables: typed getters that collect every problem instead of stopping.

A getter that finds a bad value records an error naming the key and returns its
default, so one run reports everything. At the end the reader orders the report:
unknown keys first (each with the known key it most resembles), then the other errors,
minus the ones an earlier error explains (a check that relied on a key that is itself
wrong, or that is absent while an unknown key looks like it: ``usernme`` for ``username``).
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.errors import ConfigError

_E = TypeVar("_E", bound=enum.Enum)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class KeyKind(enum.Enum):
    """What a key holds: how a suggestion of it is written."""

    VALUE = "value"
    TABLE = "table"
    TABLES = "tables"


@dataclass(frozen=True, slots=True)
class _Error:
    """One error as recorded, before the report is ordered."""

    #: The dotted key it names (``cameras[1].fps``; empty: the whole file).
    key: str
    message: str
    #: Keys (dotted) the check relied on: if one is itself wrong, or absent while an
    #: unknown key looks like it, this error is a consequence and is left out.
    causes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Unknown:
    """A key no getter asked for, with the table it was found in."""

    table: Table
    key: str


class Reader:
    """Collects what the tables of one document report, and orders it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        #: Where ``${NAME}`` references are looked up.
        self.env = env
        self._errors: list[_Error] = []
        self._unknown: list[_Unknown] = []
        #: TOML header (``cameras.h264``; ``""`` for the top level) -> a finished table.
        self._finished: dict[str, Table] = {}
        self._tables = 0

    def made(self) -> int:
        """Count a new table; return its position in reading order."""
        self._tables += 1
        return self._tables

    def root(self, data: Mapping[str, Any]) -> Table:
        """Return the top-level table of ``data``."""
        return Table(data, "", self, header="", kind=KeyKind.TABLE)

    def add(self, key: str, message: str, causes: Iterable[str] = ()) -> ConfigError:
        """Record an error at dotted ``key``; return it as an exception."""
        self._errors.append(_Error(key, message, tuple(causes)))
        return ConfigError(_line(key, message))

    def add_raised(self, exc: ConfigError) -> None:
        """Record the messages of an error a check raised instead of recording."""
        known = {_line(e.key, e.message) for e in self._errors}
        self._errors += [_Error("", m) for m in exc.messages if m not in known]

    def finished(self, table: Table, unknown: Iterable[str]) -> None:
        """Note that ``table`` was read; ``unknown`` are the keys nobody asked for."""
        if table.header is not None:
            self._finished.setdefault(table.header, table)
        self._unknown += [_Unknown(table, key) for key in unknown]

    def errors(self) -> tuple[str, ...]:
        """Return every error, one line each: unknown keys first, consequences left out."""
        # Tables are made in reading order, which is close to the file's.
        unknown = sorted(self._unknown, key=lambda u: u.table.order)
        lines: list[str] = []
        typos: set[str] = set()
        for entry in unknown:
            line, meant = self._describe(entry)
            lines.append(line)
            if meant is not None:
                typos.add(meant)
        wrong = {e.key for e in self._errors}
        shown: set[str] = set()
        for error in self._errors:
            if error.key in shown and error.key:
                continue  # the first problem of a key is the one to fix
            if any(c in typos or (c in wrong and c != error.key) for c in error.causes):
                continue
            shown.add(error.key)
            lines.append(_line(error.key, error.message))
        return tuple(lines)

    def _describe(self, entry: _Unknown) -> tuple[str, str | None]:
        """Return the line for an unknown key, and the absent key it probably meant."""
        table, key = entry.table, entry.key
        value = table.data[key]
        is_table = isinstance(value, dict) or (
            isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
        )
        message = "unknown table" if is_table else "unknown key"
        homes = [
            other
            for header, other in self._finished.items()
            if header != table.header
            and key in other.known
            and (other.known[key] is not KeyKind.VALUE) == is_table
        ]
        if homes:
            where = " or ".join(h.where() for h in homes)
            if len(homes) == 1 and (table.header or "").startswith(f"{homes[0].header}."):
                # TOML: every key after a [table] header belongs to that table.
                where += f", above {table.where()}"
            return _line(table.path_of(key), f"{message}; {key} belongs in {where}"), None
        close = difflib.get_close_matches(key, list(table.known), n=1, cutoff=0.6)
        if not close:  # a shortened name (``idle`` for ``idle_seconds``) is too far for difflib
            close = [k for k in table.known if k.startswith(key) or key.startswith(k)]
            close = close if len(close) == 1 else []
        if not close:
            return _line(table.path_of(key), message), None
        meant = close[0]
        hint = f"{message}; did you mean {table.spelled(meant)}?"
        return _line(table.path_of(key), hint), (
            table.path_of(meant) if meant not in table.data else None
        )


def _line(key: str, message: str) -> str:
    return f"{key}: {message}" if key else message


class Table:
    """A TOML table being read: typed getters that name the key in every error.

    A getter records a bad value as an error and returns the default, so reading goes
    on; call ``finish()`` last to report the keys nobody asked for.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        path: str,
        reader: Reader,
        *,
        header: str | None,
        kind: KeyKind = KeyKind.VALUE,
    ) -> None:
        #: The table's contents, as parsed.
        self.data = data
        #: Its dotted name in messages (``cameras[1].h264``; ``""`` for the top level).
        self.path = path
        #: Its TOML header without indices (``cameras.h264``); None for inline entries.
        self.header = header
        #: How the table itself is written (``[x]`` or ``[[x]]``).
        self.kind = kind
        self.reader = reader
        #: Position in reading order (the top level first).
        self.order = reader.made()
        #: Every key asked for so far, and what it holds.
        self.known: dict[str, KeyKind] = {}

    def path_of(self, key: str) -> str:
        """Return the dotted name of ``key`` in this table."""
        return f"{self.path}.{key}" if self.path else key

    def header_of(self, key: str) -> str:
        """Return the TOML header of a sub-table at ``key``."""
        return f"{self.header}.{key}" if self.header else key

    def where(self) -> str:
        """Return how this table is written in a file: ``[server]``, ``[[cameras]]``."""
        if not self.header:
            return "the top level (above every [table])"
        return f"[[{self.header}]]" if self.kind is KeyKind.TABLES else f"[{self.header}]"

    def spelled(self, key: str) -> str:
        """Return ``key`` as it is written: ``username``, ``[server]``, ``[[cameras]]``."""
        kind = self.known.get(key, KeyKind.VALUE)
        if kind is KeyKind.TABLE:
            return f"[{self.header_of(key)}]"
        if kind is KeyKind.TABLES:
            return f"[[{self.header_of(key)}]]"
        return key

    def error(self, key: str, message: str, *, causes: Iterable[str] = ()) -> ConfigError:
        """Record an error naming ``key``; return it, for a check that cannot go on.

        ``causes`` are keys of this table the check relied on: when one of them is
        itself in error, or absent while an unknown key looks like it, the error is
        a consequence and is left out of the report.
        """
        return self.reader.add(self.path_of(key), message, (self.path_of(c) for c in causes))

    def raw(self, key: str, kind: KeyKind = KeyKind.VALUE) -> Any:
        """Return the value at ``key`` (None if absent), marking the key as known."""
        self.known.setdefault(key, kind)
        return self.data.get(key)

    def str_(self, key: str, default: str | None = None) -> str | None:
        """Return a string, with ``${ENV}`` references expanded."""
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str):
            self.error(key, "must be a string")
            return default
        return self._expand(key, value)

    def int_(
        self,
        key: str,
        default: int | None = None,
        *,
        minimum: int = 1,
        maximum: int | None = None,
    ) -> int | None:
        """Return an integer >= ``minimum`` (and <= ``maximum``)."""
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            self.error(key, f"must be {kind}")
            return default
        if maximum is not None and value > maximum:
            self.error(key, f"must be at most {maximum}")
            return default
        return value

    def float_(
        self,
        key: str,
        default: float,
        *,
        minimum: float = 0.0,
        strict: bool = True,
        maximum: float | None = None,
    ) -> float:
        """Return a number above (or, if not ``strict``, at least) ``minimum``."""
        value = self.raw(key)
        if value is None:
            return default
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or (value <= minimum if strict else value < minimum):
            bound = "greater than" if strict else "at least"
            self.error(key, f"must be a number {bound} {minimum:g}")
            return default
        if maximum is not None and value > maximum:
            self.error(key, f"must be at most {maximum:g}")
            return default
        return float(value)

    def bool_(self, key: str, default: bool) -> bool:
        """Return a boolean."""
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(key, "must be true or false")
            return default
        return value

    def enum_(self, key: str, kind: type[_E], default: _E) -> _E:
        """Return the member of ``kind`` whose value is the string at ``key``."""
        value = self.str_(key)
        if value is None:
            return default
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in kind)
            self.error(key, f"must be one of {allowed}")
            return default

    def table(self, key: str) -> Table:
        """Return the sub-table at ``key`` (empty if absent or not a table)."""
        value = self.raw(key, KeyKind.TABLE)
        if value is None:
            value = {}
        elif not isinstance(value, dict):
            self.error(key, "must be a table")
            value = {}
        header = self.header_of(key)
        return Table(value, self.path_of(key), self.reader, header=header, kind=KeyKind.TABLE)

    def tables(self, key: str) -> list[Table]:
        """Return the array of tables at ``key`` (empty if absent or not one)."""
        value = self.raw(key, KeyKind.TABLES)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(key, f"must be an array of tables ([[{key}]])")
            return []
        header = self.header_of(key)
        return [
            Table(
                v, f"{self.path_of(key)}[{i + 1}]", self.reader, header=header, kind=KeyKind.TABLES
            )
            for i, v in enumerate(value)
        ]

    def entry(self, key: str, value: Mapping[str, Any]) -> Table:
        """Return an inline table found in a list at ``key`` (``ice_servers[1]``)."""
        return Table(value, self.path_of(key), self.reader, header=None)

    def finish(self) -> None:
        """Report the keys nobody asked for (call it after every getter)."""
        self.reader.finished(self, [key for key in self.data if key not in self.known])

    def _expand(self, key: str, value: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in self.reader.env:
                return self.reader.env[name]
            self.error(key, f"environment variable {name} is not set")
            return match.group(0)

        return _ENV_REF.sub(substitute, value)
