"""The guardrails lab: one streamed generation fanned out to every chosen strategy at once.

`GuardRun` runs the call and feeds the strategies as chunks arrive; a planted violation can
be inserted into the live stream at a chosen point so that a demo is repeatable.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Sequence

from lib.core import metrics, runs
from lib.core.calls import Call, check_request, warm_up
from lib.core.errors import InvalidInput, StreamRaceError, redact
from lib.core.runs import Log
from lib.core.structured import JsonFields, Structure
from lib.core.trace import Chunk, Params, Trace
from lib.guards.strategies import ALL_STRATEGIES, GuardOptions, check_strategies
from lib.guards.validators import VALIDATORS, Checker, Validator, merged_spans
from lib.structured.schemas import PROMPTS


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
    of the chunk they precede (or of the end). Pure.

    In a structured (JSON) answer the plant goes inside a string value only, escaped, so the
    object stays valid: where a model could have written it, in a field's text."""

    def __init__(self, plant: Plant, structured: bool = False):
        self.plant = plant
        self._json = JsonFields() if structured else None
        self.offset: int | None = None
        """Where the plant starts in the text, once planted."""
        self.t: float | None = None
        self._seen = 0
        self._text_len = 0
        self._last = ""

    def feed(self, chunk: Chunk) -> list[Chunk]:
        out = []
        at_boundary = self._seen == 0 or chunk.text[:1].isspace() or self._last[-1:].isspace()
        if self._json is not None:  # only between two words of a string value
            at_boundary = (self._json.in_value_string and chunk.text[:1].isspace()
                           and not self._last[-1:].isspace())
        if self.offset is None and self._seen >= self.plant.at_chunk and at_boundary:
            out = self._pieces(chunk.t, following=chunk.text)
        out.append(chunk)
        if self._json is not None:
            self._json.feed("".join(c.text for c in out))
        self._seen += 1
        self._text_len += len(chunk.text)
        self._last = chunk.text
        return out

    def finish(self, t_end: float) -> list[Chunk]:
        if self._json is not None:
            return []  # after the object's end it would make the answer invalid JSON
        return [] if self.offset is not None else self._pieces(t_end, following="")

    def _pieces(self, t: float, following: str) -> list[Chunk]:
        text = self.plant.text
        if self._json is not None:
            text = json.dumps(text)[1:-1]
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


