"""What-if transforms and synthetic profiles: pure functions from a Recording to a playback Script.

The model name a client asks for says everything the replay server plays (`Spec`), so any
process serving the same database plays the same thing, and every run-log row says what it
measured.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

from lib.core.errors import InvalidInput
from lib.serving.playback import Script
from lib.storage.recording import SYNTHETIC, Recording, check_name, is_number, now_iso

"""The model name's prefix for synthetic profiles (so no recording may be called that)."""


BUILTIN_TEXT = (
    "Streaming shows the first words while the rest of the answer is still being written. "
    "The reader starts at once, instead of staring at a blank screen until the whole answer "
    "is ready. Users leave after one to three seconds of nothing; a streamed answer shows "
    "its first words within a few hundred milliseconds, and keeps the reader busy while the "
    "model works. The catch is that streamed text reaches the screen before it can be "
    "checked as a whole, so validation has to run on the fly or after the fact. "
)
"""What a synthetic profile plays when no recording lends it its text."""


def _check_range(label: str, value, low: float, high: float, integer: bool = False) -> None:
    wrong_kind = integer and not isinstance(value, int)
    if not is_number(value) or not low <= value <= high or wrong_kind:
        kind = "a whole number" if integer else "a number"
        raise InvalidInput(f"{label} must be {kind} between {low:g} and {high:g} (got {value}).")


@dataclass(frozen=True)
class Transform:
    """What-if changes to a recorded timeline, applied in the order of the fields."""

    time_scale: float = 1.0
    """× the time between chunks (the time per token); the first chunk keeps its time, except
    in a one-chunk (blocking) recording, whose whole time is generation."""
    max_tokens_per_s: float | None = None
    """A cap: no chunk follows the previous sooner than its tokens allow at this rate."""
    jitter_s: float = 0.0
    """Each gap (the first included) changes by a uniform draw in ±jitter_s, never below 0."""
    seed: int = 0
    """The jitter's random seed: the same seed, the same timeline."""
    stall_s: float = 0.0
    """A pause before the chunk at `stall_at` of the answer (0 = before the first chunk)."""
    stall_at: float = 0.5
    first_chunk_delay_s: float = 0.0
    """Latency added before the first chunk (and so before every chunk)."""

    def __post_init__(self) -> None:
        _check_range("The time-per-token scale", self.time_scale, 0.25, 4.0)
        if self.max_tokens_per_s is not None:
            _check_range("The tokens-per-second cap", self.max_tokens_per_s, 0.1, 100_000)
        _check_range("The jitter", self.jitter_s, 0.0, 10.0)
        _check_range("The seed", self.seed, 0, 2**31 - 1, integer=True)
        _check_range("The stall", self.stall_s, 0.0, 600.0)
        _check_range("The stall's position", self.stall_at, 0.0, 1.0)
        _check_range("The first-chunk delay", self.first_chunk_delay_s, 0.0, 600.0)

    def changes(self) -> dict:
        """The fields that change the timeline, in the order they apply; the seed goes with
        a jitter and the position with a stall, never alone."""
        attached = {"seed": self.jitter_s, "stall_at": self.stall_s}
        return {f.name: getattr(self, f.name) for f in fields(self)
                if (attached[f.name] if f.name in attached else getattr(self, f.name) != f.default)}

    @property
    def is_identity(self) -> bool:
        return not self.changes()


def scale_time_per_token(offsets: tuple[float, ...], factor: float) -> tuple[float, ...]:
    """Gaps after the first chunk × factor.

    Formula: o'(0) = o(0); o'(i) = o'(i−1) + f·(o(i) − o(i−1)); one chunk: o'(0) = f·o(0).
    """
    if len(offsets) == 1:
        return (offsets[0] * factor,)
    out = [offsets[0]]
    for earlier, later in zip(offsets, offsets[1:]):
        out.append(out[-1] + factor * (later - earlier))
    return tuple(out)


