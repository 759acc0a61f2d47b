"""Structured answers: a typed object streamed as JSON, and the moments each field arrived.

A `Structure` says which pydantic model the answer must fill and how the request asks for it
(Mirascope's formatting mode). `JsonFields` reads the answer's JSON text as it grows and knows,
at every character, which fields (the top-level fields, and each element of a top-level array:
`sections[0]`, `sections[1]`…) have begun and which have closed; the field moments, the
renderer's "this field is whole" and the `field` guardrail strategy all come from it.

Partial objects and validity are Mirascope's own (`parse_partial_json`, the parse behind
`StreamResponse.structured_stream()` and `Response.parse()`, lib.core.seams): a prefix is read
the way a structured stream reads it, so the metrics count what a renderer could show.

Every figure here is derived from a Trace's chunks (lib.core.metrics): nothing is measured apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import pydantic

from lib.core.trace import Chunk

FormatMode = Literal["strict", "json", "tool"]
FORMAT_MODES: tuple[FormatMode, ...] = ("strict", "json", "tool")
"""Mirascope's formatting modes: `strict` sends the JSON Schema as `response_format`
(json_schema; llama.cpp turns it into a grammar), `json` asks for JSON in the prompt, `tool`
forces a tool call whose arguments are the object."""


@dataclass(frozen=True)
class Structure:
    """The object an answer must be: a pydantic model, its name, and how it is asked for."""

    name: str
    model: type[pydantic.BaseModel] = field(compare=False, repr=False)
    mode: FormatMode = "json"

    @property
    def schema(self) -> dict:
        return self.model.model_json_schema()

    def schema_json(self) -> str:
        return json.dumps(self.schema, sort_keys=True)

    def format(self):
        """Mirascope's Format for this structure (what `llm.format(model, mode=...)` returns)."""
        from mirascope import llm

        return llm.format(self.model, mode=self.mode)


# -- reading JSON as it grows -------------------------------------------------------------------

UnitKind = Literal["string", "number", "literal", "object", "array"]


@dataclass
class Unit:
    """One field of the answer (a top-level field, or one element of a top-level array), by
    character offsets in the answer's text."""

    path: str
    start: int
    """Where the unit's text begins: just after the previous unit (its key and the punctuation
    before it belong to it), so consecutive units tile the object."""
    value_start: int
    kind: UnitKind
    content_start: int
    """The first character of what a reader sees: after a string's opening quote."""
    end: int | None = None
    """Just after its last character, once closed."""
    closed_by: int | None = None
    """The character whose arrival proved it closed: its closing quote or bracket, or for a
    number or literal the delimiter after it."""

    @property
    def closed(self) -> bool:
        return self.end is not None


