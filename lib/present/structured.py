"""A structured answer as the page and the command lines show it: the object (partial or
whole) as Markdown, each field marked while it grows, and the per-field figures as text."""

from __future__ import annotations

from typing import Any, Sequence

from lib.core import metrics
from lib.core.structured import JsonFields, read_fields
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