def cap_tokens_per_s(offsets: tuple[float, ...], tokens: float, cap: float) -> tuple[float, ...]:
    """No chunk sooner than its tokens allow at `cap` tokens/s (`tokens` in the whole answer,
    spread evenly over the chunks). Formula: gap'(i) = max(gap(i), tokens per chunk / cap),
    i ≥ 1; one chunk: o'(0) = max(o(0), tokens / cap)."""
    if len(offsets) == 1:
        return (max(offsets[0], tokens / cap),)
    least = tokens / len(offsets) / cap
    out = [offsets[0]]
    for earlier, later in zip(offsets, offsets[1:]):
        out.append(out[-1] + max(later - earlier, least))
    return tuple(out)


def add_jitter(offsets: tuple[float, ...], jitter_s: float, seed: int) -> tuple[float, ...]:
    """Each gap (o(0) included) + Uniform(−jitter_s, +jitter_s), never below 0; seeded."""
    rng = random.Random(seed)
    out, previous, shifted = [], 0.0, 0.0
    for offset in offsets:
        gap = max(0.0, offset - previous + rng.uniform(-jitter_s, jitter_s))
        previous = offset
        shifted += gap
        out.append(shifted)
    return tuple(out)


def add_stall(offsets: tuple[float, ...], stall_s: float, at: float) -> tuple[float, ...]:
    """A pause of stall_s before chunk round(at × (n − 1)) and so every later one."""
    index = round(at * (len(offsets) - 1))
    return tuple(o + (stall_s if i >= index else 0.0) for i, o in enumerate(offsets))


def add_first_chunk_latency(offsets: tuple[float, ...], delay_s: float) -> tuple[float, ...]:
    """Everything delay_s later: the first chunk waits, the rest follow it."""
    return tuple(o + delay_s for o in offsets)


def answer_tokens(recording: Recording) -> float:
    """The answer's tokens: the recorded count, else one a chunk (a blocking answer: chars / 4)."""
    if recording.output_tokens:
        return recording.output_tokens
    if recording.mode == "streaming":
        return len(recording.offsets)
    return math.ceil(len(recording.text) / 4)


def play(recording: Recording, transform: Transform = Transform()) -> Script:
    """The playback Script of a recording under a transform (identity: exactly as recorded).

    A blocking request is answered when the transformed generation ends, keeping the recorded
    blocking run's lead or lag over the stream's last chunk.
    """
    offsets = recording.offsets
    t = transform
    if t.time_scale != 1.0:
        offsets = scale_time_per_token(offsets, t.time_scale)
    if t.max_tokens_per_s is not None:
        offsets = cap_tokens_per_s(offsets, answer_tokens(recording), t.max_tokens_per_s)
    if t.jitter_s:
        offsets = add_jitter(offsets, t.jitter_s, t.seed)
    if t.stall_s:
        offsets = add_stall(offsets, t.stall_s, t.stall_at)
    if t.first_chunk_delay_s:
        offsets = add_first_chunk_latency(offsets, t.first_chunk_delay_s)
    blocking_at = recording.blocking_at_s
    if blocking_at is not None:
        blocking_at = max(0.0, blocking_at + (offsets[-1] - recording.offsets[-1]))
    server_usage = recording.token_source == "server"
    return Script(offsets=offsets, texts=recording.texts, usage=server_usage,
                  blocking_at_s=blocking_at,
                  output_tokens=recording.output_tokens if server_usage else None,
                  input_tokens=recording.input_tokens if server_usage else None)