class JsonFields:
    """An incremental reader of one JSON object's top-level fields: `feed` text as it arrives;
    `units` are the fields begun so far, in order, each closed once its value is complete.

    Tolerant: text before the first `{` (a preamble, a code fence) is skipped; after the object
    closes, the rest is ignored. It does not validate JSON; Mirascope's parser does that.
    """

    def __init__(self) -> None:
        self.text = ""
        self.units: list[Unit] = []
        self.object_start: int | None = None
        self.object_end: int | None = None
        """Just after the top-level object's closing brace, once it arrived."""
        self._stack: list[str] = []
        self._in_string = False
        self._escape = False
        self._expect = "value"  # at the unit level: "key", "colon", "value", "comma"
        self._key: list[str] | None = None
        self._current_key = ""
        self._open: Unit | None = None
        self._open_depth = 0
        self._array_key: str | None = None  # a top-level array whose elements are units
        self._array_index = 0
        self._array_filled = False
        self._array_start = 0
        self._array_value_start = 0
        self._span_from = 0
        self._token = False  # inside a number or literal unit

    @property
    def closed(self) -> list[Unit]:
        return [unit for unit in self.units if unit.closed]

    @property
    def in_value_string(self) -> bool:
        """The text so far ends inside a string value (not a key): text added here is text of
        a field."""
        return self._in_string and self._key is None and not self._escape

    def feed(self, piece: str) -> list[Unit]:
        """Read more text; return the units that closed with it."""
        closed: list[Unit] = []
        base = len(self.text)
        self.text += piece
        if self.object_end is not None:
            return closed
        for offset, char in enumerate(piece):
            self._char(base + offset, char, closed)
            if self.object_end is not None:
                break
        return closed

    def _new_unit(self, path: str, at: int, kind: UnitKind, depth: int) -> None:
        content = at + 1 if kind == "string" else at
        self._open = Unit(path, self._span_from, at, kind, content)
        self._open_depth = depth
        self.units.append(self._open)
        self._token = kind in ("number", "literal")
        if self._array_key is not None and path != self._array_key:
            self._array_filled = True

    def _close(self, end: int, by: int, closed: list[Unit]) -> None:
        unit = self._open
        if unit is None:
            return
        unit.end, unit.closed_by = end, by
        self._span_from = end
        self._open = None
        self._token = False
        closed.append(unit)

    def _char(self, i: int, c: str, closed: list[Unit]) -> None:
        depth = len(self._stack)
        if self._in_string:
            if self._escape:
                self._escape = False
            elif c == "\\":
                self._escape = True
            elif c == '"':
                self._in_string = False
                if self._key is not None:
                    self._current_key = "".join(self._key)
                    self._key = None
                    self._expect = "colon"
                elif self._open is not None and self._open.kind == "string" and (
                        depth == self._open_depth):
                    self._close(i + 1, i, closed)
                return
            if self._key is not None:
                self._key.append(c)
            return
        if self._token:
            if c in ",]}" or c.isspace():
                self._close(i, i, closed)
            else:
                return
        if c.isspace():
            return
        if self.object_start is None:
            if c == "{":
                self.object_start = i
                self._stack.append("{")
                self._expect = "key"
                self._span_from = i + 1
            return
        at_field = depth == 1 and self._expect == "value"
        at_element = depth == 2 and self._array_key is not None and self._open is None and (
            self._expect == "value")
        if c in "{[":
            if at_field and c == "[":
                self._array_key, self._array_index = self._current_key, 0
                self._array_filled = False
                self._array_start, self._array_value_start = self._span_from, i
            elif at_field or at_element:
                path = self._current_key if at_field else f"{self._array_key}[{self._array_index}]"
                self._new_unit(path, i, "object" if c == "{" else "array", depth + 1)
            self._stack.append(c)
            self._expect = "key" if c == "{" and depth == 0 else "value"
            return
        if c in "}]":
            if self._stack:
                self._stack.pop()
            depth = len(self._stack)
            if self._open is not None and self._open.kind in ("object", "array") and (
                    depth == self._open_depth - 1):
                self._close(i + 1, i, closed)
            elif c == "]" and depth == 1 and self._array_key is not None:
                if not self._array_filled:  # an empty array is one unit: the field itself
                    self._span_from = self._array_start
                    self._new_unit(self._array_key, self._array_value_start, "array", 1)
                    self._close(i + 1, i, closed)
                self._array_key = None
            if depth == 0:
                self.object_end = i + 1
            self._expect = "comma"
            return
        if c == '"':
            self._in_string = True
            if depth == 1 and self._expect == "key":
                self._key = []
            elif at_field or at_element:
                path = self._current_key if at_field else f"{self._array_key}[{self._array_index}]"
                self._new_unit(path, i, "string", depth)
            return
        if c == ",":
            if depth == 1:
                self._expect = "key"
            elif depth == 2 and self._array_key is not None:
                self._array_index += 1
                self._expect = "value"
            return
        if c == ":":
            if depth == 1:
                self._expect = "value"
            return
        if at_field or at_element:  # a number or a literal (true, false, null)
            path = self._current_key if at_field else f"{self._array_key}[{self._array_index}]"
            kind: UnitKind = "number" if c in "-0123456789" else "literal"
            self._new_unit(path, i, kind, depth)

    def close_at_end(self) -> None:
        """The text ended: a number or literal still open is whole if the object is."""
        if self._token and self._open is not None and self.object_end is not None:
            self._close(len(self.text), len(self.text) - 1, [])


def read_fields(text: str) -> JsonFields:
    fields = JsonFields()
    fields.feed(text)
    fields.close_at_end()
    return fields


# -- Mirascope's reading of a prefix -------------------------------------------------------------


def partial_of(text: str, model: type[pydantic.BaseModel]) -> pydantic.BaseModel | None:
    """The partial object a structured stream yields for this text (Mirascope's
    `parse_partial_json`: every field optional, an unclosed string read as far as it goes);
    None when the text cannot be read as one yet."""
    from lib.core.seams import parse_partial_json

    return parse_partial_json(text, model)


