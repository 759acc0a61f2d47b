"""Record and replay, and what-if: logged runs played back by a real OpenAI-compatible server.

A `Recording` is a logged run's chunk timeline (offsets after t0, texts) with its usage,
saved by name in the run log's database and exported/imported as versioned JSON. The
replay server (`ReplayServer`, a `lib.playback.PlaybackServer`) re-emits it at its offsets,
streaming or blocking; because it is a real HTTP endpoint (`endpoint_kind = replay`), the
race, the benchmark and the guardrails lab measure it through the real network and client
path. What-if `Transform`s and synthetic `Profile`s are pure functions to a playback Script.

The model name a client asks for says everything the server plays, so any process serving
the same database plays the same thing, and every run-log row says what it measured:

    demo                                 recording "demo" as recorded
    demo~delay=0.3,scale=2               first chunk 300 ms later, time per token x2
    demo~cap=20,jitter=0.01,seed=7       at most 20 tokens/s, each gap +-10 ms (seeded)
    demo~stall=1.5,at=0.5                a 1.5 s stall half-way through the answer
    synthetic~ttft=0.4,tps=30,tokens=200,text=demo   a synthetic profile (text of "demo")

    python -m lib.replay serve --port 8600 [--recording NAME | --file F] [--scale 2 ...]
    python -m lib.replay list | save NAME RUN_ID [RUN_ID] | export NAME --out F | import F
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import httpx
import sqlalchemy as sa

from lib.config import default_data_dir, load_settings
from lib.serving.process import free_port, stop_process
from lib.endpoints import Endpoint
from lib.errors import EndpointUnreachable, InvalidInput, StreamRaceError
from lib.playback import PlaybackServer, Script
from lib import metrics
from lib.store import Store, default_url
from lib.trace import MODES, Chunk, Mode, Params, Request, Trace

FORMAT = "streamrace-recording"
VERSION = 1
"""The export format's version: a file of any other version is refused, never guessed at."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
SYNTHETIC = "synthetic"
"""The model name's prefix for synthetic profiles (so no recording may be called that)."""
MAX_FILE_BYTES = 20_000_000
MAX_CHUNKS = 200_000
BUILTIN_TEXT = (
    "Streaming shows the first words while the rest of the answer is still being written. "
    "The reader starts at once, instead of staring at a blank screen until the whole answer "
    "is ready. Users leave after one to three seconds of nothing; a streamed answer shows "
    "its first words within a few hundred milliseconds, and keeps the reader busy while the "
    "model works. The catch is that streamed text reaches the screen before it can be "
    "checked as a whole, so validation has to run on the fly or after the fact. "
)
"""What a synthetic profile plays when no recording lends it its text."""


def _bad(problem: str) -> InvalidInput:
    return InvalidInput(f"Not a usable recording: {problem}.")


def check_name(name: str) -> str:
    """The name, or InvalidInput saying what a recording name may be."""
    name = (name or "").strip()
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"'{name}' is not a usable recording name: use 1 to 64 letters, digits, '-', '_' "
            "or '.', starting with a letter or digit (e.g. demo-report-1).")
    if name == SYNTHETIC:
        raise InvalidInput(f"'{SYNTHETIC}' is reserved for synthetic profiles: pick another name.")
    return name


# -- the recording ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """A run's chunk timeline, as recorded, with what is needed to replay and explain it."""

    name: str
    offsets: tuple[float, ...]
    """Seconds after the request left (t0) at which each chunk arrived; never decreasing."""
    texts: tuple[str, ...]
    mode: Mode = "streaming"
    """A blocking recording is one chunk: the whole answer at its recorded time."""
    blocking_at_s: float | None = None
    """When a recorded blocking run of the same request got its answer (a race's other row);
    None: a blocking request is answered with the last chunk, when generation ended."""
    output_tokens: int | None = None
    input_tokens: int | None = None
    token_source: str | None = None
    """`server`: the usage is replayed; `estimated`: none is sent, so the replay estimates
    exactly as the recorded run did."""
    model: str = ""
    endpoint_kind: str = ""
    prompt: str = ""
    source_run_ids: tuple[str, ...] = ()
    created_at: str = ""

    @property
    def text(self) -> str:
        return "".join(self.texts)

    @property
    def timeline(self) -> list[list]:
        return [[offset, text] for offset, text in zip(self.offsets, self.texts)]


