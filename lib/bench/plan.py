"""What a benchmark sends and when: its settings, the order of requests, the arrival times.

Pure functions: nothing here sends or waits.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Sequence

from lib.bench.prompts import BenchPrompt, PromptSet
from lib.core.calls import MAX_TOKENS_LIMIT, check_request
from lib.core.errors import InvalidInput
from lib.core.metrics import Slo
from lib.core.structured import Structure
from lib.core.trace import MODES, Mode, Params, Trace
from lib.endpoints import Endpoint
from lib.serving.embedded import SLOTS

MAX_REQUESTS = 100_000


MAX_CONCURRENCY = 1024


MAX_WORKERS = 64
"""Ray workers of one benchmark (each a process with its own clients)."""


@dataclass(frozen=True)
class BenchSettings:
    """What to send, how hard, for how long. `check()` refuses absurd values before anything
    is sent."""

    prompts: PromptSet
    modes: tuple[Mode, ...] = MODES
    requests: int = 20
    """Measured requests, all modes together (the prompt × mode pairs are cycled)."""
    concurrency: int | None = 1
    """At most this many in flight; None (only with a rate): MAX_CONCURRENCY, one thread each."""
    rate: float | None = None
    """Requests per second; None: each as soon as a slot frees."""
    poisson: bool = False
    seed: int = 0
    """Seeds the Poisson arrivals."""
    warmup: int = 0
    deadline_s: float | None = None
    max_tokens: int | None = None
    """For every prompt without its own limit; None: the prompt set's default."""
    slo: Slo = Slo()
    structure: Structure | None = None
    """Ask every call for this object (a structured benchmark); None: free text."""
    workers: int = 0
    """0: every request is sent from this process; N: from N Ray actors (lib.bench.workers),
    each with its share of the concurrency (or of the schedule) and its own clients."""

    def check(self) -> "BenchSettings":
        if (
            not self.modes
            or any(m not in MODES for m in self.modes)
            or len(set(self.modes)) < len(self.modes)
        ):
            raise InvalidInput("Choose the modes to benchmark: blocking, streaming, or both.")
        if not 1 <= self.requests <= MAX_REQUESTS:
            raise InvalidInput(f"The number of requests must be between 1 and {MAX_REQUESTS:,}.")
        if self.concurrency is None and self.rate is None:
            raise InvalidInput("Give a concurrency, a request rate, or both.")
        if self.concurrency is not None and not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise InvalidInput(f"Concurrency must be between 1 and {MAX_CONCURRENCY:,}.")
        if self.rate is not None and not 0 < self.rate <= 10_000:
            raise InvalidInput("The request rate must be above 0 and at most 10,000 per second.")
        if not 0 <= self.warmup <= MAX_REQUESTS:
            raise InvalidInput(f"Warm-up requests must be between 0 and {MAX_REQUESTS:,}.")
        if self.deadline_s is not None and not 0.1 <= self.deadline_s <= 7 * 86400:
            raise InvalidInput("The deadline must be between 0.1 s and a week.")
        if self.max_tokens is not None and not 1 <= self.max_tokens <= MAX_TOKENS_LIMIT:
            raise InvalidInput(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT:,}.")
        if not 0 <= self.workers <= MAX_WORKERS:
            raise InvalidInput(f"The number of workers must be between 0 (this process) and "
                               f"{MAX_WORKERS}.")
        if self.workers and self.concurrency is not None and self.concurrency < self.workers:
            raise InvalidInput(f"{self.workers} workers need a concurrency of at least "
                               f"{self.workers}: each worker keeps its share of it in flight.")
        if self.slo.ttft_s <= 0 or self.slo.icl_p99_s <= 0:
            raise InvalidInput("The SLO limits must be above 0 ms.")
        return self

    def as_dict(self) -> dict:
        """For the run log and the summary JSON: the prompt set by name, not its text."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update(
            prompts=self.prompts.name,
            prompt_count=len(self.prompts.prompts),
            modes=list(self.modes),
            slo=dataclasses.asdict(self.slo),
            structure=None if self.structure is None else {
                "schema": self.structure.name, "mode": self.structure.mode},
        )
        return values


def plan(settings: BenchSettings, count: int) -> list[tuple[BenchPrompt, Mode]]:
    """The first `count` requests of the suite: each prompt in every mode, one after the other
    (so both modes of a prompt meet the same load), the prompt set cycled."""
    pairs = [(prompt, mode) for prompt in settings.prompts.prompts for mode in settings.modes]
    return [pairs[i % len(pairs)] for i in range(count)]


def arrival_offsets(count: int, rate: float, poisson: bool, seed: int) -> list[float]:
    """When each request is due, in seconds after the phase begins: the first at 0, then every
    1/rate (constant) or after exponential gaps of mean 1/rate (Poisson, seeded: the same
    seed gives the same schedule)."""
    if not poisson:
        return [i / rate for i in range(count)]
    draw = random.Random(seed)
    offsets, t = [], 0.0
    for i in range(count):
        if i:
            t += draw.expovariate(rate)
        offsets.append(t)
    return offsets


def split(total: int, parts: int) -> list[int]:
    """`total` in `parts` shares as equal as can be, the larger first: 5 in 2 is [3, 2]."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def deal(count: int, weights: Sequence[int]) -> list[list[int]]:
    """Request indices 0..count-1 dealt to workers in proportion to their weights (their share
    of the concurrency), in order: each next request goes to the worker furthest below its
    share, so every worker's requests are spread over the whole plan (and its schedule)."""
    hands: list[list[int]] = [[] for _ in weights]
    for index in range(count):
        worker = min(range(len(weights)),
                     key=lambda w: (len(hands[w]) + 1) / weights[w] if weights[w] else 1e18)
        hands[worker].append(index)
    return hands


def token_limit(settings: BenchSettings, prompt: BenchPrompt) -> int:
    """max_tokens of a request: the prompt's own, else the benchmark's, else the set's."""
    return prompt.max_tokens or settings.max_tokens or settings.prompts.max_tokens


def suite_params(settings: BenchSettings, base: Params) -> dict[int, Params]:
    """The request parameters per token limit, every prompt checked with its own
    (InvalidInput before anything is sent)."""
    params: dict[int, Params] = {}
    for number, prompt in enumerate(settings.prompts.prompts, 1):
        limit = token_limit(settings, prompt)
        params.setdefault(limit, dataclasses.replace(base, max_tokens=limit))
        try:
            check_request(prompt.prompt, params[limit])
        except InvalidInput as error:
            raise InvalidInput(
                f"Prompt {number} of {settings.prompts.name}: {error.message}"
            ) from None
    return params


def measured_span(traces: Sequence[Trace]) -> float | None:
    """The measured phase's duration, the denominator of every throughput.
    Formula: max(t_end) − min(t_start) over the measured calls; None without any."""
    measured = [
        t
        for t in traces
        if t.bench_phase == "measured" and t.t_start is not None and t.t_end is not None
    ]
    if not measured:
        return None
    return max(t.t_end for t in measured) - min(t.t_start for t in measured)


def lane_note(endpoint: Endpoint, settings: BenchSettings) -> str | None:
    """What the user must know about the embedded model's server under load."""
    if endpoint.kind != "local":
        return None
    note = (f"Embedded model: one llama-server decodes up to {SLOTS} requests at once, sharing "
            "this machine's cores: the more run together, the slower each one.")
    if settings.rate is None and settings.concurrency <= SLOTS:
        return note
    return note + (f" Beyond {SLOTS} in flight, requests wait in the server's queue, and that "
                   "wait shows in TTFT: real server queueing, not client queueing (which is "
                   "client_s / queue_s).")