"""Strategies: when text reaches the screen relative to its validation.

A strategy is a pure function of a chunk timeline (`Chunk(t, text)`) and the measured
duration of each validation: it produces a display timeline (`GuardEvent`s: hold, release,
redact, done, at times), from which lib.core.metrics derives the delivered TTFT, blank screen,
E2E with validation, exposure window, retractions and validation time. Each strategy has one
validation lane: a check starts when its text is ready and the previous check has finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Sequence

from lib.core.errors import InvalidInput
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


STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s for s in (NoGuard, After, Sentence, Window, Blocking)
}


def check_strategies(names: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    if not names:
        raise InvalidInput("Pick at least one strategy: " + ", ".join(STRATEGIES) + ".")
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise InvalidInput(f"Unknown strategy {', '.join(unknown)}: use {', '.join(STRATEGIES)}.")
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
    strategy = STRATEGIES[name](checker, options)
    for chunk in chunks:
        strategy.feed(chunk)
    strategy.finish(t_end if t_end is not None else (chunks[-1].t if chunks else 0.0))
    return strategy
