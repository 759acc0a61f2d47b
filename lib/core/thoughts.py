"""Telling a reasoning model's thoughts from its answer, as servers send them.

Servers name the reasoning differently: vLLM, Ollama and OpenRouter send `reasoning`, llama.cpp
and DeepSeek `reasoning_content` (on a streamed delta and on a blocking message alike); some
leave a `<think>…</think>` block inline at the start of `content`. This module is pure: the
decoder that turns these into Mirascope's thought chunks lives in lib.core.seams.
"""

from __future__ import annotations

REASONING_FIELDS = ("reasoning", "reasoning_content")
"""The names servers give the reasoning field, in the order they are looked for."""

OPEN_TAG, CLOSE_TAG = "<think>", "</think>"

EFFORTS = ("default", "off", "low", "medium", "high")
"""Reasoning effort as offered to users: `default` sends nothing (the server's choice);
`off` sends `reasoning_effort: "none"` (OpenAI, Ollama); the others are sent as they are."""


def effort_value(effort: str | None) -> str | None:
    """The `reasoning_effort` value sent for a user's choice; None: do not send the field."""
    if effort in (None, "", "default"):
        return None
    if effort not in EFFORTS:
        raise ValueError(f"reasoning effort must be one of {', '.join(EFFORTS)}")
    return "none" if effort == "off" else effort


def reasoning_of(part: object) -> str:
    """The reasoning text a delta or message carries in either field name ("" if none).

    The openai SDK has no such field: the server's extra keys are kept as pydantic extras.
    Both fields are read, so nothing is lost if a server fills both."""
    extra = getattr(part, "model_extra", None) or {}
    # Declared fields from __dict__, not getattr: on a pydantic model a missing name costs a
    # raised and caught AttributeError, twice a streamed chunk.
    fields = getattr(part, "__dict__", None) or {}
    texts = [extra.get(name) or fields.get(name) for name in REASONING_FIELDS]
    return "".join(text for text in texts if isinstance(text, str))


class InlineThink:
    """Splits `content` deltas into (thought, answer) when the answer opens with `<think>`.

    Only a *leading* block counts (after optional whitespace): `<think>` later in an answer is
    the answer's own text. A tag split across deltas is held back until it can be told apart,
    so a delta's text may come out one delta later; whitespace right after `</think>` is not
    part of the answer (the answer starts at its first visible character).
    """

    def __init__(self) -> None:
        self._state = "start"  # start → thinking → answer (or start → answer)
        self._held = ""

    def feed(self, text: str) -> tuple[str, str]:
        """The thought and the answer text this delta completes (either may be "")."""
        self._held += text
        thought = answer = ""
        while self._held:
            if self._state == "start":
                stripped = self._held.lstrip()
                if stripped.startswith(OPEN_TAG):
                    self._held = stripped[len(OPEN_TAG):]
                    self._state = "thinking"
                elif OPEN_TAG.startswith(stripped):  # whitespace, or a tag still arriving
                    break
                else:
                    self._state = "answer"
            elif self._state == "thinking":
                end = self._held.find(CLOSE_TAG)
                if end >= 0:
                    thought += self._held[:end]
                    self._held = self._held[end + len(CLOSE_TAG):]
                    self._state = "after"
                else:
                    keep = _partial_suffix(self._held, CLOSE_TAG)
                    thought += self._held[: len(self._held) - keep]
                    self._held = self._held[len(self._held) - keep:]
                    break
            elif self._state == "after":
                stripped = self._held.lstrip()
                self._held = stripped
                if stripped:
                    self._state = "answer"
                else:
                    break
            else:
                answer += self._held
                self._held = ""
        return thought, answer

    def flush(self) -> tuple[str, str]:
        """What is still held at the end of the stream: a lone partial tag is answer text,
        an unclosed think block's tail is thought."""
        held, self._held = self._held, ""
        if self._state == "thinking":
            return held, ""
        if self._state == "after":
            return "", ""
        return "", held


def split_inline(content: str) -> tuple[str, str]:
    """A whole message's content as (thought, answer): for blocking answers."""
    splitter = InlineThink()
    thought, answer = splitter.feed(content)
    more_thought, more_answer = splitter.flush()
    return thought + more_thought, answer + more_answer


def _partial_suffix(text: str, tag: str) -> int:
    """The length of the longest end of `text` that is a beginning of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