_TOP_FIELDS = {"format", "version", "name", "created_at", "mode", "model", "endpoint_kind",
               "prompt", "source_run_ids", "timeline", "blocking_at_s", "usage"}
_USAGE_FIELDS = {"output_tokens", "input_tokens", "token_source"}
TOKEN_SOURCES = ("server", "estimated")


def to_dict(recording: Recording) -> dict:
    """The recording in its export format (keys in a stable, readable order)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": recording.name,
        "created_at": recording.created_at,
        "mode": recording.mode,
        "model": recording.model,
        "endpoint_kind": recording.endpoint_kind,
        "prompt": recording.prompt,
        "source_run_ids": list(recording.source_run_ids),
        "blocking_at_s": recording.blocking_at_s,
        "usage": {"output_tokens": recording.output_tokens,
                  "input_tokens": recording.input_tokens,
                  "token_source": recording.token_source},
        "timeline": recording.timeline,
    }


def dumps(recording: Recording) -> str:
    """Export JSON: one key a line, one chunk a line (diffable, and readable in an editor)."""
    items = list(to_dict(recording).items())
    lines = []
    for key, value in items:
        if key == "timeline":
            chunks = ",\n".join("    " + json.dumps(pair, ensure_ascii=False) for pair in value)
            text = "[\n" + chunks + "\n  ]" if value else "[]"
        else:
            text = json.dumps(value, ensure_ascii=False)
        lines.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def loads(data: bytes | str) -> Recording:
    """A recording from export JSON, strictly checked: InvalidInput names the problem."""
    if isinstance(data, bytes):
        if len(data) > MAX_FILE_BYTES:
            raise _bad(f"the file is {len(data):,} bytes; the limit is {MAX_FILE_BYTES:,}")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("the file is not UTF-8 text (is it a JSON export?)") from None
    if not data.strip():
        raise _bad("the file is empty")
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError as exc:
        raise _bad(f"the file is not valid JSON, or it is cut short ({exc.msg} at line "
                   f"{exc.lineno}, column {exc.colno})") from None
    return from_dict(parsed)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad(f"{where} must be a whole number ≥ 0 or null, not {json.dumps(value)}")
    return value


def _text_field(data: dict, key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise _bad(f'"{key}" must be text, not {json.dumps(value)}')
    return value


def check_timeline(timeline, where: str = "timeline") -> tuple[tuple[float, ...], tuple[str, ...]]:
    """Offsets and texts from [[seconds, text], ...]: offsets finite, ≥ 0 and never decreasing."""
    if not isinstance(timeline, list):
        raise _bad(f'"{where}" must be a list of [seconds, text] pairs')
    if not timeline:
        raise _bad(f'"{where}" has no chunks: there is nothing to replay')
    if len(timeline) > MAX_CHUNKS:
        raise _bad(f'"{where}" has {len(timeline):,} chunks; the limit is {MAX_CHUNKS:,}')
    offsets, texts = [], []
    for index, pair in enumerate(timeline):
        at = f"{where}[{index}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise _bad(f"{at} must be a [seconds, text] pair, not {json.dumps(pair)[:60]}")
        offset, text = pair
        if not _is_number(offset):
            raise _bad(f"{at}: the offset must be a number of seconds, not {json.dumps(offset)}")
        if offset < 0:
            raise _bad(f"{at}: the offset {offset:g} s is negative (offsets are seconds after "
                       "the request left)")
        if offsets and offset < offsets[-1]:
            raise _bad(f"{at}: the offset {offset:g} s is before the previous chunk's "
                       f"{offsets[-1]:g} s (offsets must never decrease)")
        if not isinstance(text, str) or not text:
            raise _bad(f"{at}: the text must be non-empty text, not {json.dumps(text)[:60]}")
        offsets.append(float(offset))
        texts.append(text)
    return tuple(offsets), tuple(texts)


def from_dict(data) -> Recording:
    """A recording from its parsed export format; InvalidInput names the first problem."""
    if not isinstance(data, dict):
        raise _bad(f"the file holds a JSON {type(data).__name__}, not a recording object")
    if data.get("format") != FORMAT:
        raise _bad(f'it is not a StreamRace recording (it lacks "format": "{FORMAT}")')
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _bad(f'"version" must be a whole number, not {json.dumps(version)}')
    if version != VERSION:
        newer = " (made by a newer StreamRace)" if version > VERSION else ""
        raise _bad(f"it is format version {version}{newer}; this StreamRace reads version "
                   f"{VERSION}")
    unknown = sorted(set(data) - _TOP_FIELDS)
    if unknown:
        raise _bad(f'unexpected field "{unknown[0]}"')
    for key in ("name", "mode", "timeline"):
        if key not in data:
            raise _bad(f'the field "{key}" is missing')
    name = data["name"]
    if not isinstance(name, str):
        raise _bad(f'"name" must be text, not {json.dumps(name)}')
    try:
        name = check_name(name)
    except InvalidInput as exc:
        raise _bad(exc.message.rstrip(".")) from None
    mode = data["mode"]
    if mode not in MODES:
        raise _bad(f'"mode" must be "streaming" or "blocking", not {json.dumps(mode)}')
    offsets, texts = check_timeline(data["timeline"])
    if mode == "blocking" and len(offsets) != 1:
        raise _bad(f"a blocking recording is one chunk (the whole answer), not {len(offsets)}")
    blocking_at = data.get("blocking_at_s")
    if blocking_at is not None and (not _is_number(blocking_at) or blocking_at < 0):
        raise _bad(f'"blocking_at_s" must be a number of seconds ≥ 0 or null, not '
                   f"{json.dumps(blocking_at)}")
    usage = data.get("usage") or {}
    if not isinstance(usage, dict):
        raise _bad(f'"usage" must be an object, not {json.dumps(usage)}')
    unknown = sorted(set(usage) - _USAGE_FIELDS)
    if unknown:
        raise _bad(f'unexpected field "usage.{unknown[0]}"')
    token_source = usage.get("token_source")
    if token_source not in (*TOKEN_SOURCES, None):
        raise _bad(f'"usage.token_source" must be "server", "estimated" or null, not '
                   f"{json.dumps(token_source)}")
    run_ids = data.get("source_run_ids", [])
    if not isinstance(run_ids, list) or not all(isinstance(r, str) for r in run_ids):
        raise _bad('"source_run_ids" must be a list of run ids (text)')
    return Recording(
        name=name, offsets=offsets, texts=texts, mode=mode,
        blocking_at_s=None if blocking_at is None else float(blocking_at),
        output_tokens=_count(usage.get("output_tokens"), '"usage.output_tokens"'),
        input_tokens=_count(usage.get("input_tokens"), '"usage.input_tokens"'),
        token_source=token_source,
        model=_text_field(data, "model"), endpoint_kind=_text_field(data, "endpoint_kind"),
        prompt=_text_field(data, "prompt"), source_run_ids=tuple(run_ids),
        created_at=_text_field(data, "created_at"),
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _int_or_none(value) -> int | None:
    """A count from a run-log row (pandas turns a missing integer into NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def from_rows(name: str, rows: list[dict]) -> Recording:
    """A recording from run-log rows: one streaming run, or one blocking run, or one of each
    (both rows of a race: the stream's timeline, and the blocking answer's recorded time)."""
    name = check_name(name)
    if not rows:
        raise InvalidInput("Pick a run to record first.")
    by_mode: dict[str, dict] = {}
    for row in rows:
        if row["mode"] in by_mode:
            raise InvalidInput(
                f"Pick one streaming run, optionally with one blocking run (e.g. both rows of "
                f"a race); you picked {sum(r['mode'] == row['mode'] for r in rows)} "
                f"{row['mode']} runs.")
        if row["status"] != "ok":
            raise InvalidInput(
                f"Run {row['run_id'][:8]} ended '{row['status']}': only complete runs can be "
                "recorded.")
        by_mode[row["mode"]] = row
    main = by_mode.get("streaming") or by_mode["blocking"]
    try:
        timeline = main["timeline"] if isinstance(main["timeline"], str) else "[]"
        offsets, texts = check_timeline(json.loads(timeline))
    except (InvalidInput, json.JSONDecodeError) as exc:
        problem = exc.message if isinstance(exc, InvalidInput) else "unreadable JSON"
        raise InvalidInput(f"Run {main['run_id'][:8]} has no usable timeline ({problem})") from None
    blocking_at = None
    if main["mode"] == "streaming" and "blocking" in by_mode:
        blocking_at = by_mode["blocking"]["e2e_s"]
    if main["mode"] == "blocking":  # the whole answer, once, at its recorded time
        offsets, texts = (offsets[-1],), ("".join(texts),)
    return Recording(
        name=name, offsets=offsets, texts=texts, mode=main["mode"],
        blocking_at_s=None if blocking_at is None else float(blocking_at),
        output_tokens=_int_or_none(main["output_tokens"]),
        input_tokens=_int_or_none(main["input_tokens"]),
        token_source=main["token_source"] if main["token_source"] in TOKEN_SOURCES else None,
        model=main["model"], endpoint_kind=main["endpoint_kind"], prompt=main["prompt"],
        source_run_ids=tuple(r["run_id"] for r in (main, *[r for r in rows if r is not main])),
        created_at=_now(),
    )


# -- what-if transforms: pure functions on a timeline ---------------------------------------------


def _check_range(label: str, value, low: float, high: float, integer: bool = False) -> None:
    wrong_kind = integer and not isinstance(value, int)
    if not _is_number(value) or not low <= value <= high or wrong_kind:
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


# -- synthetic profiles ---------------------------------------------------------------------------


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
                     token_source="server", endpoint_kind="replay", created_at=_now())


