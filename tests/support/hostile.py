"""A hostile OpenAI-compatible server: one model name per fault a flaky gateway can commit.

    with hostile_server() as server:              # a lib.playback server with every fault
        endpoint = endpoint_for(server.base_url, "stall-mid-stream")

Each `Fault` says what the server does and what StreamRace must make of it, per mode: the
status the run is logged with, the error kind, and words the user's message contains.
`python -m tests.support.hostile` prints the README's fault table from the same list, so the table
and the tests cannot drift apart (tests/pages/test_faults.py checks the README holds it).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from lib.serving.playback import PlaybackServer, Script

TIMEOUT_S = 1.0
"""The timeout the fault tests configure: every fault must be reported within it (+ slack)."""
SLOW_S = 3 * TIMEOUT_S
"""How long the slow faults keep silent: well past the timeout."""

HTML = ("<script>alert('x')</script>", " <b>bold</b> <img src=x onerror=alert(1)>", " &amp; done")
MEGABYTE = "x" * 1_000_000
ERROR_MARKUP = "<img src=x onerror=alert(2)> ![pixel](http://127.0.0.1:9/p.png) **loud** [go](http://e.x)"


def _words(n: int = 6, **kwargs) -> Script:
    return Script.regular(ttft_s=0.02, gap_s=0.01, n=n, **kwargs)


def _sse(content: bytes) -> bytes:
    """One streamed chunk whose content is these raw bytes (not necessarily UTF-8)."""
    return (b'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":'
            b'[{"index":0,"delta":{"content":"' + content + b'"},"finish_reason":null}]}\n\n')


def _body(content: bytes) -> bytes:
    """A blocking answer whose content is these raw bytes."""
    return (
        b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"' + content + b'"},"finish_reason":"stop"}]}'
    )


@dataclass(frozen=True)
class Outcome:
    """What one mode's call must end as."""

    status: str  # "ok" or "error"
    kind: str | None = None  # the error kind (lib.core.errors), None when ok
    says: str = ""  # words the message shown to the user contains
    partial: bool = False  # text arrived before the failure, and is kept

    def __str__(self) -> str:
        return (
            "ok"
            if self.status == "ok"
            else f"{self.kind}" + (", text kept" if self.partial else "")
        )


OK = Outcome("ok")


@dataclass(frozen=True)
class Fault:
    model: str
    what: str  # the fault, as the README's table says it
    script: Script | None  # None: the server does not know the model (or is not there)
    blocking: Outcome
    streaming: Outcome
    sees: str  # what the user sees, for the README
    refused: bool = False  # the endpoint's port has nothing listening

    def outcome(self, mode: str) -> Outcome:
        return self.blocking if mode == "blocking" else self.streaming


def _both(outcome: Outcome) -> dict:
    return {"blocking": outcome, "streaming": outcome}


