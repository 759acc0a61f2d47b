"""A `Recording`: a logged run's chunk timeline (offsets after t0, texts) with its usage.

Saved by name in the run log's database (lib.storage.recordings) and exported/imported as
versioned JSON; this module owns that format and its checks.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from lib.core.errors import InvalidInput
from lib.core.trace import MODES, Mode

FORMAT = "streamrace-recording"


VERSION = 1
"""The export format's version: a file of any other version is refused, never guessed at."""


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


MAX_FILE_BYTES = 20_000_000


MAX_CHUNKS = 200_000

SYNTHETIC = "synthetic"
"""The model name of synthetic profiles: no recording may take it."""


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
               "prompt", "source_run_ids", "timeline", "blocking_at_s", "usage", "exported_by"}
"""`exported_by`: who exported the file, when sign-in was on (read, and not kept)."""


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


def dumps(recording: Recording, exported_by: str | None = None) -> str:
    """Export JSON: one key a line, one chunk a line (diffable, and readable in an editor);
    with who exported it (sign-in on) after its creation time."""
    items = list(to_dict(recording).items())
    if exported_by is not None:
        items.insert(4, ("exported_by", exported_by))
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


def is_number(value) -> bool:
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
    offsets: list[float] = []
    texts: list[str] = []
    for index, pair in enumerate(timeline):
        at = f"{where}[{index}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise _bad(f"{at} must be a [seconds, text] pair, not {json.dumps(pair)[:60]}")
        offset, text = pair
        if not is_number(offset):
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
    if blocking_at is not None and (not is_number(blocking_at) or blocking_at < 0):
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


def now_iso() -> str:
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
        # A recording replays the answer: a reasoning run's thought chunks are left out.
        entries = [e for e in json.loads(timeline) if not (isinstance(e, list) and len(e) == 3
                                                           and e[2] == "thought")]
        offsets, texts = check_timeline(entries)
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
        created_at=now_iso(),
    )
