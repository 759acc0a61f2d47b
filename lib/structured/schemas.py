"""The objects a structured race can ask for: shipped pydantic models, or a JSON Schema the
user typed or uploaded (read into a pydantic model, so Mirascope formats and parses it the
same way); and which formatting mode each endpoint gets (the README's table says why)."""

from __future__ import annotations

import json
import keyword
import re
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, Field, field_validator

from lib.core.errors import InvalidInput
from lib.core.structured import FORMAT_MODES, FormatMode, Structure


class Section(BaseModel):
    """One section of a report."""

    heading: str = Field(max_length=60, description="A short heading")
    body: str = Field(max_length=400, description="Two or three sentences")


class Report(BaseModel):
    """A short report: a title, a summary, a few sections and the risks."""

    title: str = Field(min_length=3, max_length=80, description="The report's title")
    summary: str = Field(max_length=300, description="One or two sentences")
    sections: list[Section] = Field(min_length=1, max_length=3)
    risks: list[str] = Field(max_length=3, description="Short risks, one phrase each")

    @field_validator("title")
    @classmethod
    def title_is_words(cls, value: str) -> str:
        if not re.search(r"[A-Za-z]{2}", value):
            raise ValueError("the title must contain words")
        return value


class Contact(BaseModel):
    """A person's contact card."""

    name: str = Field(max_length=80)
    email: str = Field(max_length=120)
    company: str = Field(max_length=80)


class Ticket(BaseModel):
    """A support ticket triaged from a customer's message."""

    category: Literal["billing", "bug", "account", "other"]
    priority: Literal["low", "medium", "high"]
    summary: str = Field(max_length=200)
    next_steps: list[str] = Field(max_length=3)


SCHEMAS: dict[str, type[BaseModel]] = {"report": Report, "contact": Contact, "ticket": Ticket}
"""The shipped schemas by name (the race page's picker, `--schema NAME`)."""

PROMPTS = {
    "report": "Write a short report on why streaming responses improve the user experience of "
              "chat applications: a title, a one-sentence summary, two sections (a heading and "
              "two sentences each) and two risks.",
    "contact": "Extract the contact card: Jane Doe, head of support at Acme Corp, "
               "jane.doe@example.com.",
    "ticket": "Triage this customer message into a ticket: 'I was charged twice for my "
              "subscription this month and nobody answers my e-mails.'",
}
"""A prompt that suits each shipped schema (the default of `--schema NAME` without --prompt)."""


def schema_prompt(structure: Structure | None) -> str:
    """The prompt that goes with a schema when none was given."""
    if structure is not None and structure.name in PROMPTS:
        return PROMPTS[structure.name]
    return "Fill in this object with realistic content."

CUSTOM = "custom"

MODE_FOR_KIND: dict[str, FormatMode] = {
    "local": "strict",  # llama-server turns response_format's JSON Schema into a grammar
    "openai": "strict",  # OpenAI's structured outputs
    "compatible": "json",  # any server: the schema in the prompt, validated on arrival
    "replay": "json",  # the recording is replayed as it was; nothing is asked of a server
}


def mode_for(endpoint_kind: str, requested: str | None = None) -> FormatMode:
    """The formatting mode for an endpoint: the one asked for, else the kind's (MODE_FOR_KIND)."""
    if requested and requested != "auto":
        if requested not in FORMAT_MODES:
            raise InvalidInput(
                f"Unknown output mode '{requested}': use auto, {', '.join(FORMAT_MODES)}.")
        return requested  # type: ignore[return-value]
    return MODE_FOR_KIND.get(endpoint_kind, "json")


def structure_for(schema: str, endpoint_kind: str, mode: str | None = None) -> Structure:
    """A shipped schema by name, or a JSON Schema's text, as a Structure; InvalidInput says
    what is wrong with a schema that does not parse or that this tool cannot read."""
    schema = (schema or "").strip()
    chosen = mode_for(endpoint_kind, mode)
    if schema in SCHEMAS:
        return Structure(schema, SCHEMAS[schema], chosen)
    if not schema.startswith("{"):
        raise InvalidInput(
            f"Unknown schema '{schema}': use {', '.join(SCHEMAS)}, or a JSON Schema object.")
    model = model_from_json_schema(schema)
    return Structure(model.__name__, model, chosen)


