"""Turning measured values and model output into what a page shows. No Streamlit here."""

from __future__ import annotations

import re

from lib.core import metrics
from lib.core.trace import Trace

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~=$&:])")
WORD_JOINER = "\u2060"
"""Invisible and unbreakable. GFM turns e-mail addresses, http:// URLs and www. names in plain
text into links after escapes are resolved, so escaping cannot stop it; a word joiner after
every "@" and ":" and before every "." does (no address, URL or www. name matches), one
character at a time like the rest."""


def plain_markdown(text: str) -> str:
    """Model output as Markdown that renders as the literal text, line breaks kept.

    Every Markdown and HTML special character is backslash-escaped, so no tag, link or
    image in an answer is ever interpreted (nothing is fetched, nothing runs), and e-mail
    addresses, scheme URLs and www. names are kept from becoming links (WORD_JOINER). The mapping
    is per character, so escaping chunks one by one equals escaping their concatenation:
    streamed frames can be escaped as they come.
    """
    # Before each ".": "www\u2060." is no www. name (after it, a browser still saw a link).
    text = text.replace("\r", "").replace(".", WORD_JOINER + ".")
    escaped = _MARKDOWN_SPECIALS.sub(r"\\\1", text)
    escaped = escaped.replace("@", "@" + WORD_JOINER).replace(":", ":" + WORD_JOINER)
    return escaped.replace("\n", "  \n")


SHOWN_CHARS = 20_000
"""A panel shows at most this many characters of an answer: a megabyte of text stalls the
browser for seconds (and the page with it), and nobody reads that far in a race. The run log
and its exports keep the whole answer."""


def shown(text: str) -> str:
    """An answer as a panel shows it (Markdown): escaped, cut at SHOWN_CHARS with a note."""
    return plain_markdown(text[:SHOWN_CHARS]) + (clipped_note(len(text)) or "")


def clipped_note(length: int) -> str | None:
    """What a panel says under an answer longer than it shows (None when nothing was cut)."""
    if length <= SHOWN_CHARS:
        return None
    return (f"  \n  \n*… {length - SHOWN_CHARS:,} more characters not shown: the run log and its "
            f"exports hold the whole answer ({length:,} characters).*")


class MarkdownBlocks:
    """Cuts a growing Markdown text into blocks of bounded size.

    st.write_stream re-sends the whole current block on every frame and the browser re-parses
    it, a cost that grows with the square of the answer's length: at 2,000 chunks/s the page
    fell behind the stream (bench/render_keepup.py). Blocks are cut at a paragraph break once
    `soft` characters are reached, or past `hard` at any space, so the text looks the same.
    """

    BREAK = "  \n  \n"
    """A paragraph break, as `plain_markdown` writes it."""

    def __init__(self, soft: int = 4_000, hard: int = 16_000):
        self.soft, self.hard = soft, hard
        self.size = 0

    def split(self, text: str) -> list[str | None]:
        """The pieces of the next frame's text; None means "start a new block here"."""
        pieces: list[str | None] = []
        if self.size >= self.soft:
            cut, separator = text.rfind(self.BREAK), len(self.BREAK)
            if cut < 0 and self.size >= self.hard:
                cut, separator = text.rfind(" "), 1
            if cut >= 0:
                head, text = text[: cut + separator], text[cut + separator:]
                pieces += [head, None] if head else [None]
                self.size = 0
        self.size += len(text)
        if text:
            pieces.append(text)
        return pieces


def seconds(value: float | None, digits: int = 2) -> str:
    """'1.23 s', '45 ms' below a second, '2.5 ms' below 10 ms, '–' when not measured."""
    if value is None or value != value:  # NaN: pandas' missing value
        return "–"
    if 0 < abs(value) < 0.001:
        return "<1 ms"
    if 0 < abs(value) < 0.01:
        return f"{value * 1000:.1f} ms"
    if abs(value) < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.{digits}f} s"


def rate(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.1f} tok/s"


def two_clocks(trace: Trace) -> str:
    """Both clocks of a lane's blank screen, and what the server's does not see (Markdown).

    The server's clock (`perceived_s`) runs from the race's start to the text handed to the
    renderer; the browser's (`screen_first_s`) from the click on Run to the text painted."""
    server, screen = metrics.perceived_s(trace), metrics.screen_first_s(trace)
    line = f"🖥️ Server clock: **{seconds(server)}** from the race's start"
    if screen is None:
        return line + " · 👁️ your screen: not measured"
    delay = metrics.app_delay_s(trace)
    extra = f" (+{seconds(delay)}: the app, the network and the paint)" if delay is not None \
        else ""
    line += f" · 👁️ your screen: **{seconds(screen)}** after your click{extra}"
    done = metrics.screen_done_s(trace)
    if trace.mode == "streaming" and done is not None:
        line += f", the whole answer at {seconds(done)}"
    return line


def status_line(trace: Trace) -> str:
    """The line above a race panel once its call has ended (Markdown)."""
    blank = seconds(metrics.perceived_s(trace))
    ended = None if trace.t_end is None or trace.t_start is None else trace.t_end - trace.t_start
    if trace.status == "cancelled":
        return f"⏹️ Cancelled after {seconds(ended)}"
    if trace.status == "error":
        return f"🚨 Failed after {seconds(ended)}"
    if trace.mode == "blocking":
        return f"✅ Whole answer after **{blank}** of blank screen"
    last = trace.chunks[-1].t - trace.t_start if trace.chunks and trace.t_start else None
    return f"✅ First words after **{blank}** · last words after {seconds(last)}"