@dataclass(frozen=True)
class Profile:
    """A timeline with no recording behind it: first chunk, rate, jitter, length."""

    ttft_s: float = 0.5
    tokens_per_s: float = 30.0
    tokens: int = 200
    jitter_s: float = 0.0
    seed: int = 0
    text: str | None = None
    """The recording whose text is played (its chunks, cycled); None: the built-in text."""

    def __post_init__(self) -> None:
        _check_range("The time to first token", self.ttft_s, 0.0, 600.0)
        _check_range("The tokens per second", self.tokens_per_s, 0.1, 100_000)
        _check_range("The answer length in tokens", self.tokens, 1, 32_768, integer=True)
        _check_range("The jitter", self.jitter_s, 0.0, 10.0)
        _check_range("The seed", self.seed, 0, 2**31 - 1, integer=True)
        if self.text is not None:
            check_name(self.text)


def builtin_pieces() -> tuple[str, ...]:
    """The built-in text in word-sized pieces, each with its leading space (one token each)."""
    return tuple(re.findall(r"\s*\S+", BUILTIN_TEXT))


def synthesize(profile: Profile, pieces: tuple[str, ...]) -> Recording:
    """A regular timeline of `profile.tokens` pieces (cycled): the first at ttft_s, then one
    every 1/tokens_per_s; jittered by the same function as a recording."""
    n = profile.tokens
    offsets = tuple(profile.ttft_s + i / profile.tokens_per_s for i in range(n))
    if profile.jitter_s:
        offsets = add_jitter(offsets, profile.jitter_s, profile.seed)
    texts = tuple(pieces[i % len(pieces)] for i in range(n))
    return Recording(name=SYNTHETIC, offsets=offsets, texts=texts, output_tokens=n,
                     token_source="server", endpoint_kind="replay", created_at=now_iso())


_TRANSFORM_KEYS = {"delay": "first_chunk_delay_s", "scale": "time_scale", "cap": "max_tokens_per_s",
                   "jitter": "jitter_s", "seed": "seed", "stall": "stall_s", "at": "stall_at"}


_PROFILE_KEYS = {"ttft": "ttft_s", "tps": "tokens_per_s", "tokens": "tokens",
                 "jitter": "jitter_s", "seed": "seed", "text": "text"}


_INTEGER_FIELDS = {"seed", "tokens"}


def _fmt(value) -> str:
    """Exact and short: 2 for 2.0, 0.3 for 0.3 (repr round-trips floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, (int, str)) else repr(value)


@dataclass(frozen=True)
class Spec:
    """What a replay endpoint plays: a recording under a transform, or a synthetic profile."""

    recording: str | None = None
    transform: Transform = field(default_factory=Transform)
    profile: Profile | None = None

    @property
    def source(self) -> str:
        """The run-log source of every call to it."""
        return "simulated" if self.profile is not None else "replay"

    @property
    def model(self) -> str:
        """The model name that asks a replay server for exactly this."""
        if self.profile is not None:
            p = self.profile
            parts = [f"ttft={_fmt(p.ttft_s)}", f"tps={_fmt(p.tokens_per_s)}", f"tokens={p.tokens}"]
            if p.jitter_s:
                parts += [f"jitter={_fmt(p.jitter_s)}", f"seed={p.seed}"]
            if p.text is not None:
                parts.append(f"text={p.text}")
            return f"{SYNTHETIC}~" + ",".join(parts)
        changes = self.transform.changes()
        if not changes:
            return self.recording or ""
        return f"{self.recording}~" + ",".join(
            f"{key}={_fmt(changes[name])}"
            for key, name in _TRANSFORM_KEYS.items() if name in changes)

    def describe(self) -> dict:
        """The run log's `transform` column: what was played, as JSON-ready data."""
        if self.profile is not None:
            profile = {k: v for k, v in asdict(self.profile).items() if k != "text"}
            return {"profile": profile, "text": self.profile.text or "built-in"}
        described: dict = {"recording": self.recording}
        if not self.transform.is_identity:
            described["transform"] = self.transform.changes()
        return described

    def recording_for(self, recordings: Mapping[str, "Recording"]) -> Recording:
        """The recording it plays (a synthetic profile's is made here, from its text)."""
        if self.profile is None:
            return lookup(recordings, self.recording or "")
        text = self.profile.text
        pieces = lookup(recordings, text).texts if text else builtin_pieces()
        return synthesize(self.profile, pieces)

    def script(self, recordings: Mapping[str, Recording]) -> Script:
        transform = self.transform if self.profile is None else Transform()
        return play(self.recording_for(recordings), transform)