FAULTS: tuple[Fault, ...] = (
    Fault(
        "e401",
        "401: wrong API key",
        Script(status=401),
        **_both(Outcome("error", "auth", "refused the API key (HTTP 401)")),
        sees="“refused the API key (HTTP 401). Check the key in the sidebar…” in both panels",
    ),
    Fault(
        "unknown-model",
        "404: unknown model",
        None,
        **_both(Outcome("error", "not_found", "does not know the model")),
        sees="“does not know the model 'unknown-model' (HTTP 404)…”, check the name and /v1",
    ),
    Fault(
        "e429",
        "429 with Retry-After: 7",
        Script(status=429, retry_after_s=7),
        **_both(Outcome("error", "rate_limited", "retry after 7 s")),
        sees="“is rate limiting requests (HTTP 429). It asked to retry after 7 s.” (no retry)",
    ),
    Fault(
        "e500",
        "500",
        Script(status=500),
        **_both(Outcome("error", "server_error", "server error (HTTP 500)")),
        sees="“answered with a server error (HTTP 500)” with the server's own message",
    ),
    Fault(
        "e500-markup",
        "500 whose message holds HTML, Markdown and an image link",
        Script(status=500, error_message=ERROR_MARKUP),
        **_both(Outcome("error", "server_error", "server error (HTTP 500)")),
        sees="the server's message as literal text: no tag, link or image is rendered or fetched",
    ),
    Fault(
        "e503",
        "503",
        Script(status=503),
        **_both(Outcome("error", "server_error", "server error (HTTP 503)")),
        sees="the same, HTTP 503",
    ),
    Fault(
        "refused",
        "connection refused",
        None,
        refused=True,
        **_both(Outcome("error", "unreachable", "Cannot reach")),
        sees="“Cannot reach http://…: is the server running, and is the URL right?”",
    ),
    Fault(
        "hang-before-headers",
        "hang before any header (3 s, timeout 1 s)",
        _words(hang_s=SLOW_S),
        **_both(Outcome("error", "timeout", "Timed out before the first byte")),
        sees="“Timed out before the first byte: … sent nothing for 1 s” at the timeout",
    ),
    Fault(
        "stall-mid-stream",
        "stall mid-stream longer than the timeout",
        Script(offsets=(0.02, 0.04, SLOW_S), texts=("First ", "words ", "late")),
        blocking=Outcome("error", "timeout", "Timed out before the first byte"),
        streaming=Outcome("error", "timeout", "Timed out mid-stream", partial=True),
        sees="streamed words stay on screen; “Timed out mid-stream … text received so far is "
        "kept”; the blocking panel times out with nothing",
    ),
    Fault(
        "drop-mid-stream",
        "connection dropped mid-stream",
        _words(10, drop_after=3),
        blocking=OK,
        streaming=Outcome("error", "stream_broken", "broke after it started", partial=True),
        sees="the first words stay; “The stream … broke after it started: it closed the "
        "connection in the middle of the answer”; blocking unaffected",
    ),
    Fault(
        "malformed-sse",
        "a malformed SSE line mid-stream",
        _words(inject=((3, b'data: {"choices": [{"delta": \n\n'),)),
        blocking=OK,
        streaming=Outcome("error", "stream_broken", "not valid JSON", partial=True),
        sees="the first words stay; “…sent data that is not valid JSON (a malformed "
        "server-sent event or body)”",
    ),
    Fault(
        "non-utf8",
        "bytes that are not UTF-8",
        _words(inject=((3, _sse(b"caf\xe9 \xff")),), blocking_body=_body(b"caf\xe9 \xff")),
        blocking=Outcome("error", "stream_broken", "not UTF-8"),
        streaming=Outcome("error", "stream_broken", "not UTF-8", partial=True),
        sees="“…sent bytes that are not UTF-8 text”; streamed words before them stay",
    ),
    Fault(
        "one-megabyte",
        "one enormous chunk (1 MB)",
        # The last word well after (not 30 ms): a reader still taking in the megabyte would
        # find it in the same read, one arrival stamp for both, and no span for TPOT or tok/s.
        Script(offsets=(0.02, 0.3), texts=(MEGABYTE, " end")),
        **_both(OK),
        sees="the answer is logged whole (1,000,004 characters); a panel shows its first "
        "20,000 and says how many more the run log holds",
    ),
    Fault(
        "no-usage",
        "no usage chunk",
        _words(usage=False),
        **_both(OK),
        sees="the answer; token counts are estimated (streamed chunks; characters / 4 "
        "when blocking) and marked `estimated`, never passed off as the server's",
    ),
    Fault(
        "no-done",
        "[DONE] never sent, connection left open",
        _words(done=False, hold_s=SLOW_S),
        blocking=OK,
        streaming=Outcome("error", "timeout", "did not end the stream", partial=True),
        sees="the whole answer, then “Timed out mid-stream … did not end the stream … text "
        "kept” at the timeout",
    ),
    Fault(
        "no-done-closed",
        "[DONE] never sent, connection closed",
        _words(done=False),
        **_both(OK),
        sees="the answer, logged ok (the body ended after finish_reason, as the SDK accepts)",
    ),
    Fault(
        "html",
        "content with HTML and <script>",
        Script(offsets=(0.02, 0.03, 0.04), texts=HTML),
        **_both(OK),
        sees="the tags as literal text; nothing is rendered or run",
    ),
)

BY_MODEL = {fault.model: fault for fault in FAULTS}


def hostile_server() -> PlaybackServer:
    """A (not yet started) playback server playing every fault; `with` starts and stops it."""
    return PlaybackServer({f.model: f.script for f in FAULTS if f.script is not None})


def readme_table() -> str:
    """The README's fault table (Markdown)."""
    lines = ["| Fault | Blocking | Streaming | What the user sees |", "|---|---|---|---|"]
    for fault in FAULTS:
        what = fault.what.replace("<", "&lt;").replace(">", "&gt;")
        lines.append(f"| {what} | {fault.blocking} | {fault.streaming} | {fault.sees} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--json"]:
        print(json.dumps([f.model for f in FAULTS]))
    else:
        print(readme_table())
