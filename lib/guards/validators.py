"""Validators: find violations in text and say where they are.

Personal data, banned terms, length and a JSON Schema are checked here; `Moderation` asks
OpenAI's moderation endpoint (or any server that answers like it). A `Checker` runs the chosen
validators on one validation lane and measures each check.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Protocol, Sequence

import httpx

from lib.core.config import OPENAI_BASE_URL
from lib.core.errors import AuthFailed, CallFailed, InvalidInput, redact


@dataclass(frozen=True)
class Violation:
    """What a validator found, where: text[start:end] of the text it checked."""

    validator: str
    start: int
    end: int
    reason: str


class Validator(Protocol):
    name: str
    whole_answer: bool
    """True: the check only means something on the whole answer (a JSON document, a length),
    so segment strategies run it once, at the end."""

    def check(self, text: str) -> list[Violation]: ...


EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
    r"(?![\w-]|\.[A-Za-z0-9])"
)


PHONE = re.compile(
    r"(?<![\w+.-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,}(?:[ .-]\d{2,}){0,5}"
    r"(?![\w-]|\.\d)"
)


CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![ -]?\d)")


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s|\n")
"""A sentence ends at its punctuation once whitespace follows (so 3.14 and a.b@c.com do
not end one), or at a line break."""


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Where each sentence of a text is, surrounding whitespace left out."""
    spans, start = [], 0
    for end in [m.end() for m in SENTENCE_END.finditer(text)] + [len(text)]:
        piece = text[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + len(piece.rstrip())))
        start = end
    return spans


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number passes: double every second digit from
    the right, subtract 9 from results above 9, and the sum is a multiple of 10."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _is_phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if not 7 <= len(digits) <= 15 or ISO_DATE.fullmatch(candidate):
        return False
    if not re.search(r"[ .()+-]", candidate):
        return False  # a bare number (a price, a count) is not taken for a phone number
    groups = re.findall(r"\d+", candidate)
    # 10 000 000 or 1.250.000: thousands, not a phone number
    return not (candidate[0] != "+" and len(groups[0]) <= 3 and len(groups) > 1
                and all(len(g) == 3 for g in groups[1:]))


class PersonalData:
    """E-mail addresses, phone numbers (digit groups with separators, or a + prefix; 7–15
    digits) and payment card numbers (13–19 digits passing the Luhn check)."""

    name = "pii"
    whole_answer = False

    def check(self, text: str) -> list[Violation]:
        found = [Violation(self.name, m.start(), m.end(), "e-mail address")
                 for m in EMAIL.finditer(text)]
        found += [Violation(self.name, m.start(), m.end(), "card number")
                  for m in CARD.finditer(text)
                  if luhn_valid(re.sub(r"\D", "", m.group()))]
        found += [Violation(self.name, m.start(), m.end(), "phone number")
                  for m in PHONE.finditer(text) if _is_phone(m.group())]
        return sorted(found, key=lambda v: (v.start, v.end))


class BannedTerms:
    """Whole words or phrases from a list, in any case ("classified" is not in "declassified")."""

    name = "banned"
    whole_answer = False

    def __init__(self, terms: Iterable[str]):
        self.terms = tuple(dict.fromkeys(t.strip() for t in terms if t and t.strip()))
        if not self.terms:
            raise InvalidInput("The banned-terms validator needs at least one term.")
        alternatives = "|".join(r"\s+".join(map(re.escape, t.split())) for t in self.terms)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def check(self, text: str) -> list[Violation]:
        return [Violation(self.name, m.start(), m.end(), f"banned term '{m.group()}'")
                for m in self._pattern.finditer(text)]


class MaxLength:
    """At most `limit` characters: what goes beyond is the violation."""

    name = "max_length"
    whole_answer = True

    def __init__(self, limit: int):
        if not isinstance(limit, int) or limit < 1:
            raise InvalidInput(
                "The maximum length must be a whole number of characters, at least 1.")
        self.limit = limit

    def check(self, text: str) -> list[Violation]:
        if len(text) <= self.limit:
            return []
        return [
            Violation(
                self.name, self.limit, len(text), f"{len(text):,} characters, limit {self.limit:,}"
            )
        ]