# -- reasoning models --------------------------------------------------------------------------


def thinking_label(trace: Trace, now: float | None = None) -> str | None:
    """The title of a lane's thinking block, with its own timer; None when it has no thoughts.

    Streaming: "Thinking… 0.8 s" (from the first thought until `now`) until the answer starts,
    then "Thought for 1.00 s" (thinking_s). Blocking: the reasoning came with the answer.
    """
    thoughts = trace.thought_chunks
    if not thoughts:
        return None
    if trace.mode == "blocking":
        reasoning, _ = metrics.reasoning_tokens(trace)
        tokens = f" · {reasoning:,} tokens" if reasoning else ""
        return f"🧠 Reasoning, received with the answer{tokens}"
    thinking = metrics.thinking_s(trace)
    if trace.answer_chunks and thinking is not None:
        return f"🧠 Thought for {seconds(thinking)}"
    if trace.done:
        return f"🧠 Thought for {seconds(thoughts[-1].t - thoughts[0].t)} (no answer)"
    elapsed = (now if now is not None else thoughts[-1].t) - thoughts[0].t
    return f"🧠 Thinking… {max(elapsed, 0.0):.1f} s"


def reasoning_moments(trace: Trace) -> str:
    """Both moments of a lane in one line: first thought and first answer word (Markdown)."""
    values = metrics.compute(trace)
    if trace.mode == "blocking":
        return (f"{LABELS_SHORT[trace.mode]}: thoughts and answer together after "
                f"{seconds(values.e2e_s)}")
    return (f"{LABELS_SHORT[trace.mode]}: first thought after {seconds(values.ttft_s)} · "
            f"first answer word after {seconds(values.ttfo_s)}")


LABELS_SHORT = {"blocking": "⏳ Blocking", "streaming": "⚡ Streaming"}


# -- behind a guardrail -------------------------------------------------------------------------

REDACTED = "`[redacted]`"
"""What a span caught before it was shown looks like (our text, not the model's)."""
THIN_SPACE = "\u2009"
"""Around struck-out text: Unicode whitespace, so `~~` always opens and closes (CommonMark's
flanking rules fail next to escaped punctuation), and barely visible."""


def struck(text: str) -> str:
    """Text the user saw vanish: escaped like `plain_markdown`, each line's words in ~~ ~~."""
    lines = []
    for line in text.replace("\r", "").split("\n"):
        core = line.strip()
        if not core:
            lines.append(line)
            continue
        lead, trail = line[: len(line) - len(line.lstrip())], line[len(line.rstrip()):]
        lines.append(f"{lead}{THIN_SPACE}~~{plain_markdown(core)}~~{THIN_SPACE}{trail}")
    return "  \n".join(lines)


def guard_runs(trace: Trace, until: float | None = None, limit: int | None = SHOWN_CHARS
               ) -> list[tuple[str, str]]:
    """The answer as a strategy's screen has it: (state, text) runs of characters in one state,
    for its first `limit` characters (a panel shows no more; see SHOWN_CHARS)."""
    text = trace.text if limit is None else trace.text[:limit]
    if trace.guard is None:
        return [("shown", text)] if text else []
    spans: list[list] = []  # [state, start, end], neighbours in one state merged
    for piece in trace.guard.pieces(len(text), until):
        if spans and spans[-1][0] == piece.state:
            spans[-1][2] = piece.end
        else:
            spans.append([piece.state, piece.start, piece.end])
    return [(state, text[start:end]) for state, start, end in spans if state]


def guard_markdown(runs: list[tuple[str, str]]) -> str:
    """The visible part: released text, struck-out retracted text, [redacted] masks."""
    parts = []
    for state, piece in runs:
        if state == "shown":
            parts.append(plain_markdown(piece))
        elif state == "removed":
            parts.append(struck(piece))
        elif state == "masked":
            parts.append(REDACTED)
    return "".join(parts)


def guard_held(runs: list[tuple[str, str]], tail: int = 160) -> str | None:
    """A caption for the text held back (not visible to the user), its end only."""
    held = "".join(piece for state, piece in runs if state == "held")
    if not held:
        return None
    shown = held if len(held) <= tail else "…" + held[-tail:]
    return f"⏳ Held back, {len(held):,} characters: {plain_markdown(shown)}"


def guard_status(trace: Trace, elapsed: float | None = None) -> str:
    """The line above a strategy's panel (Markdown), live (with `elapsed`) or at the end."""
    blank = metrics.perceived_s(trace)
    if trace.status == "cancelled":
        return "⏹️ Cancelled"
    if trace.status == "error":
        return "🚨 Failed"
    done = trace.guard is not None and trace.guard.first("done") is not None
    if not done:
        if blank is None:
            return f"⬜ **Blank screen** · {elapsed or 0:.1f} s"
        return f"⚡ First text after **{seconds(blank)}** · streaming…"
    m = metrics.compute(trace)
    line = f"✅ First text after **{seconds(blank)}** · validated after {seconds(m.guard_e2e_s)}"
    if not m.exposure_chars:
        return line + "  \n🔒 Nothing violating was shown"
    line += f"  \n⚠️ {m.exposure_chars} violating characters shown for **{seconds(m.exposure_s)}**"
    if m.leaked_chars:
        return line + ", never removed"
    return line + f" · {m.retractions} retraction{'s' if m.retractions != 1 else ''}"
