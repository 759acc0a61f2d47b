"""Prompt sets for benchmarks: the built-in ones, and files (one prompt a line, or JSONL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lib.core.calls import MAX_TOKENS_LIMIT
from lib.core.errors import InvalidInput


@dataclass(frozen=True)
class BenchPrompt:
    prompt: str
    max_tokens: int | None = None
    """This prompt's own limit (a JSONL line's `max_tokens`); None: the benchmark's."""


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: tuple[BenchPrompt, ...]
    max_tokens: int
    """The limit for prompts without their own, unless the benchmark sets one."""


def _builtin(name: str, max_tokens: int, *prompts: str) -> PromptSet:
    return PromptSet(name, tuple(BenchPrompt(p) for p in prompts), max_tokens)


PROMPT_SETS = {
    s.name: s for s in (
        _builtin(
            "short", 48,
            "In one sentence, what is the capital of France?",
            "In one sentence, why is the sky blue?",
            "Name three primary colours in one line.",
            "In one sentence, what does HTTP stand for?",
            "In one sentence, what is a prime number?",
            "Give a one-line definition of latency.",
            "In one sentence, what does a compiler do?",
            "In one sentence, why do leaves change colour in autumn?",
        ),
        _builtin(
            "medium", 160,
            "Explain in a short paragraph why streaming responses feel faster to users.",
            "Describe in a short paragraph how a web browser loads a page.",
            "In a short paragraph, explain what a database index is and when to use one.",
            "Summarise in a short paragraph the trade-offs between threads and async I/O.",
            "In a short paragraph, explain what a percentile is and why p99 matters.",
            "Describe in a short paragraph how a rainbow forms.",
        ),
        _builtin(
            "long", 500,
            "Write a report of about 400 words on why streaming responses improve the user "
            "experience of chat applications.",
            "Write an essay of about 400 words on the history of the printing press.",
            "Write a guide of about 400 words on how to run a load test against a web service.",
            "Write a story of about 400 words about a lighthouse keeper who finds a message "
            "in a bottle.",
        ),
    )
}
"""Built-in prompt sets: short (one-line answers), medium (a paragraph), long (a report)."""


def parse_prompts(text: str, name: str) -> PromptSet:
    """A user prompt file: one prompt a line, or JSONL with `prompt` and optional `max_tokens`.

    The file is JSONL when its first non-blank line starts with "{". Blank lines are skipped.
    """
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)]
    lines = [(number, line) for number, line in lines if line]
    if not lines:
        raise InvalidInput(f"{name} has no prompts: write one prompt a line, or JSONL lines "
                           'like {"prompt": "...", "max_tokens": 64}.')
    if not lines[0][1].startswith("{"):
        return PromptSet(name, tuple(BenchPrompt(line) for _, line in lines), 256)
    prompts = []
    for number, line in lines:
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"Line {number} of {name} is not valid JSON ({exc.msg}).") from None
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str):
            raise InvalidInput(f'Line {number} of {name} needs a "prompt" string.')
        limit = item.get("max_tokens")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or not 1 <= limit <= MAX_TOKENS_LIMIT):
            raise InvalidInput(f"Line {number} of {name}: max_tokens must be a whole number "
                               f"from 1 to {MAX_TOKENS_LIMIT:,}.")
        prompts.append(BenchPrompt(item["prompt"], limit))
    return PromptSet(name, tuple(prompts), 256)


def load_prompts(spec: str) -> PromptSet:
    """A built-in set by name (short, medium, long), or a prompt file by path."""
    if spec in PROMPT_SETS:
        return PROMPT_SETS[spec]
    path = Path(spec)
    if not path.is_file():
        raise InvalidInput(f"'{spec}' is neither a prompt file nor one of "
                           f"{', '.join(PROMPT_SETS)}.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"Cannot read {spec}: {exc}") from None
    return parse_prompts(text, path.name)