def structure_from_row(name: str | None, schema_json: str | None,
                       mode: str | None) -> Structure | None:
    """A logged run's structure again: the shipped model when the schema is still the one it
    was logged with, else a model read from the logged JSON Schema."""
    if not name or not schema_json:
        return None
    fmt: FormatMode = mode if mode in FORMAT_MODES else "json"  # type: ignore[assignment]
    model = SCHEMAS.get(name)
    if model is not None and json.dumps(model.model_json_schema(), sort_keys=True) == (
            schema_json):
        return Structure(name, model, fmt)
    try:
        return Structure(name, model_from_json_schema(schema_json), fmt)
    except InvalidInput:
        return None


# -- a JSON Schema as a pydantic model ---------------------------------------------------------

_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}


def model_from_json_schema(text: str | dict) -> type[BaseModel]:
    """A pydantic model for a JSON Schema object: properties of type string (with min/max
    length, enum), integer, number, boolean, arrays of those or of objects (min/max items),
    nested objects, `$defs` references; `required` kept. Anything else is refused by name."""
    if isinstance(text, str):
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"The JSON Schema does not parse: {exc.msg} (line {exc.lineno}, "
                f"column {exc.colno}).") from None
    else:
        schema = text
    if not isinstance(schema, dict):
        raise InvalidInput("The JSON Schema must be a JSON object ({...}).")
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict) or (
            not schema["properties"]):
        raise InvalidInput(
            'The JSON Schema must describe an object with properties: {"type": "object", '
            '"properties": {...}}.')
    defs = schema.get("$defs") or schema.get("definitions") or {}
    title = str(schema.get("title") or "CustomObject")
    name = re.sub(r"\W", "", title) or "CustomObject"
    return _object_model(name, schema, defs, "")


def _resolve(node: dict, defs: dict, where: str) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    key = str(ref).rsplit("/", 1)[-1]
    if key not in defs:
        raise InvalidInput(f"The JSON Schema refers to {ref} at {where or 'the top'}, "
                           "which it does not define.")
    return defs[key]


def _object_model(name: str, schema: dict, defs: dict, where: str) -> type[BaseModel]:
    required = set(schema.get("required") or ())
    fields: dict[str, Any] = {}
    for key, node in schema["properties"].items():
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key) or (
                key.startswith("_")):
            raise InvalidInput(f"The property name '{key}' cannot be read here: use letters, "
                               "digits and underscores, not starting with one.")
        path = f"{where}.{key}" if where else key
        annotation, constraints = _annotation(_resolve(node, defs, path), defs, path)
        description = node.get("description") if isinstance(node, dict) else None
        if key in required:
            fields[key] = (annotation, Field(description=description, **constraints))
        else:
            fields[key] = (annotation | None, Field(None, description=description, **constraints))
    try:
        return pydantic.create_model(name, **fields)
    except (TypeError, pydantic.PydanticUserError) as exc:  # pragma: no cover - guarded above
        raise InvalidInput(f"The JSON Schema cannot be read: {exc}") from None


def _annotation(node: dict, defs: dict, path: str) -> tuple[Any, dict]:
    if not isinstance(node, dict):
        raise InvalidInput(f"The schema of '{path}' must be an object.")
    if "enum" in node:
        values = node["enum"]
        if not values or not all(isinstance(v, str) for v in values):
            raise InvalidInput(f"'{path}': only enums of strings are supported.")
        return Literal[tuple(values)], {}  # type: ignore[valid-type]
    kind = node.get("type")
    if kind in _SCALARS:
        limits = {"min_length": node.get("minLength"), "max_length": node.get("maxLength")}
        if kind in ("integer", "number"):
            limits = {"ge": node.get("minimum"), "le": node.get("maximum")}
        return _SCALARS[kind], {k: v for k, v in limits.items() if v is not None}
    if kind == "array":
        items = node.get("items")
        if not isinstance(items, dict):
            raise InvalidInput(f"'{path}': an array needs an `items` schema.")
        item, _ = _annotation(_resolve(items, defs, path + "[]"), defs, path + "[]")
        limits = {"min_length": node.get("minItems"), "max_length": node.get("maxItems")}
        return list[item], {k: v for k, v in limits.items() if v is not None}  # type: ignore[valid-type]
    if kind == "object" and isinstance(node.get("properties"), dict) and node["properties"]:
        name = re.sub(r"\W", "", str(node.get("title") or path.title())) or "Nested"
        return _object_model(name, node, defs, path), {}
    raise InvalidInput(
        f"'{path}': type {kind!r} is not supported here (string, integer, number, boolean, "
        "enum, array, object with properties).")