DEFAULT_SCHEMA = {
    "type": "object",
    "required": ["name", "email"],
    "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
}


CODE_FENCE = re.compile(r"^```[a-zA-Z]*\n(.*)\n```$", re.DOTALL)


class JsonSchema:
    """The whole answer is a JSON document valid against a JSON Schema (a ```json fence
    around it is accepted). A failure is the whole answer: a structured output that does not
    parse or validate is unusable as a whole."""

    name = "json_schema"
    whole_answer = True

    def __init__(self, schema: dict | str):
        import jsonschema

        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as exc:
                raise InvalidInput(
                    f"The JSON Schema is not valid JSON: {exc.msg} at line "
                    f"{exc.lineno}, column {exc.colno}."
                ) from None
        if not isinstance(schema, dict):
            raise InvalidInput("The JSON Schema must be a JSON object.")
        cls = jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise InvalidInput(f"The JSON Schema is not a valid schema: {exc.message}.") from None
        self.schema = schema
        self._validator = cls(schema)

    def check(self, text: str) -> list[Violation]:
        body = text.strip()
        fenced = CODE_FENCE.match(body)
        body = fenced.group(1) if fenced else body
        try:
            document = json.loads(body)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}"
            return [Violation(self.name, 0, len(text), f"not valid JSON: {exc.msg} ({where})")]
        errors = sorted(self._validator.iter_errors(document), key=lambda e: list(e.path))
        if not errors:
            return []
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path)
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        reason = f"{where}: {first.message}" if where else first.message
        return [Violation(self.name, 0, len(text), reason + more)]


class Moderation:
    """OpenAI's moderation endpoint (POST {base}/moderations), sentence by sentence in one
    request (it takes a list of inputs): a flagged sentence is a violation. The endpoint does
    not say where in a text the problem is; per sentence, a whole answer is judged at the
    same grain as the `sentence` strategy judges it. Needs an OpenAI key, which goes in the
    Authorization header only."""

    name = "moderation"
    whole_answer = False
    MODEL = "omni-moderation-latest"

    def __init__(
        self, api_key: str | None, base_url: str = OPENAI_BASE_URL, timeout_s: float = 15.0
    ):
        if not api_key:
            raise InvalidInput(
                "The moderation validator calls OpenAI's moderation endpoint: set "
                "OPENAI_API_KEY (environment or .streamlit/secrets.toml)."
            )
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self._client = httpx.Client(timeout=timeout_s)

    def check(self, text: str) -> list[Violation]:
        spans = sentence_spans(text)
        if not spans:
            return []
        url = f"{self.base_url}/moderations"
        body = {"model": self.MODEL, "input": [text[a:b] for a, b in spans]}
        try:
            response = self._client.post(
                url, json=body, headers={"Authorization": f"Bearer {self._key}"}
            )
        except httpx.HTTPError as exc:
            raise CallFailed(
                f"The moderation endpoint {url} did not answer "
                f"({type(exc).__name__}: {self._scrub(str(exc))})."
            ) from None
        if response.status_code in (401, 403):
            raise AuthFailed(
                f"The moderation endpoint {url} refused the key "
                f"(HTTP {response.status_code}): check OPENAI_API_KEY."
            )
        if response.status_code != 200:
            raise CallFailed(
                f"The moderation endpoint {url} answered HTTP {response.status_code}: "
                f"{self._scrub(response.text)[:300]}"
            )
        try:
            results = response.json()["results"]
            flags = [(bool(r.get("flagged")), r.get("categories") or {}) for r in results]
        except (ValueError, KeyError, TypeError, AttributeError):
            flags = []
        if len(flags) != len(spans):
            raise CallFailed(
                f"The moderation endpoint {url} sent an answer without one result per input."
            )
        return [
            Violation(
                self.name,
                a,
                b,
                "flagged: " + (", ".join(c for c, hit in cats.items() if hit) or "yes"),
            )
            for (a, b), (flagged, cats) in zip(spans, flags)
            if flagged
        ]

    def _scrub(self, text: str) -> str:
        return redact(text, (self._key,))

    def close(self) -> None:
        self._client.close()


