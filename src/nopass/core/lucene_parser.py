"""The syntax of the Lucene query subset of Auth0's searches (no I/O).

Auth0's user search (docs/specs/management-api.md §3.2) and log search (§4.1) take the same
syntax over different fields (a ``nopass.core.lucene.Schema``); ``parse`` turns a ``q``
string into the small frozen tree of ``nopass.core.lucene``.

Grammar (whitespace between clauses means OR, as in Lucene; ``AND`` binds tighter than
``OR``/whitespace, ``NOT`` tighter than both)::

    query   := or EOF
    or      := and (("OR" | "||" | whitespace) and)*
    and     := unary (("AND" | "&&") unary)*
    unary   := ("NOT" | "!" | "-") unary | primary
    primary := "(" or ")" | "_exists_:" field | field ":" values | value
    values  := "(" value-or ")" | range | value        (a group binds every value to field)
    range   := ("[" | "{") bound "TO" bound ("]" | "}")  bound := "*" | value
    value   := '"phrase"' | term                         (``\\`` escapes any character)

Everything else Lucene has (fuzzy ``~``, boosts ``^``, regular expressions ``/…/``,
proximity ``"…"~n``, ``?``, the ``+`` operator) raises ``InvalidQuery``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from nopass.core.errors import InvalidQuery
from nopass.core.lucene import (
    And,
    Between,
    Exists,
    Field,
    Flag,
    Kind,
    Match,
    Node,
    Not,
    Or,
    Pattern,
    Schema,
    date_span,
    fold,
)

MAX_LENGTH = 4096  # characters of q
MAX_DEPTH = 16  # nested parentheses and NOTs
MAX_CLAUSES = 64  # field clauses, after bare terms are spread over the default fields


@dataclass(frozen=True, slots=True)
class _Value:
    """A value as written: its characters and whether each ``*`` is a wildcard."""

    text: str
    quoted: bool
    stars: tuple[int, ...] = ()  # positions of unescaped ``*``


_OPERATOR = re.compile(r"(AND|OR|NOT)(?=[\s()\"]|$)|&&|\|\||!")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*):")
_STOP = frozenset(" \t\r\n()")


@dataclass
class _Parser:
    schema: Schema
    text: str
    at: int = 0
    depth: int = 0
    clauses: int = 0
    negated: bool = False  # whether the last unary parsed was a negation

    # cursor helpers
    def skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def operator(self) -> str | None:
        self.skip()
        found = _OPERATOR.match(self.text, self.at)
        if found is None:
            return None
        word = found.group(0)
        return {"&&": "AND", "||": "OR", "!": "NOT"}.get(word, word)

    def take_operator(self) -> None:
        found = _OPERATOR.match(self.text, self.at)
        if found is not None:
            self.at = found.end()

    def fail(self, message: str) -> InvalidQuery:
        return InvalidQuery(f"{message} (at character {self.at + 1})")

    # boolean structure, shared by top-level clauses and grouped values
    def parse_or(self, primary: Callable[[], Node]) -> Node:
        """Clauses joined by OR or by whitespace. A negated clause joined to its neighbours
        by whitespace only excludes, as Lucene's ``-``: ``a -b`` is ``a AND NOT b``."""
        parts = [self.parse_and(primary)]
        explicit = [False]  # explicit[i]: an OR stands before parts[i]
        while True:
            op = self.operator()
            if op == "OR":
                self.take_operator()
                explicit.append(True)
            elif op == "AND" or self.peek() in ("", ")"):
                break
            else:
                explicit.append(False)
            parts.append(self.parse_and(primary))
        if len(parts) == 1:
            return parts[0][0]
        explicit.append(False)
        keep: list[Node] = []
        exclude: list[Node] = []
        for i, (node, negated) in enumerate(parts):
            alone = negated and not explicit[i] and not explicit[i + 1]
            (exclude if alone else keep).append(node)
        if not exclude:
            return Or(tuple(keep))
        kept: list[Node] = [] if not keep else [keep[0] if len(keep) == 1 else Or(tuple(keep))]
        return And((*kept, *exclude))

    def parse_and(self, primary: Callable[[], Node]) -> tuple[Node, bool]:
        """The conjunction, and whether it is one negated clause."""
        first = self.parse_unary(primary)
        parts = [first]
        while self.operator() == "AND":
            self.take_operator()
            parts.append(self.parse_unary(primary))
        if len(parts) == 1:
            return first, self.negated
        return And(tuple(parts)), False

    def parse_unary(self, primary: Callable[[], Node]) -> Node:
        op = self.operator()
        if op in ("AND", "OR"):
            raise self.fail(f"{op} needs a clause on each side")
        negate = op == "NOT"
        if negate:
            self.take_operator()
        elif self.peek() == "-" and self.text[self.at + 1 : self.at + 2] not in ("", " "):
            self.at += 1
            negate = True
        elif self.peek() == "+":
            raise self.fail("the + operator is not supported: use AND")
        if not negate:
            node = primary()
            self.negated = False
            return node
        self.enter()
        inner = self.parse_unary(primary)
        self.depth -= 1
        self.negated = True
        return Not(inner)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"the query nests deeper than {MAX_DEPTH} levels")

    def group(self, inner: Callable[[], Node]) -> Node:
        self.at += 1  # "("
        self.enter()
        self.skip()
        if self.peek() == ")":
            raise self.fail("empty parentheses")
        node = self.parse_or(inner)
        self.skip()
        if self.peek() != ")":
            raise self.fail("missing )")
        self.at += 1
        self.depth -= 1
        self.after_clause()
        return node

    def after_clause(self) -> None:
        char = self.peek()
        if char == "^":
            raise self.fail("boosting (^) is not supported")
        if char == "~":
            raise self.fail("fuzzy and proximity searches (~) are not supported")

    # clauses
    def clause(self) -> Node:
        self.skip()
        char = self.peek()
        if char == "":
            raise self.fail("the query ends where a clause was expected")
        if char == "(":
            return self.group(self.clause)
        if char == ")":
            raise self.fail("unexpected )")
        named = _FIELD.match(self.text, self.at)
        if named is None:
            value = self.value()
            return self.bare(value)
        self.at = named.end()
        name = named.group(1)
        if name == "_exists_":
            target = _NAME.match(self.text, self.at)
            end = target.end() if target else self.at
            if target is None or (end < len(self.text) and self.text[end] not in _STOP):
                raise self.fail("_exists_ takes a field name, for example _exists_:last_login")
            self.at = end
            self.leaf()
            return Exists(self.schema.field(target.group(0)).name)
        spec = self.schema.field(name)
        return self.values(spec)

    def values(self, spec: Field) -> Node:
        char = self.peek()
        if char == "(":
            return self.group(lambda: self.grouped(spec))
        if char in ("[", "{"):
            return self.range(spec)
        if char == "" or char in _STOP:
            raise self.fail(f"{spec.name}: needs a value")
        return self.term(spec, self.value())

    def grouped(self, spec: Field) -> Node:
        self.skip()
        char = self.peek()
        if char == "(":
            return self.group(lambda: self.grouped(spec))
        if char in ("[", "{"):
            return self.range(spec)
        if _FIELD.match(self.text, self.at):
            raise self.fail("a field inside a grouped value")
        return self.term(spec, self.value())

    def bare(self, value: _Value) -> Node:
        fields = self.schema.default_fields
        if not fields:
            raise self.fail("name a field, for example email:jane@example.com")
        parts = tuple(self.term(self.schema.field(name), value) for name in fields)
        return parts[0] if len(parts) == 1 else Or(parts)

    def leaf(self) -> None:
        self.clauses += 1
        if self.clauses > MAX_CLAUSES:
            raise self.fail(f"the query has more than {MAX_CLAUSES} clauses")

    def value(self, stop: frozenset[str] = _STOP) -> _Value:
        if self.peek() == '"':
            return self.phrase()
        if self.peek() == "/":
            raise self.fail("regular expressions are not supported")
        chars: list[str] = []
        stars: list[int] = []
        while self.at < len(self.text) and self.text[self.at] not in stop:
            char = self.text[self.at]
            if char == "\\":
                if self.at + 1 >= len(self.text):
                    raise self.fail("the query ends with a lone \\")
                chars.append(self.text[self.at + 1])
                self.at += 2
                continue
            if char == "*":
                stars.append(len(chars))
            elif char == "?":
                raise self.fail("the ? wildcard is not supported: use *")
            elif char in "~^":
                self.after_clause()
            elif char in '"[]{}':
                raise self.fail(f"unexpected {char}: quote or escape it")
            chars.append(char)
            self.at += 1
        if not chars:
            raise self.fail("a value was expected")
        self.after_clause()
        return _Value("".join(chars), quoted=False, stars=tuple(stars))

    def phrase(self) -> _Value:
        self.at += 1
        chars: list[str] = []
        while True:
            if self.at >= len(self.text):
                raise self.fail('missing closing "')
            char = self.text[self.at]
            if char == "\\" and self.at + 1 < len(self.text):
                chars.append(self.text[self.at + 1])
                self.at += 2
                continue
            self.at += 1
            if char == '"':
                break
            chars.append(char)
        self.after_clause()
        return _Value("".join(chars), quoted=True)

    def range(self, spec: Field) -> Node:
        inclusive_low = self.peek() == "["
        self.at += 1
        if spec.kind not in (Kind.INTEGER, Kind.DATE):
            raise self.fail(f"ranges are not supported on {spec.name}")
        self.skip()
        low = self.bound()
        self.skip()
        if not self.text.startswith("TO", self.at):
            raise self.fail("a range needs TO between its bounds")
        self.at += 2
        self.skip()
        high = self.bound()
        self.skip()
        close = self.peek()
        if close not in ("]", "}"):
            raise self.fail("a range ends with ] or }")
        self.at += 1
        self.after_clause()
        self.leaf()
        lower = None if low is None else _bounds(spec, low)[0 if inclusive_low else 1]
        upper = None if high is None else _bounds(spec, high)[1 if close == "]" else 0]
        return Between(spec.name, lower, upper)

    def bound(self) -> str | None:
        value = self.value(stop=_STOP | {"]", "}"})
        if not value.quoted and value.text == "*" and value.stars:
            return None
        if value.stars:
            raise self.fail("wildcards are not allowed in range bounds")
        return value.text

    def term(self, spec: Field, value: _Value) -> Node:
        self.leaf()
        text = value.text
        if spec.kind is Kind.METADATA:
            if value.stars:
                raise self.fail(f"wildcards are not supported on {spec.path[0]}")
            return Match(spec.name, text)
        if spec.kind is Kind.STRING:
            if value.stars:
                return self.pattern(spec, value)
            return Match(spec.name, fold(text) if spec.folded else text)
        if value.stars:
            raise self.fail(f"wildcards are not supported on {spec.name}")
        if spec.kind is Kind.BOOLEAN:
            if text not in ("true", "false"):
                raise self.fail(f"{spec.name} is true or false")
            return Flag(spec.name, text == "true")
        low, high = _bounds(spec, text)
        return Between(spec.name, low, high)

    def pattern(self, spec: Field, value: _Value) -> Node:
        parts: list[str] = []
        start = 0
        for star in value.stars:
            parts.append(value.text[start:star])
            start = star + 1
        parts.append(value.text[start:])
        literal = sum(len(part) for part in parts)
        if literal == 0:
            raise self.fail(f"{spec.name}:* matches anything: use _exists_:{spec.name}")
        if parts[0] == "" and literal < 3:
            raise self.fail("a wildcard at the start needs 3 or more other characters")
        if spec.folded:
            parts = [fold(part) for part in parts]
        return Pattern(spec.name, tuple(parts))


def _bounds(spec: Field, text: str) -> tuple[int | datetime, int | datetime]:
    """The ``[start, end)`` of one written value of an integer or date field."""
    if spec.kind is Kind.DATE:
        return date_span(text)
    if not re.fullmatch(r"\d{1,18}", text):
        raise InvalidQuery(f"{spec.name} takes a whole number, not {text!r}")
    return int(text), int(text) + 1


def parse(text: str, schema: Schema) -> Node | None:
    """The tree of ``q``; ``None`` for an empty query (everything matches)."""
    if len(text) > MAX_LENGTH:
        raise InvalidQuery(f"the query is longer than {MAX_LENGTH} characters")
    if not text.strip():
        return None
    parser = _Parser(schema, text)
    node = parser.parse_or(parser.clause)
    parser.skip()
    if parser.peek() == ")":
        raise parser.fail("unexpected )")
    if parser.peek():
        raise parser.fail("unexpected text")
    return node