def parse_whole(text: str, model: type[pydantic.BaseModel]) -> pydantic.BaseModel:
    """The validated object, as Mirascope's `Response.parse()` reads it; raises ValueError (a
    pydantic ValidationError, or JSONDecodeError) with what is wrong."""
    from lib.core.seams import extract_serialized_json

    return model.model_validate_json(extract_serialized_json(text))


def invalid_reason(exc: Exception) -> str:
    """A validation failure in one line a user can read: where, and what."""
    if isinstance(exc, pydantic.ValidationError):
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "the object"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{where}: {first.get('msg', 'invalid')}{more}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not one complete JSON object ({exc.msg})"
    return str(exc)


# -- the figures of one structured answer ----------------------------------------------------------


@dataclass(frozen=True)
class FieldMoment:
    """When one field's first visible character and its closing character arrived (seconds
    after t0); `last_s` is None when the field never closed."""

    path: str
    first_s: float | None
    last_s: float | None


@dataclass(frozen=True)
class StructuredFigures:
    fields: tuple[FieldMoment, ...]
    first_field_s: float | None
    """The first visible character of any field − t0."""
    valid_object_s: float | None
    """The chunk that completed a schema-valid object − t0; None if none did."""
    partial_failures: int
    """Chunks after which the answer so far (once its object had begun) could not be read as
    a partial object."""
    object_valid: bool
    invalid_reason: str | None


def _chunk_at(ends: Sequence[int], offset: int) -> int:
    """The index of the chunk that carried the character at `offset`."""
    from bisect import bisect_right

    return bisect_right(ends, offset)


def figures(chunks: Sequence[Chunk], t0: float | None,
            model: type[pydantic.BaseModel]) -> StructuredFigures:
    """The structured figures of an answer received as `chunks` (answer text only).

    Formulas: a field's first moment = t(chunk carrying its first visible character) − t0,
    its last = t(chunk carrying the character that closed it) − t0; first_field_s = min of
    first moments; valid_object_s = t(chunk carrying the object's closing brace) − t0 when the
    text up to it validates; partial_failures = #{chunks after which the text so far, from its
    first `{`, is not a partial object}; object_valid: the whole text validates.
    """
    answer = [chunk for chunk in chunks if not chunk.thought]
    text = "".join(chunk.text for chunk in answer)
    ends, total = [], 0
    for chunk in answer:
        total += len(chunk.text)
        ends.append(total)

    def at(offset: int) -> float | None:
        index = _chunk_at(ends, offset)
        if t0 is None or index >= len(answer):
            return None
        return answer[index].t - t0

    read = read_fields(text)
    moments = tuple(
        FieldMoment(unit.path, at(min(unit.content_start, unit.closed_by
                                      if unit.closed_by is not None else unit.content_start)),
                    at(unit.closed_by) if unit.closed_by is not None else None)
        for unit in read.units
    )
    firsts = [m.first_s for m in moments if m.first_s is not None]
    failures, prefix = 0, ""
    for chunk in answer:
        prefix += chunk.text
        if "{" in prefix and partial_of(prefix, model) is None:
            failures += 1
    valid_at = None
    reason: str | None
    if not text.strip():
        return StructuredFigures(moments, None, None, failures, False, "no answer arrived")
    try:
        parse_whole(text, model)
        reason = None
    except ValueError as exc:
        reason = invalid_reason(exc)
    if reason is None and read.object_end is not None:
        valid_at = at(read.object_end - 1)
    elif reason is None:
        valid_at = at(len(text) - 1)
    return StructuredFigures(moments, min(firsts) if firsts else None, valid_at, failures,
                             reason is None, reason)


def moments_json(moments: Sequence[FieldMoment]) -> str:
    """The run log's `field_moments`: {path: [first_s, last_s]} in the order fields began."""
    def r(value: float | None) -> float | None:
        return round(value, 6) if value is not None else None

    return json.dumps({m.path: [r(m.first_s), r(m.last_s)] for m in moments})


def moments_from_json(text: str | None) -> tuple[FieldMoment, ...]:
    if not text:
        return ()
    data: dict[str, Any] = json.loads(text)
    return tuple(FieldMoment(path, pair[0], pair[1]) for path, pair in data.items())
