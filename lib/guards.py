"""Guardrails: what validating a streamed answer costs, and what streaming it exposes.

Validators find violations in text (personal data, banned terms, length, a JSON Schema,
OpenAI's moderation) and say where they are. Strategies decide when text reaches the screen
relative to validation: `none` shows everything as it arrives; `after` streams, validates the
whole answer at the end and removes what fails; `sentence` holds each sentence until it is
validated; `window` holds N tokens with M tokens of context (NeMo Guardrails' chunk_size and
context_size) and releases them before (`stream_first`) or after validating; `blocking`
validates the whole answer before showing any of it.

A strategy is a pure function of a chunk timeline (`Chunk(t, text)`) and the measured
duration of each validation: it produces a display timeline (`GuardEvent`s: hold, release,
redact, done, at times), from which lib.metrics derives the delivered TTFT, blank screen,
E2E with validation, exposure window, retractions and validation time. Each strategy has one
validation lane: a check starts when its text is ready and the previous check has finished.

One streamed generation fans out to every chosen strategy at once (`GuardRun`); a planted
violation can be inserted into the live stream at a chosen point so a demo is repeatable.

    python -m lib.guards --strategies none,after,sentence,window,blocking --validators pii \\
        --plant "call me at 555-0100" --plant-at 0.5 --out guard.csv
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Iterable, Literal, Protocol, Sequence

import httpx

from lib import endpoints, metrics
from lib.calls import Call, check_request, warm_up
from lib.config import OPENAI_BASE_URL, moderation_config
from lib.errors import AuthFailed, CallFailed, InvalidInput, StreamRaceError, redact
from lib.race import add_cli_arguments, aligned, cli_params, cli_settings, prompt_text
from lib.store import Store
from lib.trace import Chunk, Guarded, GuardEvent, GuardEventKind, Params, Trace

# -- validators --------------------------------------------------------------------------------


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
            raise InvalidInput("The maximum length must be a whole number of characters, at least 1.")
        self.limit = limit

    def check(self, text: str) -> list[Violation]:
        if len(text) <= self.limit:
            return []
        return [Violation(self.name, self.limit, len(text),
                          f"{len(text):,} characters, limit {self.limit:,}")]


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
                raise InvalidInput(f"The JSON Schema is not valid JSON: {exc.msg} at line "
                                   f"{exc.lineno}, column {exc.colno}.") from None
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

    def __init__(self, api_key: str | None, base_url: str = OPENAI_BASE_URL, timeout_s: float = 15.0):
        if not api_key:
            raise InvalidInput("The moderation validator calls OpenAI's moderation endpoint: set "
                               "OPENAI_API_KEY (environment or .streamlit/secrets.toml).")
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
            response = self._client.post(url, json=body, headers={"Authorization": f"Bearer {self._key}"})
        except httpx.HTTPError as exc:
            raise CallFailed(f"The moderation endpoint {url} did not answer "
                             f"({type(exc).__name__}: {self._scrub(str(exc))}).") from None
        if response.status_code in (401, 403):
            raise AuthFailed(f"The moderation endpoint {url} refused the key "
                             f"(HTTP {response.status_code}): check OPENAI_API_KEY.")
        if response.status_code != 200:
            raise CallFailed(f"The moderation endpoint {url} answered HTTP {response.status_code}: "
                             f"{self._scrub(response.text)[:300]}")
        try:
            results = response.json()["results"]
            flags = [(bool(r.get("flagged")), r.get("categories") or {}) for r in results]
        except (ValueError, KeyError, TypeError, AttributeError):
            flags = []
        if len(flags) != len(spans):
            raise CallFailed(f"The moderation endpoint {url} sent an answer without one result "
                             "per input.")
        return [Violation(self.name, a, b, "flagged: " + (", ".join(c for c, hit in cats.items() if hit) or "yes"))
                for (a, b), (flagged, cats) in zip(spans, flags) if flagged]

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


def build_validators(names: Sequence[str], settings: ValidatorSettings | None = None) -> list[Validator]:
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
        "moderation": lambda: Moderation(settings.moderation_key,
                                         settings.moderation_url or OPENAI_BASE_URL),
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


# -- running validators, timed -------------------------------------------------------------------

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

    def __init__(self, validators: Sequence[Validator], clock: Callable[[], float] = time.perf_counter):
        self.validators = tuple(validators)
        self.clock = clock
        self._done: dict[tuple[str, Scope], Check] = {}

    def chosen(self, scope: Scope) -> list[Validator]:
        return [v for v in self.validators if scope == "all" or v.whole_answer == (scope == "answer")]

    def check(self, text: str, scope: Scope) -> Check:
        key = (text, scope)
        if key not in self._done:
            validators = self.chosen(scope)
            began = self.clock()
            found = [violation for validator in validators for violation in validator.check(text)]
            self._done[key] = Check(tuple(sorted(found, key=lambda v: (v.start, v.end))),
                                    self.clock() - began)
        return self._done[key]

    def close(self) -> None:
        for validator in self.validators:
            close = getattr(validator, "close", None)
            if close is not None:
                close()


# -- strategies --------------------------------------------------------------------------------

OnFail = Literal["redact", "retract"]


@dataclass(frozen=True)
class GuardOptions:
    """How strategies act. on_fail: `redact` removes the violating span only; `retract` removes
    the whole unit that failed (the answer, the sentence, the window)."""

    on_fail: OnFail = "redact"
    chunk_size: int = 16
    """window: tokens (chunks) validated together (NeMo's chunk_size)."""
    context_size: int = 4
    """window: tokens of the previous window validated again with it (NeMo's context_size)."""
    stream_first: bool = True
    """window: release a window, then validate it (NeMo's default), instead of after."""

    def __post_init__(self) -> None:
        if self.on_fail not in ("redact", "retract"):
            raise InvalidInput("On failure, either redact (the span) or retract (the whole unit).")
        if not 1 <= self.chunk_size <= 1000:
            raise InvalidInput("The window must hold between 1 and 1,000 tokens.")
        if not 0 <= self.context_size < self.chunk_size:
            raise InvalidInput("The window's context must be at least 0 tokens and shorter than the window.")


class Strategy:
    """The engine every strategy shares: it takes chunks (`feed`), then the end (`finish`),
    and writes the display timeline to `events`. Subclasses say only when text is held,
    validated and released (`on_text`, `on_end`)."""

    name: ClassVar[str]
    summary: ClassVar[str]

    def __init__(self, checker: Checker, options: GuardOptions | None = None):
        self.checker = checker
        self.options = options or GuardOptions()
        self.text = ""
        self.events: list[GuardEvent] = []
        self.checks_s: list[float] = []
        self.finished = False
        self._redacted: list[bool] = []
        self._lane_free = float("-inf")

    @property
    def label(self) -> str:
        return self.name

    @property
    def params(self) -> dict:
        return {"on_fail": self.options.on_fail}

    def feed(self, chunk: Chunk) -> None:
        start = len(self.text)
        self.text += chunk.text
        self._redacted.extend([False] * len(chunk.text))
        self.on_text(chunk.t, start, len(self.text))

    def finish(self, t_end: float) -> None:
        """The stream ended at `t_end`: validate and release what is left, then `done` once
        the last verdict is in."""
        if not self.finished:
            self.on_end(t_end)
            self._emit(max(t_end, self._lane_free), "done")
            self.finished = True

    def on_text(self, t: float, start: int, end: int) -> None:
        raise NotImplementedError

    def on_end(self, t_end: float) -> None:
        raise NotImplementedError

    def _emit(self, t: float, kind: GuardEventKind, start: int = 0, end: int = 0, note: str = "") -> None:
        self.events.append(GuardEvent(t, kind, start, end, note))

    def _validate(self, ready: float, start: int, end: int, scope: Scope,
                  context_start: int | None = None) -> float:
        """Check text[context_start or start:end], ready at `ready`, on this strategy's lane;
        redact what fails at the verdict; return the verdict's time."""
        if not self.checker.chosen(scope):
            return ready
        low = start if context_start is None else context_start
        result = self.checker.check(self.text[low:end], scope)
        verdict = max(ready, self._lane_free) + result.duration_s
        self._lane_free = verdict
        self.checks_s.append(result.duration_s)
        for violation in result.violations:
            a, b = low + violation.start, low + violation.end
            if self.options.on_fail == "retract":
                a, b = min(a, start), max(b, end)
            self._redact(verdict, a, b, f"{violation.validator}: {violation.reason}")
        return verdict

    def _redact(self, t: float, start: int, end: int, note: str) -> None:
        if all(self._redacted[start:end]):
            return  # already decided (found again in the next window's context)
        self._redacted[start:end] = [True] * (end - start)
        self._emit(t, "redact", start, end, note)

    def guarded(self, violations: tuple[tuple[int, int], ...] = (), planted: str | None = None,
                **params) -> Guarded:
        """The display timeline so far, in time order (same-time events keep their order)."""
        events = list(self.events)  # copied first: the text is then at least as long
        return Guarded(
            strategy=self.name, label=self.label,
            validators=tuple(v.name for v in self.checker.validators),
            params={**self.params, **params}, events=tuple(sorted(events, key=lambda e: e.t)),
            checks_s=tuple(self.checks_s), violations=violations, planted=planted,
        )


class NoGuard(Strategy):
    name = "none"
    summary = "shows everything as it arrives, validates nothing"

    def on_text(self, t, start, end):
        self._emit(t, "release", start, end)

    def on_end(self, t_end):
        pass


class After(Strategy):
    name = "after"
    summary = "streams, validates the whole answer at the end, removes what fails"

    def on_text(self, t, start, end):
        self._emit(t, "release", start, end)

    def on_end(self, t_end):
        self._validate(t_end, 0, len(self.text), "all")


class Blocking(Strategy):
    name = "blocking"
    summary = "waits for the whole answer, validates it, then shows it"

    def on_text(self, t, start, end):
        self._emit(t, "hold", start, end)

    def on_end(self, t_end):
        verdict = self._validate(t_end, 0, len(self.text), "all")
        self._emit(verdict, "release", 0, len(self.text))


class Sentence(Strategy):
    name = "sentence"
    summary = "holds each sentence until it is validated (Guardrails AI's streaming)"

    def __init__(self, checker, options=None):
        super().__init__(checker, options)
        self._next = 0  # where the sentence being held starts

    def on_text(self, t, start, end):
        self._emit(t, "hold", start, end)
        for match in SENTENCE_END.finditer(self.text, self._next):
            self._release_checked(t, self._next, match.end())
            self._next = match.end()

    def _release_checked(self, ready, start, end) -> None:
        verdict = self._validate(ready, start, end, "fragment")
        self._emit(verdict, "release", start, end)

    def on_end(self, t_end):
        if self._next < len(self.text):
            self._release_checked(t_end, self._next, len(self.text))
            self._next = len(self.text)
        self._validate(t_end, 0, len(self.text), "answer")


class Window(Strategy):
    name = "window"
    summary = "holds N tokens, validates them with M tokens of context (NeMo Guardrails)"

    def __init__(self, checker, options=None):
        super().__init__(checker, options)
        self._ends: list[int] = []  # where each token (chunk) ends in the text
        self._first = 0  # the first token not yet in a window

    @property
    def label(self):
        o = self.options
        return f"window {o.chunk_size}/{o.context_size}" + (" stream_first" if o.stream_first else "")

    @property
    def params(self):
        o = self.options
        return {**super().params, "chunk_size": o.chunk_size, "context_size": o.context_size,
                "stream_first": o.stream_first}

    def on_text(self, t, start, end):
        self._emit(t, "hold", start, end)
        self._ends.append(end)
        if len(self._ends) - self._first >= self.options.chunk_size:
            self._window(t)

    def _window(self, ready) -> None:
        first = self._first
        start = self._ends[first - 1] if first else 0
        end = self._ends[-1]
        context = max(0, first - self.options.context_size)
        context_start = self._ends[context - 1] if context else 0
        self._first = len(self._ends)
        if self.options.stream_first:
            self._emit(ready, "release", start, end)
            self._validate(ready, start, end, "fragment", context_start)
        else:
            verdict = self._validate(ready, start, end, "fragment", context_start)
            self._emit(verdict, "release", start, end)

    def on_end(self, t_end):
        if self._first < len(self._ends):
            self._window(t_end)
        self._validate(t_end, 0, len(self.text), "answer")


STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (NoGuard, After, Sentence, Window, Blocking)}


