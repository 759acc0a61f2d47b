"""Strategies: when text reaches the screen relative to its validation.

A strategy is a pure function of a chunk timeline (`Chunk(t, text)`) and the measured
duration of each validation: it produces a display timeline (`GuardEvent`s: hold, release,
redact, done, at times), from which lib.core.metrics derives the delivered TTFT, blank screen,
E2E with validation, exposure window, retractions and validation time. Each strategy has one
validation lane: a check starts when its text is ready and the previous check has finished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Sequence, get_args

import pydantic

from lib.core.errors import InvalidInput
from lib.core.structured import JsonFields, Unit
from lib.core.trace import Chunk, Guarded, GuardEvent, GuardEventKind
from lib.guards.validators import SENTENCE_END, Checker, Scope

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
    model: Any = field(default=None, compare=False, repr=False)
    """field: the pydantic model of a structured answer, whose field validators each field
    passes before it shows; None: the text validators only."""

    def __post_init__(self) -> None:
        if self.on_fail not in ("redact", "retract"):
            raise InvalidInput("On failure, either redact (the span) or retract (the whole unit).")
        if not 1 <= self.chunk_size <= 1000:
            raise InvalidInput("The window must hold between 1 and 1,000 tokens.")
        if not 0 <= self.context_size < self.chunk_size:
            raise InvalidInput(
                "The window's context must be at least 0 tokens and shorter than the window."
            )


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

    def _emit(
        self, t: float, kind: GuardEventKind, start: int = 0, end: int = 0, note: str = ""
    ) -> None:
        self.events.append(GuardEvent(t, kind, start, end, note))

    def _validate(
        self, ready: float, start: int, end: int, scope: Scope, context_start: int | None = None
    ) -> float:
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

    def guarded(
        self, violations: tuple[tuple[int, int], ...] = (), planted: str | None = None, **params
    ) -> Guarded:
        """The display timeline so far, in time order (same-time events keep their order)."""
        events = list(self.events)  # copied first: the text is then at least as long
        return Guarded(
            strategy=self.name,
            label=self.label,
            validators=tuple(v.name for v in self.checker.validators),
            params={**self.params, **params},
            events=tuple(sorted(events, key=lambda e: e.t)),
            checks_s=tuple(self.checks_s),
            violations=violations,
            planted=planted,
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
        return f"window {o.chunk_size}/{o.context_size}" + (
            " stream_first" if o.stream_first else ""
        )

    @property
    def params(self):
        o = self.options
        return {
            **super().params,
            "chunk_size": o.chunk_size,
            "context_size": o.context_size,
            "stream_first": o.stream_first,
        }

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


class Fields(Strategy):
    name = "field"
    summary = ("holds each field of a structured answer until it closes and passes its "
               "validators (the schema's own, PII, banned terms), then shows it whole")

    def __init__(self, checker, options=None):
        super().__init__(checker, options)
        self._fields = JsonFields()
        self._shown = 0  # text[:_shown] is released

    def on_text(self, t, start, end):
        self._emit(t, "hold", start, end)
        for unit in self._fields.feed(self.text[start:end]):
            self._release_field(t, unit)

    def _release_field(self, ready: float, unit: Unit) -> None:
        assert unit.end is not None
        begin = self._shown
        verdict = self._validate(ready, begin, unit.end, "fragment")
        verdict = self._check_schema(verdict, unit)
        self._emit(verdict, "release", begin, unit.end)
        self._shown = unit.end

    def _check_schema(self, ready: float, unit: Unit) -> float:
        """The field's value through the model's own validators (pydantic, measured on this
        strategy's lane): what fails is masked before it shows."""
        model = self.options.model
        if model is None or unit.end is None:
            return ready
        began = self.checker.clock()
        problem = schema_problem(model, unit.path, self.text[unit.value_start:unit.end])
        took = self.checker.clock() - began
        verdict = max(ready, self._lane_free) + took
        self._lane_free = verdict
        self.checks_s.append(took)
        if problem:
            start = unit.start if self.options.on_fail == "retract" else unit.value_start
            self._redact(verdict, start, unit.end, f"schema: {problem}")
        return verdict

    def on_end(self, t_end):
        self._fields.close_at_end()
        for unit in self._fields.units:
            if unit.closed and unit.end is not None and unit.end > self._shown:
                self._release_field(t_end, unit)  # a number closed by the end of the text
        if self._shown < len(self.text):
            verdict = self._validate(t_end, self._shown, len(self.text), "fragment")
            self._emit(verdict, "release", self._shown, len(self.text))
            self._shown = len(self.text)
        self._validate(t_end, 0, len(self.text), "answer")


def schema_problem(model: type[pydantic.BaseModel], path: str, value_text: str) -> str | None:
    """What the model's validators say of one field's value (a top-level field, or an element
    `name[i]` of a top-level list), None when it passes."""
    try:
        value = json.loads(value_text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg})"
    key, _, index = path.partition("[")
    info = model.model_fields.get(key)
    if info is None:
        return f"'{key}' is not a field of {model.__name__}"
    try:
        if index:
            items = get_args(info.annotation)
            pydantic.TypeAdapter(items[0] if items else Any).validate_python(value)
        else:
            model.__pydantic_validator__.validate_assignment(model.model_construct(), key, value)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        return f"{path}: {first.get('msg', 'invalid')}"
    return None


STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s for s in (NoGuard, After, Sentence, Window, Blocking)
}
"""The strategies for any answer."""

ALL_STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s for s in (NoGuard, After, Sentence, Window, Fields, Blocking)
}
"""With `field`, for a structured answer only."""


def strategies_for(structured: bool) -> list[str]:
    """Every strategy that applies to an answer: `field` too when it is structured."""
    return list(ALL_STRATEGIES if structured else STRATEGIES)


def check_strategies(names: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    if not names:
        raise InvalidInput("Pick at least one strategy: " + ", ".join(ALL_STRATEGIES) + ".")
    unknown = [n for n in names if n not in ALL_STRATEGIES]
    if unknown:
        raise InvalidInput(
            f"Unknown strategy {', '.join(unknown)}: use {', '.join(ALL_STRATEGIES)}.")
    return names


def simulate(
    name: str,
    chunks: Sequence[Chunk],
    checker: Checker,
    options: GuardOptions | None = None,
    t_end: float | None = None,
) -> Strategy:
    """One strategy over a whole chunk timeline; the stream ends at `t_end` (default: the
    last chunk). Pure but for the checker's clock."""
    strategy = ALL_STRATEGIES[name](checker, options)
    for chunk in chunks:
        strategy.feed(chunk)
    strategy.finish(t_end if t_end is not None else (chunks[-1].t if chunks else 0.0))
    return strategy
