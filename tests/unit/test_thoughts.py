"""Telling thoughts from the answer (lib.core.thoughts) and decoding them into Mirascope's
thought chunks (lib.core.seams.ReasoningChunkProcessor), with no server."""

from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletionChunk

from lib.core.seams import ReasoningChunkProcessor
from lib.core.thoughts import InlineThink, effort_value, reasoning_of, split_inline


def feed_all(pieces: list[str]) -> tuple[str, str, list[tuple[str, str]]]:
    splitter = InlineThink()
    steps = [splitter.feed(piece) for piece in pieces]
    steps.append(splitter.flush())
    return "".join(t for t, _ in steps), "".join(a for _, a in steps), steps


def test_a_leading_think_block_is_thought_and_the_rest_answer():
    thought, answer, _ = feed_all(["<think>", "Let me ", "see.", "</think>", "\n\n", "Paris."])
    assert (thought, answer) == ("Let me see.", "Paris.")


def test_tags_split_anywhere_across_deltas_are_still_found():
    text = "  <think>a</think>b<think>c"
    for cut in range(1, len(text)):
        thought, answer, _ = feed_all([text[:cut], text[cut:]])
        assert (thought, answer) == ("a", "b<think>c"), cut


def test_only_a_leading_block_counts():
    assert split_inline("Use <think> tags.") == ("", "Use <think> tags.")
    assert split_inline("Hello") == ("", "Hello")
    assert split_inline("<thin") == ("", "<thin")  # never completed: the answer's own text


def test_thoughts_come_out_as_they_arrive_not_at_the_closing_tag():
    _, _, steps = feed_all(["<think>one ", "two ", "three</th", "ink>Four"])
    assert [t for t, _ in steps[:3]] == ["one ", "two ", "three"]
    assert steps[3] == ("", "Four")


def test_an_unclosed_block_is_all_thought():
    assert split_inline("<think>still thinking") == ("still thinking", "")


def test_effort_maps_to_the_sent_value():
    assert effort_value(None) is None and effort_value("default") is None
    assert effort_value("off") == "none"
    assert [effort_value(e) for e in ("low", "medium", "high")] == ["low", "medium", "high"]
    with pytest.raises(ValueError):
        effort_value("extreme")


def chunk(delta: dict, finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate({
        "id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })


def test_reasoning_of_reads_either_field_name():
    assert reasoning_of(chunk({"reasoning": "a"}).choices[0].delta) == "a"
    assert reasoning_of(chunk({"reasoning_content": "b"}).choices[0].delta) == "b"
    assert reasoning_of(chunk({"content": "c"}).choices[0].delta) == ""


def kinds(chunks: list) -> list[tuple[str, str]]:
    return [(c.type, getattr(c, "delta", "")) for c in chunks
            if c.type not in ("raw_stream_event_chunk",)]


def test_the_decoder_emits_mirascopes_thought_chunks_and_loses_nothing_in_a_mixed_delta():
    processor = ReasoningChunkProcessor()
    stream = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "hmm"}),
        chunk({"reasoning": "so", "content": "Paris"}),  # both kinds in one delta
        chunk({"content": "."}, finish="stop"),
    ]
    assert kinds(list(processor.decode(stream))) == [
        ("thought_start_chunk", ""), ("thought_chunk", "hmm"), ("thought_chunk", "so"),
        ("thought_end_chunk", ""), ("text_start_chunk", ""), ("text_chunk", "Paris"),
        ("text_chunk", "."), ("text_end_chunk", ""),
    ]


def test_a_thought_after_answer_text_opens_a_new_thought_part():
    processor = ReasoningChunkProcessor()
    stream = [chunk({"content": "A"}), chunk({"reasoning": "r"}), chunk({"content": "B"}, "stop")]
    assert [k for k, _ in kinds(list(processor.decode(stream)))] == [
        "text_start_chunk", "text_chunk", "text_end_chunk", "thought_start_chunk",
        "thought_chunk", "thought_end_chunk", "text_start_chunk", "text_chunk", "text_end_chunk",
    ]


def test_a_stream_cut_while_thinking_closes_the_thought():
    processor = ReasoningChunkProcessor()
    stream = [chunk({"content": "<think>deep"}), chunk({}, finish="length")]
    assert [k for k, _ in kinds(list(processor.decode(stream)))] == [
        "thought_start_chunk", "thought_chunk", "thought_end_chunk", "finish_reason_chunk",
    ]
