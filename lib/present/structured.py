"""A structured answer as the page and the command lines show it: the object (partial or
whole) as Markdown, each field marked while it grows, and the per-field figures as text."""

from __future__ import annotations

import time
from typing import Any, Sequence

from lib.core import metrics
from lib.core.structured import JsonFields, partial_of, read_fields
from lib.core.trace import Trace
from lib.present.display import plain_markdown, seconds

CURSOR = " ▍"
"""After a field still arriving: the reader sees it is not whole yet."""


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _value(value: Any) -> str:
    if isinstance(value, str):
        return plain_markdown(value)
    return plain_markdown(str(value))


def object_markdown(obj: Any, fields: JsonFields | None = None) -> str:
    """The object as Markdown: a `title` as a heading, strings as labelled paragraphs, lists of
    objects as sub-sections (their first text field in bold), lists of strings as bullets.
    Model text is always literal text (plain_markdown). With `fields` (what has arrived),
    the field still arriving ends with a cursor."""
    if obj is None:
        return ""
    data = obj.model_dump() if hasattr(obj, "model_dump") else dict(obj)
    growing = None
    if fields is not None and fields.units and not fields.units[-1].closed:
        growing = fields.units[-1].path
    lines: list[str] = []
    for key, value in data.items():
        if value is None or value == [] and not _closed(fields, key):
            continue
        mark = CURSOR if growing == key else ""
        if key == "title" and isinstance(value, str):
            lines.append(f"### {_value(value)}{mark}")
        elif isinstance(value, list):
            lines.append(f"**{_label(key)}**")
            for index, item in enumerate(value):
                item_mark = CURSOR if growing == f"{key}[{index}]" else ""
                lines.append(_item(item) + item_mark)
            if not value:
                lines.append("_none_")
        elif isinstance(value, dict):
            lines.append(f"**{_label(key)}**  \n" + _item(value) + mark)
        else:
            lines.append(f"**{_label(key)}:** {_value(value)}{mark}")
    return "\n\n".join(lines)


def _closed(fields: JsonFields | None, key: str) -> bool:
    return fields is None or any(u.path == key and u.closed for u in fields.units)


def _item(item: Any) -> str:
    if isinstance(item, dict):
        texts = [(k, v) for k, v in item.items() if v is not None]
        if not texts:
            return "- …"
        head, *rest = texts
        out = f"- **{_value(head[1])}**"
        for key, value in rest:
            out += f"  \n  {_value(value)}" if isinstance(value, str) else (
                f"  \n  {_label(key)}: {_value(value)}")
        return out
    return f"- {_value(item)}"


def answer_markdown(text: str, partial: Any) -> str:
    """A structured answer as it stands: its partial object with the growing field marked."""
    return object_markdown(partial, read_fields(text))


def figure_lines(traces: Sequence[Trace]) -> list[str]:
    """The structured figures of a race's lanes, one block per lane, for the command lines."""
    lines = []
    for trace in traces:
        figures = metrics.structured_figures(trace)
        if figures is None:
            continue
        verdict = "valid" if figures.object_valid else f"NOT valid ({figures.invalid_reason})"
        lines.append(
            f"{trace.mode}: first field {seconds(figures.first_field_s, 3)}, schema-valid "
            f"object {seconds(figures.valid_object_s, 3)}, partial-parse failures "
            f"{figures.partial_failures}, final object {verdict}")
        for moment in figures.fields:
            lines.append(f"  {moment.path:<16} {seconds(moment.first_s, 3):>9} → "
                         f"{seconds(moment.last_s, 3) if moment.last_s is not None else 'open'}")
    return lines


class ObjectView:
    """A lane's object as a renderer draws it, frame by frame: the text received so far read as
    a partial object (Mirascope's reading, as the stream's own `parse(partial=True)`), and the
    moment each field was first handed over whole (`drawn`), so the drawing's lag behind the
    stream is measured, not assumed."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.drawn: dict[str, float] = {}
        self.fields: JsonFields | None = None

    def frame(self) -> str:
        """The object so far as Markdown, the field still arriving marked."""
        chunks = self.trace.chunks[:len(self.trace.chunks)]  # one snapshot for text and fields
        text = "".join(chunk.text for chunk in chunks if not chunk.thought)
        structure = self.trace.request.structure
        partial = partial_of(text, structure.model) if structure is not None else None
        self.fields = read_fields(text)
        now = time.perf_counter()
        for unit in self.fields.units:
            if unit.closed and unit.path not in self.drawn:
                self.drawn[unit.path] = now
        return object_markdown(partial, self.fields)

    def visible(self, trace: Trace) -> bool:
        """Whether a field of the lane's text has a visible character yet (the end of its blank
        screen)."""
        text = trace.text
        units = read_fields(text).units
        return bool(units) and len(text) > units[0].content_start

    def lags(self) -> dict[str, float]:
        """Per field: handed over whole − the arrival of the character that closed it."""
        figures = metrics.structured_figures(self.trace)
        if figures is None or self.trace.t0 is None:
            return {}
        return {m.path: self.drawn[m.path] - (self.trace.t0 + m.last_s)
                for m in figures.fields if m.last_s is not None and m.path in self.drawn}


def lag_line(lags: dict[str, float], frame_s: float) -> str | None:
    """The drawing's lag in one line: the worst field, against one frame."""
    if not lags:
        return None
    path, worst = max(lags.items(), key=lambda item: item[1])
    return (f"Each field drawn whole at most {seconds(max(worst, 0.0))} after its last "
            f"character arrived ({path}; one frame is {seconds(frame_s)}).")
