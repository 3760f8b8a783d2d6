"""A small, safe query language over the metadata table: parsed, never ``eval``-ed.

    material == "PZT" and date >= 2014-01-01 and scan_size_um between 1 and 5
    and grower in ["A", "B"] and not (outcome == "failed" or sample is null)

Grammar (keywords are case-insensitive)::

    query      := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" query ")" | test
    test       := column OP value                    OP: == != < <= > >=
                | column ["not"] "in" "[" value ("," value)* "]"
                | column ["not"] "between" value "and" value
                | column "is" ["not"] "null"
                | column "contains" string           (case-insensitive substring)
                | column "matches" string            (regular expression, searched)
    value      := string | number | date | "true" | "false"
    string     := "..." | '...'                      (backslash escapes \\" \\' \\\\)
    date       := YYYY-MM-DD ["T" hh:mm[:ss]]

Types follow the value: a number compares the column as numbers, a date as dates, a string
as text. Missing values (null) match no comparison, as in SQL; test them with ``is null``.
Besides the table's columns, :data:`DERIVED` columns are computed on demand
(``scan_size_um``, ``pixel_size_nm``, ``year``). Every error is a :class:`QueryError` that
names the position in the query.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

import numpy as np
import pandas as pd

from sarise.errors import SariseError

__all__ = ["DERIVED", "QueryError", "filter_table", "parse"]


class QueryError(SariseError):
    """A query that cannot be parsed or applied; ``pos`` is the 0-based character offset."""

    def __init__(self, message: str, text: str, pos: int):
        self.message, self.text, self.pos = message, text, pos
        super().__init__(f"{message} at position {pos}\n  {text}\n  {' ' * pos}^")


#: Columns computed from others when a query names them.
DERIVED: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "scan_size_um": lambda t: pd.to_numeric(t["scan_size_x_m"], errors="coerce") * 1e6,
    "pixel_size_nm": lambda t: pd.to_numeric(t["pixel_size_x_m"], errors="coerce") * 1e9,
    "year": lambda t: pd.to_datetime(t["date"], errors="coerce", format="ISO8601").dt.year,
}

_KEYWORDS = {"and", "or", "not", "in", "between", "is", "null", "true", "false", "contains",
             "matches"}  # fmt: skip
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<date>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?)?)(?![\w.])
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|<|>)
      | (?P<punct>[()\[\],])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # date number string op punct word kw end
    text: str
    pos: int
    value: Any = None


def _tokens(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] in "\"'":
                raise QueryError("unterminated string", text, pos)
            raise QueryError(f"unexpected character {text[pos]!r}", text, pos)
        kind = m.lastgroup
        s = m.group()
        if kind == "word" and s.lower() in _KEYWORDS:
            out.append(_Tok("kw", s.lower(), pos))
        elif kind == "string":
            out.append(_Tok("string", s, pos, re.sub(r"\\(.)", r"\1", s[1:-1])))
        elif kind == "number":
            # integers exactly (an int64 image id has more digits than a float holds)
            v = int(s) if re.fullmatch(r"[-+]?\d+", s) else float(s)
            if isinstance(v, int) and not -(2**63) <= v < 2**63:
                raise QueryError(f"integer {s} is outside the 64-bit range", text, pos)
            out.append(_Tok("number", s, pos, v))
        elif kind == "date":
            try:
                out.append(_Tok("date", s, pos, datetime.fromisoformat(s)))
            except ValueError:
                raise QueryError(f"invalid date {s}", text, pos) from None
        elif kind != "ws":
            out.append(_Tok(kind, s, pos))
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


# -- the syntax tree (each node prints back as canonical query text) ----------------------
def _lit(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return v.isoformat() if (v.hour, v.minute, v.second) != (0, 0, 0) else v.date().isoformat()
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


@dataclass(frozen=True)
class Compare:
    column: str
    op: str
    value: Any
    pos: int = 0

    def __str__(self):
        return f"{self.column} {self.op} {_lit(self.value)}"


@dataclass(frozen=True)
class In:
    column: str
    values: tuple
    negate: bool = False
    pos: int = 0

    def __str__(self):
        return f"{self.column} {'not in' if self.negate else 'in'} [{', '.join(map(_lit, self.values))}]"  # fmt: skip


@dataclass(frozen=True)
class Between:
    column: str
    low: Any
    high: Any
    negate: bool = False
    pos: int = 0

    def __str__(self):
        kw = "not between" if self.negate else "between"
        return f"{self.column} {kw} {_lit(self.low)} and {_lit(self.high)}"


@dataclass(frozen=True)
class IsNull:
    column: str
    negate: bool = False
    pos: int = 0

    def __str__(self):
        return f"{self.column} is {'not null' if self.negate else 'null'}"


@dataclass(frozen=True)
class Text:
    column: str
    op: str  # contains | matches
    pattern: str
    pos: int = 0

    def __str__(self):
        return f"{self.column} {self.op} {_lit(self.pattern)}"


@dataclass(frozen=True)
class Not:
    item: Node

    def __str__(self):
        return f"not ({self.item})"


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    items: tuple

    def __str__(self):
        return f" {self.op} ".join(
            f"({i})" if isinstance(i, BoolOp) else str(i) for i in self.items
        )


Node = Union[Compare, In, Between, IsNull, Text, Not, BoolOp]  # noqa: UP007


#: Deepest nesting of parentheses and 'not' a query may use.
MAX_DEPTH = 100


class _Parser:
    def __init__(self, text: str):
        self.text, self.toks, self.i = text, _tokens(text), 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.tok
        self.i += 1
        return t

    def error(self, what: str, tok: _Tok | None = None):
        tok = tok or self.tok
        found = "the end of the query" if tok.kind == "end" else repr(tok.text)
        raise QueryError(f"expected {what}, found {found}", self.text, tok.pos)

    def accept(self, kind: str, text: str | None = None) -> _Tok | None:
        if self.tok.kind == kind and (text is None or self.tok.text == text):
            return self.take()
        return None

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise QueryError("empty query", self.text, 0)
        node = self.or_()
        if self.tok.kind != "end":
            self.error("'and', 'or' or the end of the query")
        return node

    def or_(self) -> Node:
        items = [self.and_()]
        while self.accept("kw", "or"):
            items.append(self.and_())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_(self) -> Node:
        items = [self.not_()]
        while self.accept("kw", "and"):
            items.append(self.not_())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def not_(self) -> Node:
        start = self.tok
        if self.tok.kind in ("kw", "punct") and self.tok.text in ("not", "("):
            self.depth += 1  # parentheses and 'not's nest by recursion: bounded
            if self.depth > MAX_DEPTH:
                raise QueryError(f"nested more than {MAX_DEPTH} deep", self.text, start.pos)
        try:
            if self.accept("kw", "not"):
                return Not(self.not_())
            if self.accept("punct", "("):
                node = self.or_()
                if not self.accept("punct", ")"):
                    self.error("')'")
                return node
            return self.test()
        finally:
            if start.kind in ("kw", "punct") and start.text in ("not", "("):
                self.depth -= 1

    def value(self) -> Any:
        t = self.tok
        if t.kind in ("string", "number", "date"):
            return self.take().value
        if t.kind == "kw" and t.text in ("true", "false"):
            self.take()
            return t.text == "true"
        self.error('a value (a "string", a number, a date YYYY-MM-DD, true or false)')

    def test(self) -> Node:
        col = self.tok
        if col.kind != "word":
            self.error("a column name")
        self.take()
        name, pos = col.text, col.pos
        if op := self.accept("op"):
            return Compare(name, op.text, self.value(), pos)
        negate = bool(self.accept("kw", "not"))
        if self.accept("kw", "in"):
            if not self.accept("punct", "["):
                self.error("'[' to open the list")
            values = [self.value()]
            while self.accept("punct", ","):
                values.append(self.value())
            if not self.accept("punct", "]"):
                self.error("',' or ']'")
            return In(name, tuple(values), negate, pos)
        if self.accept("kw", "between"):
            low = self.value()
            if not self.accept("kw", "and"):
                self.error("'and' between the two bounds")
            return Between(name, low, self.value(), negate, pos)
        if negate:
            self.error("'in' or 'between' after 'not'")
        if self.accept("kw", "is"):
            neg = bool(self.accept("kw", "not"))
            if not self.accept("kw", "null"):
                self.error("'null'")
            return IsNull(name, neg, pos)
        if self.tok.kind == "kw" and self.tok.text in ("contains", "matches"):
            op = self.take().text
            t = self.tok
            if t.kind != "string":
                self.error(f"a quoted string after '{op}'")
            self.take()
            if op == "matches":
                try:
                    _regex(t.value)
                except ValueError as exc:
                    raise QueryError(
                        f"invalid regular expression ({exc})", self.text, t.pos
                    ) from None
            return Text(name, op, t.value, pos)
        self.error("a comparison (== != < <= > >=), 'in', 'between', 'is', 'contains' or 'matches'")


def parse(text: str) -> Node:
    """The syntax tree of a query (``str(tree)`` prints it back in canonical form).

    Raises
    ------
    QueryError
        With the position of the first problem.

    >>> str(parse("grower in ['A', 'B'] and not year<2015"))
    'grower in ["A", "B"] and not (year < 2015)'
    """
    return _Parser(text).parse()


# -- evaluation --------------------------------------------------------------------------
class _Evaluator:
    def __init__(self, table: pd.DataFrame, text: str):
        self.table, self.text, self._cache = table, text, {}

    def column(self, name: str, pos: int) -> pd.Series:
        if name in self.table.columns:
            return self.table[name]
        if name in DERIVED:
            if name not in self._cache:
                try:
                    self._cache[name] = DERIVED[name](self.table)
                except KeyError as exc:
                    raise QueryError(f"{name} needs the column {exc}", self.text, pos) from None
            return self._cache[name]
        known = ", ".join(sorted(map(str, self.table.columns)) + sorted(DERIVED))
        raise QueryError(f"unknown column {name!r} (columns: {known})", self.text, pos)

    def typed(self, node, col: pd.Series, value: Any) -> pd.Series:
        """The column as the type of ``value``; a column of which no value converts is an error."""
        if isinstance(value, str):
            return pd.Series(_texts(col), index=col.index, dtype=object)
        try:
            if isinstance(value, bool):
                out = col.map(lambda v: v if isinstance(v, bool | np.bool_) else None)
            elif isinstance(value, datetime):
                out = pd.to_datetime(col, errors="coerce", format="ISO8601")
                if getattr(out.dt, "tz", None) is not None:
                    out = out.dt.tz_localize(None)
            else:
                out = pd.to_numeric(col, errors="coerce")
        except (TypeError, ValueError):  # lists, mixed objects
            out = pd.Series([None] * len(col), index=col.index, dtype=object)
        if col.notna().any() and out.isna().all():
            kind = type(value).__name__.replace("datetime", "date")
            raise QueryError(f"column {node.column!r} holds no {kind} values to compare with",
                             self.text, node.pos)  # fmt: skip
        return out

    def compare(self, node, col: pd.Series, op: str, value: Any) -> np.ndarray:
        v = self.typed(node, col, value)
        valid = v.notna().to_numpy()
        vals = v.to_numpy()
        out = np.zeros(len(v), bool)
        if isinstance(value, datetime):
            value = np.datetime64(value)
        idx = np.flatnonzero(valid)
        if len(idx):
            x = vals[idx]
            try:
                res = {"==": x == value, "!=": x != value, "<": x < value, "<=": x <= value,
                       ">": x > value, ">=": x >= value}[op]  # fmt: skip
            except TypeError:
                raise QueryError(f"cannot order {node.column!r} by {_lit(value)}", self.text,
                                 node.pos) from None  # fmt: skip
            out[idx] = np.asarray(res, bool)
        return out

    def __call__(self, node: Node) -> np.ndarray:
        if isinstance(node, BoolOp):
            parts = [self(i) for i in node.items]
            return np.logical_and.reduce(parts) if node.op == "and" else np.logical_or.reduce(parts)
        if isinstance(node, Not):
            return ~self(node.item)
        col = self.column(node.column, node.pos)
        if isinstance(node, Compare):
            return self.compare(node, col, node.op, node.value)
        if isinstance(node, In):
            hit = np.zeros(len(col), bool)
            for v in node.values:
                hit |= self.compare(node, col, "==", v)
            if node.negate:
                hit = ~hit & col.notna().to_numpy()
            return hit
        if isinstance(node, Between):
            inside = self.compare(node, col, ">=", node.low) & self.compare(
                node, col, "<=", node.high
            )
            if node.negate:
                outside = self.compare(node, col, "<", node.low) | self.compare(
                    node, col, ">", node.high
                )
                return outside
            return inside
        if isinstance(node, IsNull):
            null = np.array([_missing(v) for v in col], bool)
            return ~null if node.negate else null
        if isinstance(node, Text):
            texts = _texts(col)
            if node.op == "contains":
                needle = node.pattern.lower()
                return np.array([v is not None and needle in v.lower() for v in texts], bool)
            rx = _regex(node.pattern)
            return np.array([v is not None and rx.search(v) is not None for v in texts], bool)
        raise TypeError(node)  # pragma: no cover


def _regex(pattern: str):
    """A compiled RE2 pattern: matching takes time linear in the text whatever the pattern
    (``(a+)+X$`` cannot hang), and no backreferences or lookarounds. Raises ValueError."""
    import re2

    options = re2.Options()
    options.log_errors = False  # the error is raised here, not printed by the C++ library
    try:
        return re2.compile(pattern, options)
    except Exception as exc:  # re2.error, or an overflow in a repetition count
        msg = exc.args[0] if exc.args else type(exc).__name__
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        raise ValueError(str(msg)) from None


def _texts(col: pd.Series) -> list[str | None]:
    return [None if _missing(v) else str(v) for v in col]


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # lists and arrays are values
        return False


def filter_table(table: pd.DataFrame, query: str | Node) -> np.ndarray:
    """The boolean mask of the rows of ``table`` that match ``query``.

    Raises
    ------
    QueryError
        Unparsable query, unknown column, or a value of a type the column does not hold.

    >>> t = pd.DataFrame({"material": ["PZT", "BFO", None], "scan_size_x_m": [2e-6, 8e-6, 1e-6]})
    >>> filter_table(t, 'material == "PZT" or scan_size_um < 1.5').tolist()
    [True, False, True]
    """
    text = query if isinstance(query, str) else str(query)
    node = parse(query) if isinstance(query, str) else query
    return _Evaluator(table.reset_index(drop=True), text)(node)