class GuardRun:
    """One streamed call fanned out to every chosen strategy as its chunks arrive.

    The call runs on one worker thread (timestamps taken there); a second worker applies the
    plant and feeds the strategies, which validate on it. Renderers read `traces()` at any
    moment: each strategy's display timeline so far, as a Trace with `guard` set.
    """

    def __init__(self, endpoint, prompt: str, params: Params, validators: Sequence[Validator],
                 strategies: Sequence[str], options: GuardOptions | None = None,
                 plant: Plant | None = None, clock: Callable[[], float] = time.perf_counter,
                 check_thoughts: bool = False, structure: Structure | None = None):
        check_request(prompt, params)
        names = check_strategies(strategies)
        if not validators:
            raise InvalidInput("Pick at least one validator: " + ", ".join(VALIDATORS) + ".")
        if "field" in names and structure is None:
            raise InvalidInput("The field strategy needs a structured answer: pick a schema "
                               "(the Structured report preset), or leave the strategy out.")
        warm_up()
        self.run_id = uuid.uuid4().hex
        self.call = Call(endpoint, prompt, params, "streaming", source="guardrails",
                         race_id=self.run_id, structure=structure)
        self.checker = Checker(validators, clock)
        if structure is not None:
            options = dataclasses.replace(options or GuardOptions(), model=structure.model)
        self.lanes = [ALL_STRATEGIES[name](self.checker, options) for name in names]
        self._lane_ids = [uuid.uuid4().hex for _ in self.lanes]
        self.plant = plant
        self.planter = Planter(plant, structured=structure is not None) if plant else None
        self.check_thoughts = check_thoughts
        """A reasoning model's thoughts are validated (and shown) like answer text; by default
        the strategies see the answer only, and the thoughts are kept beside it."""
        self.chunks: list[Chunk] = []
        """The stream the strategies see: the call's chunks, with the plant's."""
        self.thoughts: list[Chunk] = []
        """Thought chunks the strategies did not see (without `check_thoughts`)."""
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
                    call.progress.wait_for(
                        lambda: len(trace.chunks) > seen or trace.done)  # noqa: B023 - now
                    new, ended = trace.chunks[seen:], trace.done
                seen += len(new)
                for chunk in new:
                    if chunk.thought and not self.check_thoughts:
                        self.thoughts.append(chunk)
                        continue
                    chunk = Chunk(chunk.t, chunk.text)  # what the strategies show is their text
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
            keys = [self.call.endpoint.api_key] + [
                getattr(v, "_key", None) for v in self.checker.validators
            ]
            self.error = StreamRaceError(
                f"The guardrails stopped: {type(exc).__name__}: "
                f"{redact(str(exc), [k for k in keys if k])}"
            )
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
        # On an Event, not Thread.join (see lib.race.Race.join: an interrupted Thread.join can
        # make the next one return early on CPython 3.11, and the rows be logged unfinished).
        deadline = None if timeout is None else time.monotonic() + timeout
        self._finished.wait(timeout)
        self.call.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
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
        # Thoughts beside the guarded answer, in time order (stable: the plant keeps its place).
        chunks = sorted([*self.thoughts, *self.chunks], key=lambda chunk: chunk.t)
        status, error, kind = base.status, base.error, base.error_kind
        if self.error is not None:
            status, error, kind = "error", self.error.message, self.error.kind
        extra = {"plant_at_chunk": self.plant.at_chunk} if self.plant else {}
        # A plant that found no place (a structured answer shorter than its position) is none.
        planted = self.plant.text if self.plant and self.planter and (
            self.planter.offset is not None or not base.done) else None
        return [
            dataclasses.replace(
                base,
                run_id=run_id,
                chunks=chunks,
                status=status,
                error=error,
                error_kind=kind,
                guard=lane.guarded(self.violations, planted, **extra),
            )
            for lane, run_id in zip(self.lanes, self._lane_ids)
        ]


def run_headless(
    endpoint,
    prompt: str,
    params: Params,
    validators: Sequence[Validator],
    strategies: Sequence[str],
    options: GuardOptions | None = None,
    plant: Plant | None = None,
    store: Log | None = None,
    timeout_s: float | None = None,
    check_thoughts: bool = False,
    structure: Structure | None = None,
) -> list[Trace]:
    """One guardrails run without a renderer; logs one row per strategy; returns them."""
    run = GuardRun(endpoint, prompt, params, validators, strategies, options, plant,
                   check_thoughts=check_thoughts, structure=structure)
    return runs.run_logged(run, run.traces, store, timeout_s)


TABLE_FIELDS = [
    "strategy",
    "status",
    "perceived_s",
    "delivered_ttft_s",
    "guard_e2e_s",
    "exposure_chars",
    "exposure_s",
    "leaked_chars",
    "retractions",
    "validation_s",
]
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
    schema: str | None = None
    """A shipped schema (lib.structured.SCHEMAS): the generation is that object, and the
    `field` strategy joins the others."""


PRESETS = (
    # Gemma 3 270M (a base model) repeats contact details given in the prompt, and invents more
    # (checked on the embedded model, llama-server: seed 42 invents info@example.com within its
    # 60 tokens). It is the pattern of a support bot leaking its context.
    GuardPreset(
        "Contact details (PII)",
        "In one sentence: the support e-mail is help@example.com and the phone number is "
        "555-0142. How do I reach support?",
        60,
        ("pii",),
        False,
    ),
    GuardPreset(
        "Planted violation in a long answer",
        "Write a report of about 150 words on why streaming responses improve the user "
        "experience of chat applications.",
        160,
        ("pii", "banned"),
        True,
    ),
    GuardPreset(
        "Structured output (JSON)",
        'Reply with JSON only, like {"name": "...", "email": "..."}, for Jane Doe, whose '
        "e-mail is jane.doe@example.com.",
        60,
        ("json_schema", "pii"),
        False,
    ),
    GuardPreset("Structured report (field by field)", PROMPTS["report"], 400, ("pii",), False,
                "report"),
)


DEFAULT_PLANT = "call me at 555-0100"