# -- the model name: what a replay endpoint plays -------------------------------------------------

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


# -- recordings in the run log's database ---------------------------------------------------------


class Recordings(Mapping):
    """The named recordings saved in the run log's database (table `recordings`, m004_replay).

    A mapping name → Recording read on every access: any process sharing the database (the
    app, a `serve` command) sees a recording the moment it is saved.
    """

    def __init__(self, store: Store):
        self.store = store

    def __getitem__(self, name: str) -> Recording:
        with self.store.engine.connect() as conn:
            body = conn.execute(sa.text("SELECT body FROM recordings WHERE name = :n"),
                                {"n": name}).scalar()
        if body is None:
            raise KeyError(name)
        return _stored(name, body)

    def __iter__(self) -> Iterator[str]:
        with self.store.engine.connect() as conn:
            names = conn.execute(sa.text("SELECT name FROM recordings ORDER BY name"))
            return iter([row[0] for row in names])

    def __len__(self) -> int:
        with self.store.engine.connect() as conn:
            return conn.execute(sa.text("SELECT COUNT(*) FROM recordings")).scalar_one()

    def __contains__(self, name) -> bool:
        with self.store.engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1 FROM recordings WHERE name = :n"),
                                {"n": name}).first() is not None

    def all(self) -> list[Recording]:
        """Every recording, newest first."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT name, body FROM recordings ORDER BY created_at DESC, name")).all()
        return [_stored(name, body) for name, body in rows]

    def save(self, recording: Recording, replace: bool = False) -> None:
        """Save under its name; an existing one is replaced only when asked."""
        check_name(recording.name)
        with self.store.engine.begin() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM recordings WHERE name = :n"),
                                  {"n": recording.name}).first() is not None
            if exists and not replace:
                raise InvalidInput(f"A recording named '{recording.name}' already exists: pick "
                                   "another name, or choose to replace it.")
            conn.execute(sa.text("DELETE FROM recordings WHERE name = :n"), {"n": recording.name})
            conn.execute(sa.text("INSERT INTO recordings (name, created_at, body) "
                                 "VALUES (:n, :c, :b)"),
                         {"n": recording.name, "c": recording.created_at or _now(),
                          "b": dumps(recording)})

    def delete(self, name: str) -> bool:
        with self.store.engine.begin() as conn:
            return conn.execute(sa.text("DELETE FROM recordings WHERE name = :n"),
                                {"n": name}).rowcount > 0


def _stored(name: str, body: str) -> Recording:
    try:
        return loads(body)
    except InvalidInput as exc:
        raise InvalidInput(f"The saved recording '{name}' is damaged: {exc.message}") from None


def summary_rows(recordings: list[Recording]) -> list[dict]:
    """One line per recording for a table: what it is, and its timing at a glance."""
    rows = []
    for rec in recordings:
        trace = timeline_trace(play(rec), rec.mode)
        rows.append({
            "name": rec.name, "mode": rec.mode, "chunks": len(rec.offsets),
            "ttft_s": metrics.ttft_s(trace), "e2e_s": metrics.e2e_s(trace),
            "output_tokens": rec.output_tokens, "model": rec.model,
            "created_at": rec.created_at, "prompt": rec.prompt,
        })
    return rows


# -- previews: a timeline as a Trace, so metrics and charts need nothing new -----------------------


def timeline_trace(script: Script, mode: Mode = "streaming") -> Trace:
    """The trace a client would record of `script` on an ideal network: t_start = t0 = 0.

    Streaming, one chunk per text piece at its offset; blocking, the whole answer when the
    blocking response leaves.
    """
    if mode == "streaming":
        chunks = [Chunk(o, t) for o, t in zip(script.offsets, script.texts)]
    else:
        at = script.blocking_at_s if script.blocking_at_s is not None else script.offsets[-1]
        chunks = [Chunk(at, script.text)]
    request = Request("(preview)", Params(), "replay", "", "preview")
    return Trace(request=request, mode=mode, t_start=0.0, t0=0.0, chunks=chunks,
                 t_end=chunks[-1].t, output_tokens=script.output_tokens,
                 input_tokens=script.input_tokens, status="ok")


def preview(spec: Spec, recordings: Mapping[str, Recording]) -> tuple[tuple[Trace, Trace] | None,
                                                                    tuple[Trace, Trace]]:
    """(blocking, streaming) preview traces as recorded and as the spec plays them.

    A synthetic profile has a "recorded" pair only when it borrows a recording's text.
    """
    def pair(script: Script) -> tuple[Trace, Trace]:
        return timeline_trace(script, "blocking"), timeline_trace(script, "streaming")

    what_if = pair(spec.script(recordings))
    if spec.profile is None:
        return pair(play(lookup(recordings, spec.recording or ""))), what_if
    if spec.profile.text:
        return pair(play(lookup(recordings, spec.profile.text))), what_if
    return None, what_if


# -- the server ----------------------------------------------------------------------------------


class ReplayServer(PlaybackServer):
    """An OpenAI-compatible server playing recordings by model name (see the module docstring).

    `recordings` is any mapping name → Recording: the database's (`Recordings`), or a dict.
    A plain recording name gets `transform`; names that ask for a transform get theirs.
    With `default`, a model name that is no recording (a tool with a fixed model name, e.g.
    gpt-4o-mini) gets that recording.
    """

    def __init__(self, recordings: Mapping[str, Recording], *, default: str | None = None,
                 transform: Transform = Transform(), port: int = 0):
        super().__init__({}, port=port)
        self.recordings = recordings
        self.default = default
        self.transform = transform

    def spec_for(self, model: str) -> Spec:
        if self.default is not None and "~" not in model and model not in self.recordings:
            return Spec(recording=self.default, transform=self.transform)
        spec = parse_model(model)
        if spec.profile is None and spec.transform.is_identity:
            spec = replace(spec, transform=self.transform)
        return spec

    def script_for(self, model: str) -> Script:
        try:
            return self.spec_for(model).script(self.recordings)
        except StreamRaceError as exc:
            raise LookupError(exc.message) from None

    def model_names(self) -> list[str]:
        return list(self.recordings)


def endpoint_for(base_url: str, model: str) -> Endpoint:
    """A `replay` endpoint on a replay server: both lanes there, the source and transform
    that its calls are logged with taken from the model name."""
    spec = parse_model(model)
    return Endpoint("replay", spec.model, {mode: base_url for mode in MODES}, None,
                    source=spec.source, transform=json.dumps(spec.describe(), sort_keys=True))


# -- the app's replay server: a process of its own, started once --------------------------------

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0


@dataclass
class _Served:
    database_url: str
    process: subprocess.Popen
    base_url: str
    log_path: Path


_lock = threading.Lock()
_served: _Served | None = None


def ensure_server(database_url: str | None = None) -> str:
    """The base URL of this process's replay server for that database; started on first use.

    A process of its own (like the embedded model): in the app's process, its timing would
    wait on the GIL whenever the page renders, and the replay would not be the recording.
    """
    global _served
    url = database_url or default_url()
    with _lock:
        if _served and _served.database_url == url and _served.process.poll() is None:
            return _served.base_url
        _stop()
        port = free_port()
        log_path = default_data_dir() / f"replay-server-{os.getpid()}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # It needs no key: none is handed to it.
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPENAI_API_KEY", "STREAMRACE_API_KEY")}
        env.update(DATABASE_URL=url, PYTHONUNBUFFERED="1")
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "lib.replay", "serve", "--port", str(port)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        served = _Served(url, process, f"http://127.0.0.1:{port}/v1", log_path)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EndpointUnreachable(
                    f"The replay server exited while starting; see {log_path}.")
            try:
                if httpx.get(f"{served.base_url}/models", timeout=1.0).status_code == 200:
                    _served = served
                    return served.base_url
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling a process that is starting: nothing else to wait on
        process.kill()
        process.wait()
        raise EndpointUnreachable(
            f"The replay server did not answer within {START_TIMEOUT_S:g} s; see {log_path}.")


def _stop() -> None:
    global _served
    if _served is not None:
        stop_process(_served.process)
        _served = None


def stop_server() -> None:
    with _lock:
        _stop()


atexit.register(stop_server)


def served_names(base_url: str) -> list[str]:
    """The recordings a replay server offers (its /v1/models)."""
    try:
        response = httpx.get(f"{base_url}/models", timeout=5.0)
        response.raise_for_status()
        return [model["id"] for model in response.json()["data"]]
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise EndpointUnreachable(
            f"The replay server at {base_url} did not answer ({exc}).") from exc


def endpoint(model: str, database_url: str | None = None) -> Endpoint:
    """The `replay` endpoint for a model name: checked, and its server running."""
    spec = parse_model(model)
    base_url = ensure_server(database_url)
    needed = spec.profile.text if spec.profile is not None else spec.recording
    if needed is not None and needed not in served_names(base_url):
        lookup({}, needed)  # the same message as the server's
    return endpoint_for(base_url, spec.model)


# -- the CLI -------------------------------------------------------------------------------------


def _transform_from(args: argparse.Namespace) -> Transform:
    return Transform(time_scale=args.scale, max_tokens_per_s=args.cap, jitter_s=args.jitter,
                     seed=args.seed, stall_s=args.stall, stall_at=args.stall_at,
                     first_chunk_delay_s=args.delay)


def _serve(args: argparse.Namespace, store_url: str | None) -> int:
    transform = _transform_from(args)
    if args.file:
        recording = loads(_read(args.file))
        recordings: Mapping[str, Recording] = {recording.name: recording}
        default: str | None = recording.name
    else:
        recordings = Recordings(Store(store_url))
        default = args.recording
        if default is not None:
            lookup(recordings, check_name(default))
    server = ReplayServer(recordings, default=default, transform=transform, port=args.port).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    names = ", ".join(server.model_names()) or "(no recordings yet)"
    print(f"replaying on {server.base_url}: {names}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"Cannot read {path}: {exc.strerror}.") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.replay",
                                     description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", help="default: DATABASE_URL or the user's data folder")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:  # noqa: A002
        return commands.add_parser(name, help=help, parents=[common])

    serve = command("serve", "serve recordings on 127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="default: a free port")
    which = serve.add_mutually_exclusive_group()
    which.add_argument("--recording", metavar="NAME", help="answer unknown model names with it")
    which.add_argument("--file", metavar="F", help="serve this exported recording only")
    serve.add_argument("--delay", type=float, default=0.0,
                       help="seconds added before the first chunk")
    serve.add_argument("--scale", type=float, default=1.0, help="time per token x (0.25-4)")
    serve.add_argument("--cap", type=float, default=None, help="at most this many tokens/s")
    serve.add_argument("--jitter", type=float, default=0.0, help="each gap +- up to this (s)")
    serve.add_argument("--seed", type=int, default=0, help="the jitter's seed")
    serve.add_argument("--stall", type=float, default=0.0, help="a pause of this many seconds")
    serve.add_argument("--stall-at", type=float, default=0.5, help="where: 0-1 of the answer")
    command("list", "list the saved recordings")
    save = command("save", "save logged runs as a recording")
    save.add_argument("name")
    save.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    export = command("export", "write a recording to a JSON file")
    export.add_argument("name")
    export.add_argument("--out", required=True, metavar="F")
    load = command("import", "save a recording from a JSON file")
    load.add_argument("file")
    load.add_argument("--name", help="save it under this name instead")
    load.add_argument("--replace", action="store_true", help="replace one of the same name")
    delete = command("delete", "delete a recording")
    delete.add_argument("name")
    args = parser.parse_args(argv)
    store_url = args.database_url or load_settings().database_url
    try:
        if args.command == "serve":
            return _serve(args, store_url)
        recordings = Recordings(Store(store_url))
        if args.command == "list":
            rows = summary_rows(recordings.all())
            for row in rows:
                print(f"{row['name']:<24} {row['mode']:<9} {row['chunks']:>6} chunks  "
                      f"ttft {row['ttft_s']:.3f} s  e2e {row['e2e_s']:.3f} s  {row['model']}")
            if not rows:
                print("no recordings yet")
        elif args.command == "save":
            frame = Store(store_url).runs(args.run_ids)
            missing = set(args.run_ids) - set(frame["run_id"])
            if missing:
                raise InvalidInput(f"No logged run has the id {sorted(missing)[0]}.")
            recording = from_rows(args.name, frame.to_dict("records"))
            recordings.save(recording)
            print(f"saved '{recording.name}': {len(recording.offsets)} chunks")
        elif args.command == "export":
            Path(args.out).write_text(dumps(lookup(recordings, args.name)), encoding="utf-8")
            print(f"wrote {args.out}")
        elif args.command == "import":
            recording = loads(_read(args.file))
            if args.name:
                recording = replace(recording, name=check_name(args.name))
            recordings.save(recording, replace=args.replace)
            print(f"imported '{recording.name}': {len(recording.offsets)} chunks")
        elif args.command == "delete":
            if not recordings.delete(args.name):
                lookup({}, args.name)
            print(f"deleted '{args.name}'")
    except StreamRaceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