def lookup(recordings: Mapping[str, Recording], name: str) -> Recording:
    try:
        return recordings[name]
    except KeyError:
        raise InvalidInput(
            f"There is no recording named '{name}'. Save one on the 🎞️ Replay page, or import "
            "a file (python -m lib.replay import FILE).") from None


def parse_model(model: str) -> Spec:
    """The Spec a model name asks for; InvalidInput says what is wrong with the name."""
    model = (model or "").strip()
    if not model:
        raise InvalidInput("Choose a recording to replay (save one on the 🎞️ Replay page).")
    name, sep, rest = model.partition("~")
    values: dict = {}
    keys = _PROFILE_KEYS if name == SYNTHETIC else _TRANSFORM_KEYS
    for part in rest.split(",") if sep else ():
        key, eq, raw = part.partition("=")
        if not eq or key not in keys:
            allowed = ", ".join(keys)
            raise InvalidInput(f"In the replay model '{model}', '{part}' is not one of "
                               f"{allowed} followed by =value.")
        target = keys[key]
        if target == "text":
            values[target] = raw
            continue
        integer = target in _INTEGER_FIELDS
        try:
            values[target] = int(raw) if integer else float(raw)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise InvalidInput(f"In the replay model '{model}', {key} must be {kind}, "
                               f"not '{raw}'.") from None
    if name == SYNTHETIC:
        if not {"ttft_s", "tokens_per_s", "tokens"} <= values.keys():
            raise InvalidInput(f"The synthetic profile '{model}' needs ttft, tps and tokens, "
                               "e.g. synthetic~ttft=0.4,tps=30,tokens=200.")
        return Spec(profile=Profile(**values))
    return Spec(recording=check_name(name), transform=Transform(**values))


def label(spec: Spec) -> str:
    """The spec in a few words, for people (the sidebar, the race page)."""
    if spec.profile is not None:
        p = spec.profile
        jitter = f", jitter ±{p.jitter_s * 1000:g} ms" if p.jitter_s else ""
        return (f"Synthetic: first token at {p.ttft_s * 1000:g} ms, {p.tokens_per_s:g} tok/s, "
                f"{p.tokens} tokens{jitter}, "
                + (f"text of '{p.text}'" if p.text else "built-in text"))
    t = spec.transform
    parts = [f"'{spec.recording}'"]
    if t.first_chunk_delay_s:
        parts.append(f"first chunk +{t.first_chunk_delay_s * 1000:g} ms")
    if t.time_scale != 1:
        parts.append(f"time per token ×{t.time_scale:g}")
    if t.max_tokens_per_s is not None:
        parts.append(f"≤ {t.max_tokens_per_s:g} tok/s")
    if t.jitter_s:
        parts.append(f"jitter ±{t.jitter_s * 1000:g} ms (seed {t.seed})")
    if t.stall_s:
        parts.append(f"{t.stall_s:g} s stall at {t.stall_at:.0%}")
    return " · ".join(parts) if len(parts) > 1 else f"{parts[0]} as recorded"


def describe_run(source: str, transform: str | None) -> str | None:
    """One line for a run that is not live (the race page's outcome), None for a live run."""
    if source not in ("replay", "simulated"):
        return None
    try:
        data = json.loads(transform or "{}")
    except json.JSONDecodeError:
        data = {}
    what = ("simulated" if source == "simulated"
            else f"replayed from the recording '{data.get('recording')}'")
    if source == "replay" and data.get("transform"):
        what += " with a what-if transform"
    return f"This race was {what}: not a live measurement, and kept out of live statistics."