VALIDATORS = {
    "pii": "personal data: e-mail addresses, phone numbers, card numbers (Luhn)",
    "banned": "banned terms, whole words",
    "max_length": "maximum length of the answer",
    "json_schema": "the answer is JSON valid against a JSON Schema",
    "moderation": "OpenAI's moderation endpoint (needs OPENAI_API_KEY)",
}


@dataclass(frozen=True)
class ValidatorSettings:
    """What the configurable validators need; the moderation key comes from the configuration."""

    banned: tuple[str, ...] = ("confidential", "password")
    max_chars: int = 400
    schema: dict | str = dataclasses.field(default_factory=lambda: dict(DEFAULT_SCHEMA))
    moderation_url: str | None = None
    moderation_key: str | None = dataclasses.field(default=None, repr=False)


def build_validators(
    names: Sequence[str], settings: ValidatorSettings | None = None
) -> list[Validator]:
    """Validators by name, checked: InvalidInput says what is wrong (nothing is sent)."""
    settings = settings or ValidatorSettings()
    names = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    if not names:
        raise InvalidInput("Pick at least one validator: " + ", ".join(VALIDATORS) + ".")
    unknown = [n for n in names if n not in VALIDATORS]
    if unknown:
        raise InvalidInput(f"Unknown validator {', '.join(unknown)}: use {', '.join(VALIDATORS)}.")
    makers: dict[str, Callable[[], Validator]] = {
        "pii": PersonalData,
        "banned": lambda: BannedTerms(settings.banned),
        "max_length": lambda: MaxLength(settings.max_chars),
        "json_schema": lambda: JsonSchema(settings.schema),
        "moderation": lambda: Moderation(
            settings.moderation_key, settings.moderation_url or OPENAI_BASE_URL
        ),
    }
    return [makers[name]() for name in names]


def merged_spans(violations: Iterable[Violation]) -> tuple[tuple[int, int], ...]:
    """The violations' spans, overlapping and touching ones merged, in order."""
    spans: list[list[int]] = []
    for start, end in sorted((v.start, v.end) for v in violations if v.end > v.start):
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    return tuple((a, b) for a, b in spans)


Scope = Literal["fragment", "answer", "all"]
"""fragment: the validators that can judge any piece of text; answer: those that need the
whole answer; all: both."""


@dataclass(frozen=True)
class Check:
    violations: tuple[Violation, ...]
    duration_s: float


class Checker:
    """Runs the validators of a scope on a text and measures how long they took.

    Each (text, scope) is checked once per run: strategies asking the same question (`after`
    and `blocking` both validate the whole answer) get the same answer and the same measured
    duration. `clock` is injectable so that tests can give every check a known duration.
    """

    def __init__(
        self, validators: Sequence[Validator], clock: Callable[[], float] = time.perf_counter
    ):
        self.validators = tuple(validators)
        self.clock = clock
        self._done: dict[tuple[str, Scope], Check] = {}

    def chosen(self, scope: Scope) -> list[Validator]:
        return [
            v for v in self.validators if scope == "all" or v.whole_answer == (scope == "answer")
        ]

    def check(self, text: str, scope: Scope) -> Check:
        key = (text, scope)
        if key not in self._done:
            validators = self.chosen(scope)
            began = self.clock()
            found = [violation for validator in validators for violation in validator.check(text)]
            self._done[key] = Check(
                tuple(sorted(found, key=lambda v: (v.start, v.end))), self.clock() - began
            )
        return self._done[key]

    def close(self) -> None:
        for validator in self.validators:
            close = getattr(validator, "close", None)
            if close is not None:
                close()
