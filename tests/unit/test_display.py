"""What the pages show: model output as literal text, cut into bounded blocks."""

import random

from lib.present.display import MarkdownBlocks, plain_markdown, seconds


def test_model_output_is_escaped_so_nothing_is_interpreted():
    text = "<script>alert(1)</script> **bold** [a](http://x) ![i](http://y/i.png) `c` # h"
    escaped = plain_markdown(text)
    for special in "<>*[]()!`#":
        assert f"\\{special}" in escaped
    assert "<script>" not in escaped and "](" not in escaped


def test_addresses_and_urls_do_not_become_links():
    """GFM links e-mail addresses, http:// URLs and www. names found in plain text, escapes or
    not: a word joiner (invisible) after "@" and ":" keeps them text (checked in a browser, tests/
    browser/test_browser_guardrails.py)."""
    escaped = plain_markdown("write to jane@example.com or see https://example.com or www.x.org")
    assert "jane@\u2060example\u2060\\.com" in escaped
    assert "https\\:\u2060//example" in escaped
    assert "www\u2060\\.x\u2060\\.org" in escaped
    assert escaped.replace("\u2060", "").replace("\\", "") == (
        "write to jane@example.com or see https://example.com or www.x.org"
    )


def test_escaping_chunk_by_chunk_equals_escaping_the_whole():
    text = "Line one.\nLine *two* <b>\r\n\n- item & more\\"
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    assert "".join(plain_markdown(p) for p in pieces) == plain_markdown(text)
    assert "  \n" in plain_markdown("a\nb")  # a line break stays a line break


def test_blocks_join_back_to_the_text_and_stay_bounded():
    rng = random.Random(7)
    words = [rng.choice(["alpha ", "beta ", "gamma.\n\n", "delta "]) for _ in range(6000)]
    frames = [plain_markdown("".join(words[i : i + 5])) for i in range(0, len(words), 5)]
    blocks_of = MarkdownBlocks(soft=4000, hard=16000)
    blocks, current = [], ""
    for frame in frames:
        for piece in blocks_of.split(frame):
            if piece is None:
                blocks.append(current)
                current = ""
            else:
                current += piece
    blocks.append(current)
    assert "".join(blocks) == "".join(frames)
    assert len(blocks) > 5
    # Cut at paragraph breaks, soon after the soft limit.
    assert all(block.endswith(MarkdownBlocks.BREAK) for block in blocks[:-1])
    assert max(len(block) for block in blocks) < 4000 + 200


def test_without_paragraphs_blocks_are_cut_at_a_space_past_the_hard_limit():
    blocks_of = MarkdownBlocks(soft=100, hard=400)
    pieces = []
    for _ in range(100):
        pieces += blocks_of.split("word " * 4)
    cuts = [i for i, p in enumerate(pieces) if p is None]
    assert cuts, "a text without paragraph breaks is still cut"
    first_block = "".join(p for p in pieces[: cuts[0]])
    assert 400 <= len(first_block) <= 420 and first_block.endswith(" ")


def test_seconds_formats_and_says_when_not_measured():
    assert seconds(None) == "–"
    assert seconds(0.2054) == "205 ms"
    assert seconds(12.345) == "12.35 s"
    assert seconds(0) == "0 ms"
    assert seconds(0.0025) == "2.5 ms"
    assert seconds(0.00004) == "<1 ms"