def check_strategies(names: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    if not names:
        raise InvalidInput("Pick at least one strategy: " + ", ".join(STRATEGIES) + ".")
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise InvalidInput(f"Unknown strategy {', '.join(unknown)}: use {', '.join(STRATEGIES)}.")
    return names


def simulate(name: str, chunks: Sequence[Chunk], checker: Checker,
             options: GuardOptions | None = None, t_end: float | None = None) -> Strategy:
    """One strategy over a whole chunk timeline; the stream ends at `t_end` (default: the
    last chunk). Pure but for the checker's clock."""
    strategy = STRATEGIES[name](checker, options)
    for chunk in chunks:
        strategy.feed(chunk)
    strategy.finish(t_end if t_end is not None else (chunks[-1].t if chunks else 0.0))
    return strategy


# -- the planted violation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Plant:
    """A known violation to insert into the stream, before chunk `at_chunk` (0: first)."""

    text: str
    at_chunk: int

    @classmethod
    def at_fraction(cls, text: str, fraction: float, max_tokens: int) -> "Plant":
        """At `fraction` of the answer's expected length (max_tokens chunks, one token each)."""
        text = (text or "").strip()
        if not text:
            raise InvalidInput("Type the text to plant, e.g. 'call me at 555-0100'.")
        if len(text) > 500:
            raise InvalidInput("The planted text is limited to 500 characters.")
        if not 0.0 <= fraction <= 1.0:
            raise InvalidInput("The planted violation's position is a fraction between 0 and 1.")
        return cls(text, round(fraction * max_tokens))


class Planter:
    """The plant as a stream transform: chunks in, the same chunks out with the plant's own
    inserted before the first chunk from `at_chunk` on at a word boundary (no word is cut),
    or at the end if the stream ends sooner. The plant's chunks, one word each, carry the time
    of the chunk they precede (or of the end). Pure."""

    def __init__(self, plant: Plant):
        self.plant = plant
        self.offset: int | None = None
        """Where the plant starts in the text, once planted."""
        self.t: float | None = None
        self._seen = 0
        self._text_len = 0
        self._last = ""

    def feed(self, chunk: Chunk) -> list[Chunk]:
        out = []
        at_boundary = self._seen == 0 or chunk.text[:1].isspace() or self._last[-1:].isspace()
        if self.offset is None and self._seen >= self.plant.at_chunk and at_boundary:
            out = self._pieces(chunk.t, following=chunk.text)
        out.append(chunk)
        self._seen += 1
        self._text_len += len(chunk.text)
        self._last = chunk.text
        return out

    def finish(self, t_end: float) -> list[Chunk]:
        return [] if self.offset is not None else self._pieces(t_end, following="")

    def _pieces(self, t: float, following: str) -> list[Chunk]:
        text = self.plant.text
        if self._last and not self._last[-1].isspace():
            text = " " + text
        if following and not following[0].isspace():
            text += " "
        self.offset = self._text_len + (len(text) - len(text.lstrip()))
        self.t = t
        pieces = re.findall(r"\s*\S+", text)
        pieces[-1] += text[len(text.rstrip()):]
        self._text_len += len(text)
        return [Chunk(t, piece) for piece in pieces]


# -- one generation, every strategy at once ---------------------------------------------------------


class GuardRun:
    """One streamed call fanned out to every chosen strategy as its chunks arrive.

    The call runs on one worker thread (timestamps taken there); a second worker applies the
    plant and feeds the strategies, which validate on it. Renderers read `traces()` at any
    moment: each strategy's display timeline so far, as a Trace with `guard` set.
    """

    def __init__(self, endpoint, prompt: str, params: Params, validators: Sequence[Validator],
                 strategies: Sequence[str], options: GuardOptions | None = None,
                 plant: Plant | None = None, clock: Callable[[], float] = time.perf_counter):
        check_request(prompt, params)
        names = check_strategies(strategies)
        if not validators:
            raise InvalidInput("Pick at least one validator: " + ", ".join(VALIDATORS) + ".")
        warm_up()
        self.run_id = uuid.uuid4().hex
        self.call = Call(endpoint, prompt, params, "streaming", source="guardrails",
                         race_id=self.run_id)
        self.checker = Checker(validators, clock)
        self.lanes = [STRATEGIES[name](self.checker, options) for name in names]
        self._lane_ids = [uuid.uuid4().hex for _ in self.lanes]
        self.plant = plant
        self.planter = Planter(plant) if plant else None
        self.chunks: list[Chunk] = []
        """The stream the strategies see: the call's chunks, with the plant's."""
        self.violations: tuple[tuple[int, int], ...] = ()
        self.error: StreamRaceError | None = None
        self._finished = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "GuardRun":
        for target, name in ((self.call.run, "guard-call"), (self._work, "guard-strategies")):
            thread = threading.Thread(target=target, daemon=True, name=name)
            thread.start()
            self._threads.append(thread)
        return self

    def _work(self) -> None:
        call, trace = self.call, self.call.trace
        seen = 0
        try:
            while True:
                with call.progress:
                    call.progress.wait_for(lambda: len(trace.chunks) > seen or trace.done)
                    new, ended = trace.chunks[seen:], trace.done
                seen += len(new)
                for chunk in new:
                    self._fan_out(self.planter.feed(chunk) if self.planter else [chunk])
                if ended:
                    break
            if trace.status == "ok":
                if self.planter:
                    self._fan_out(self.planter.finish(trace.t_end))
                for lane in self.lanes:
                    lane.finish(trace.t_end)
            text = "".join(chunk.text for chunk in self.chunks)
            self.violations = merged_spans(self.checker.check(text, "all").violations)
        except StreamRaceError as error:
            self.error = error
            call.cancel()
        except Exception as exc:  # noqa: BLE001 - a guard that dies must say so, not hang the page
            keys = [self.call.endpoint.api_key] + [getattr(v, "_key", None) for v in self.checker.validators]
            self.error = StreamRaceError(f"The guardrails stopped: {type(exc).__name__}: "
                                         f"{redact(str(exc), [k for k in keys if k])}")
            call.cancel()
        finally:
            self.checker.close()
            self._finished.set()

    def _fan_out(self, chunks: list[Chunk]) -> None:
        self.chunks.extend(chunks)
        for lane in self.lanes:
            for chunk in chunks:
                lane.feed(chunk)

    def cancel(self) -> None:
        self.call.cancel()

    def join(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.done

    @property
    def done(self) -> bool:
        return self._finished.is_set() and self.call.trace.done

    def elapsed(self) -> float:
        started = self.call.trace.t_start
        return time.perf_counter() - started if started is not None else 0.0

    def traces(self) -> list[Trace]:
        """One Trace per strategy, as it stands: the run-log rows of this run."""
        base = self.call.trace
        chunks = list(self.chunks)
        status, error, kind = base.status, base.error, base.error_kind
        if self.error is not None:
            status, error, kind = "error", self.error.message, self.error.kind
        extra = {"plant_at_chunk": self.plant.at_chunk} if self.plant else {}
        planted = self.plant.text if self.plant else None
        return [
            dataclasses.replace(
                base, run_id=run_id, chunks=chunks, status=status, error=error, error_kind=kind,
                guard=lane.guarded(self.violations, planted, **extra),
            )
            for lane, run_id in zip(self.lanes, self._lane_ids)
        ]


def run_headless(endpoint, prompt: str, params: Params, validators: Sequence[Validator],
                 strategies: Sequence[str], options: GuardOptions | None = None,
                 plant: Plant | None = None, store: Store | None = None,
                 timeout_s: float | None = None) -> list[Trace]:
    """One guardrails run without a renderer; logs one row per strategy; returns them."""
    run = GuardRun(endpoint, prompt, params, validators, strategies, options, plant).start()
    try:
        if not run.join(timeout_s):
            run.cancel()
            run.join(10)
    except KeyboardInterrupt:
        run.cancel()
        run.join(10)
    traces = run.traces()
    if store is not None:
        store.log(traces)
    return traces


# -- the table, presets, the CLI ------------------------------------------------------------------

TABLE_FIELDS = ["strategy", "status", "perceived_s", "delivered_ttft_s", "guard_e2e_s",
                "exposure_chars", "exposure_s", "leaked_chars", "retractions", "validation_s"]
"""The trade-off per strategy, as the page, the CLI and the CSV show it (run-log names;
`perceived_s` is the blank-screen time behind the strategy)."""


def summary_rows(traces: Sequence[Trace]) -> list[dict]:
    rows = []
    for trace in traces:
        values = metrics.compute(trace).as_dict()
        label = trace.guard.label if trace.guard else trace.mode
        rows.append({"strategy": label, "status": trace.status, **values})
    return [{field: row[field] for field in TABLE_FIELDS} for row in rows]


@dataclass(frozen=True)
class GuardPreset:
    label: str
    prompt: str
    max_tokens: int
    validators: tuple[str, ...]
    plant: bool


PRESETS = (
    # Gemma 3 270M (a base model) repeats contact details given in the prompt, and invents more
    # (checked on the embedded model, llama-server: seed 42 invents info@example.com within its
    # 60 tokens). It is the pattern of a support bot leaking its context.
    GuardPreset("Contact details (PII)",
                "In one sentence: the support e-mail is help@example.com and the phone number is "
                "555-0142. How do I reach support?", 60, ("pii",), False),
    GuardPreset("Planted violation in a long answer",
                "Write a report of about 150 words on why streaming responses improve the user "
                "experience of chat applications.", 160, ("pii", "banned"), True),
    GuardPreset("Structured output (JSON)",
                'Reply with JSON only, like {"name": "...", "email": "..."}, for Jane Doe, whose '
                "e-mail is jane.doe@example.com.", 60, ("json_schema", "pii"), False),
)
DEFAULT_PLANT = "call me at 555-0100"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.guards", description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default=PRESETS[0].prompt, type=prompt_text,
                        help="default: the contact-details preset; '-' reads it from standard input")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated: " + ", ".join(STRATEGIES))
    parser.add_argument("--validators", default="pii", help="comma-separated: " + ", ".join(VALIDATORS))
    parser.add_argument("--plant", metavar="TEXT", help="insert this violation into the stream")
    parser.add_argument("--plant-at", type=float, default=0.5, metavar="FRACTION",
                        help="where, as a fraction of --max-tokens (default 0.5)")
    parser.add_argument("--banned", default=",".join(ValidatorSettings.banned), help="comma-separated terms")
    parser.add_argument("--max-chars", type=int, default=ValidatorSettings.max_chars)
    parser.add_argument("--schema", type=Path, metavar="FILE", help="JSON Schema file (default: name + email)")
    parser.add_argument("--on-fail", choices=("redact", "retract"), default=GuardOptions.on_fail)
    parser.add_argument("--window-tokens", type=int, default=GuardOptions.chunk_size)
    parser.add_argument("--window-context", type=int, default=GuardOptions.context_size)
    parser.add_argument("--stream-first", action=argparse.BooleanOptionalAction,
                        default=GuardOptions.stream_first, help="window: release, then validate")
    parser.add_argument("--out", type=Path, metavar="CSV", help="also write the table here")
    add_cli_arguments(parser, max_tokens=PRESETS[0].max_tokens)
    args = parser.parse_args(argv)
    settings = cli_settings(args)
    try:
        # Everything is checked before the model or the run log is touched.
        params = cli_params(args)
        check_request(args.prompt, params)
        strategies = check_strategies(args.strategies.split(","))
        options = GuardOptions(args.on_fail, args.window_tokens, args.window_context, args.stream_first)
        validators = build_validators(args.validators.split(","), _validator_settings(args))
        plant = Plant.at_fraction(args.plant, args.plant_at, args.max_tokens) if args.plant is not None else None
        endpoint = endpoints.resolve(settings)
        store = Store(settings.database_url)
        traces = run_headless(endpoint, args.prompt, cli_params(args, endpoint), validators,
                              strategies, options, plant, store)
    except StreamRaceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    rows = summary_rows(traces)
    print(aligned(TABLE_FIELDS, rows))
    base = traces[0]
    if base.error:
        print(f"error: {base.error}")
    if args.out:
        with args.out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=TABLE_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.out}")
    print(f"logged run {base.race_id} ({len(traces)} rows) to "
          f"{store.engine.url.render_as_string(hide_password=True)}")
    return 0 if base.status == "ok" else 1


def _validator_settings(args: argparse.Namespace) -> ValidatorSettings:
    schema: dict | str = dict(DEFAULT_SCHEMA)
    if args.schema is not None:
        try:
            schema = args.schema.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"Cannot read the schema file {args.schema}: {exc.strerror}.") from None
    url, key = moderation_config()
    return ValidatorSettings(banned=tuple(args.banned.split(",")), max_chars=args.max_chars,
                             schema=schema, moderation_url=url, moderation_key=key)


if __name__ == "__main__":
    sys.exit(main())
