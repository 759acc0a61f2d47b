"""An OpenAI-compatible HTTP server that plays scripted timelines of chunks.

Each `Script` says when each piece of text leaves (seconds after the request arrived),
whether usage is sent, and which fault to play (an HTTP status, a hang before headers, a
dropped connection mid-stream). Because it is a real server on 127.0.0.1, whatever talks to
it measures the real network and client path: tests, benchmarks and demos that need a known
timeline use it. It also answers POST /v1/moderations like OpenAI's moderation endpoint,
flagging any input that contains one of its `flagged_terms` (for the moderation validator).
With `echo_key`, its error messages quote the Authorization header they got, as careless
gateways do (LiteLLM's proxy prints the key it received): only scrubbing keeps it off screen.

    server = PlaybackServer({"scripted": Script.regular(ttft_s=0.3, gap_s=0.02, n=20)})
    server.start(); ...; server.stop()
"""

from __future__ import annotations

import io
import json
import queue
import re
import select
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lib.core import arrival

WORDS = (
    "Streaming shows the first words while the rest is still being written, so the reader "
    "starts at once instead of staring at a blank screen for the whole answer. "
).split(" ")


REPORT = {
    "title": "Why streaming wins",
    "summary": "Users see words at once and stay; blocking calls show a blank screen.",
    "sections": [
        {"heading": "Speed", "body": "The first words arrive in a fraction of a second."},
        {"heading": "Trust", "body": "Write to ops@example.com before changing the defaults."},
    ],
    "risks": ["Partial text cannot be validated whole", "Layout shifts as text grows"],
}
"""A known structured answer (lib.structured's Report, with an e-mail in a section body), for
scripts that stream it token by token (`Script.tokens(json.dumps(REPORT), ...)`)."""


REASONING_FORMS = ("reasoning", "reasoning_content", "think")

TOKEN = re.compile(r"\s*[\w@.'-]+|\s*[^\w\s]|\s+$")
"""A token of `Script.tokens`: a word (an e-mail address whole), or one punctuation mark."""


@dataclass(frozen=True)
class Script:
    """One scripted answer: text pieces and their send times after the request arrived."""

    offsets: tuple[float, ...] = ()
    texts: tuple[str, ...] = ()
    usage: bool = True
    status: int = 200
    """Non-200 answers with an OpenAI-style error body and no stream."""
    retry_after_s: float | None = None
    hang_s: float = 0.0
    """Wait this long before sending any header."""
    drop_after: int | None = None
    """Close the connection abruptly after this many content chunks."""
    blocking_at_s: float | None = None
    """When the blocking answer leaves; default: with the stream's last chunk."""
    status_schedule: tuple[int, ...] = ()
    """Statuses for this model's requests in their order of arrival, cycled: (200, 200, 500)
    fails every third request. Replaces `status` when set."""
    output_tokens: int | None = None
    input_tokens: int | None = None
    """The usage to report; default: one token per text piece, and the prompt's length / 4."""
    error_message: str | None = None
    """The message of a non-200 answer (default: "Scripted failure <status>")."""
    echo: bool = False
    """Begin the answer with "[<prompt>] ", so a test can tell whose answer it reads."""
    # Faults of broken gateways (tests/support/hostile.py names one script per fault):
    inject: tuple[tuple[int, bytes], ...] = ()
    """Raw bytes written into the stream just before content chunk i: a malformed SSE line,
    invalid UTF-8. An index past the last chunk writes them after it."""
    blocking_body: bytes | None = None
    """Raw bytes sent as the blocking answer's body instead of its JSON."""
    done: bool = True
    """False: the stream never sends `data: [DONE]`; it stays open `hold_s`, then ends."""
    hold_s: float = 0.0
    # Reasoning models: which pieces are thoughts, and how the server sends them.
    thought: tuple[bool, ...] = ()
    """Per piece, True for a thought (reasoning); missing entries are answer text."""
    reasoning_form: str = "reasoning"
    """How thoughts are sent (REASONING_FORMS): in `reasoning` (vLLM, Ollama, OpenRouter),
    `reasoning_content` (llama.cpp, DeepSeek), or `think`: inline in `content` inside a leading
    <think>…</think> (the closing tag goes out with the first answer piece)."""
    reasoning_usage: bool = True
    """Report completion_tokens_details.reasoning_tokens (one per thought) in the usage."""
    refuse_formats: bool = False
    """Answer 400 to a request asking for structured output (`response_format` or forced
    `tool_choice`), as servers without JSON mode do."""

    @classmethod
    def tokens(cls, text: str, ttft_s: float, gap_s: float, **kwargs) -> "Script":
        """`text` (a JSON report, say) cut into token-like pieces (a word, or one punctuation
        mark, with the spaces before it), the first at ttft_s, then one every gap_s."""
        texts = tuple(TOKEN.findall(text))
        offsets = tuple(ttft_s + i * gap_s for i in range(len(texts)))
        return cls(offsets=offsets, texts=texts, **kwargs)

    @classmethod
    def reasoning(cls, ttft_s: float, gap_s: float, thoughts: int, words: int,
                  form: str = "reasoning", **kwargs) -> "Script":
        """`thoughts` reasoning pieces, then `words` answer words, one every gap_s from ttft_s."""
        if form not in REASONING_FORMS:
            raise ValueError(f"form must be one of {REASONING_FORMS}")
        texts = tuple(f"thought{i} " for i in range(thoughts)) + tuple(
            WORDS[i % len(WORDS)] + " " for i in range(words))
        offsets = tuple(ttft_s + i * gap_s for i in range(thoughts + words))
        return cls(offsets=offsets, texts=texts, thought=(True,) * thoughts,
                   reasoning_form=form, **kwargs)

    def is_thought(self, index: int) -> bool:
        return index < len(self.thought) and self.thought[index]

    def deltas(self, texts: tuple[str, ...]) -> list[dict]:
        """The delta sent for each piece, in the script's reasoning form."""
        out, opened, closed = [], False, False
        for index, text in enumerate(texts):
            if self.is_thought(index):
                if self.reasoning_form == "think":
                    out.append({"content": ("" if opened else "<think>") + text})
                    opened = True
                else:
                    out.append({self.reasoning_form: text})
            else:
                prefix = "</think>\n\n" if opened and not closed else ""
                closed = closed or opened
                out.append({"content": prefix + text})
        return out

    def message(self, texts: tuple[str, ...]) -> dict:
        """The blocking answer's message, its reasoning in the script's form."""
        thoughts = "".join(t for i, t in enumerate(texts) if self.is_thought(i))
        answer = "".join(t for i, t in enumerate(texts) if not self.is_thought(i))
        if not thoughts:
            return {"role": "assistant", "content": answer}
        if self.reasoning_form == "think":
            return {"role": "assistant", "content": f"<think>{thoughts}</think>\n\n{answer}"}
        return {"role": "assistant", "content": answer, self.reasoning_form: thoughts}

    @classmethod
    def regular(cls, ttft_s: float, gap_s: float, n: int, **kwargs) -> "Script":
        """n chunks of one word each: the first at ttft_s, then one every gap_s."""
        texts = tuple(WORDS[i % len(WORDS)] + " " for i in range(n))
        offsets = tuple(ttft_s + i * gap_s for i in range(n))
        return cls(offsets=offsets, texts=texts, **kwargs)

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def texts_for(self, body: dict) -> tuple[str, ...]:
        """The pieces sent for one request (with its prompt in front when echoing)."""
        if not self.echo or not self.texts:
            return self.texts
        prompt = "".join(str(m.get("content", "")) for m in body.get("messages", []))
        return (f"[{prompt}] " + self.texts[0],) + self.texts[1:]


@dataclass
class Received:
    """What the server saw of one request, for tests to check."""

    t_received: float
    """When the request's last bytes reached the server (the kernel's receive stamp, however
    late its handler thread ran; over TLS or off Linux, when the handler began): the script's
    offsets count from it."""
    body: dict
    authorization: str | None
    sent: list[float] = field(default_factory=list)
    """Just after each content chunk was written."""
    sending: list[float] = field(default_factory=list)
    """Just before each was written: on loopback the bytes arrive inside the write, so a
    client's arrival stamp lies between the two, however late either thread then ran."""
    t_done: float | None = None
    """Just before the answer's last bytes were written (a client cannot have finished sooner):
    with t_received, how many requests the server had in hand at any moment."""


class _ArrivalReader(io.RawIOBase):
    """A connection's reads that also keep when their newest bytes arrived (the kernel's
    stamp): with dozens of streams, a handler thread can get to a request tens of ms after it
    came, and a script timed from then would answer that much late."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.arrived_at: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size, ancillary, _, _ = self._sock.recvmsg_into([buffer], arrival.ANCILLARY_SIZE)
        self.arrived_at = arrival.arrived_at(ancillary) or self.arrived_at
        return size


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"
    _reader: _ArrivalReader | None = None

    def log_message(self, format, *args):  # noqa: A002 - silence per-request stderr lines
        pass

    def setup(self):
        super().setup()
        if arrival.AVAILABLE and not isinstance(self.connection, ssl.SSLSocket):
            try:
                arrival.ask_for_stamps(self.connection)
            except OSError:
                return
            self.rfile.close()  # the socket's own file: left open, it would keep the socket
            self._reader = _ArrivalReader(self.connection)
            self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self):
        if self._reader is not None:
            self._reader.arrived_at = None  # each request's own bytes
        super().handle_one_request()

    def _arrival(self, handled: float) -> float:
        """When the request read so far arrived, if the kernel said; else `handled`."""
        stamp = self._reader.arrived_at if self._reader is not None else None
        return handled if stamp is None else min(stamp, handled)

    def handle(self):
        playback = self.server.playback
        with playback.lock:
            playback.open_connections += 1
        try:
            super().handle()
        except (ConnectionAbortedError, BrokenPipeError, ConnectionResetError):
            pass  # the client went away: a real server stops generating too
        finally:
            with playback.lock:
                playback.open_connections -= 1

    def _wait_until(self, deadline: float) -> None:
        """Sleep to a perf_counter deadline, like `_sleep_until`, but give up as soon as the
        client closes the connection (ConnectionAbortedError): real servers abort a request
        whose client is gone, and a test of cancellation must see the connection end."""
        # Spinning the last millisecond costs ~1 ms of CPU a chunk: with a few streams that buys
        # precision, with dozens (64 streams at 100 chunks/s would want 6 cores) it would make
        # the server late for everyone and starve the client it is measuring.
        spin = self.server.playback.open_connections <= SPIN_STREAMS
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0.002:
                _sleep_until(deadline, spin)
                return
            readable, _, _ = select.select([self.connection], [], [], remaining - 0.001)
            if readable:
                try:  # the raw socket's bytes (an SSLSocket refuses flags): only EOF matters
                    peeked = socket.socket.recv(self.connection, 1, socket.MSG_PEEK)
                except OSError:
                    peeked = b""
                if not peeked:
                    raise ConnectionAbortedError("the client closed the connection")
                _sleep_until(deadline, spin)  # bytes of a next request: nothing to watch for
                return

    def _wait_for_answering(self, limit_s: float = 120.0) -> None:
        if not self.server.playback.answering.wait(limit_s):
            raise ConnectionAbortedError("the server was held past its limit")

    def _send_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, headers: dict | None = None) -> None:
        if self.server.playback.echo_key:
            message += f" Received Authorization: {self.headers.get('Authorization')!r}."
        error = {"message": message, "type": "error", "code": status}
        self._send_json(status, {"error": error}, headers)

    def do_GET(self):  # noqa: N802
        if self.path.rstrip("/").endswith("/models"):
            models = [
                {"id": name, "object": "model", "owned_by": "playback"}
                for name in self.server.playback.model_names()
            ]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._error(404, f"No route {self.path}")

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        t_received = self._arrival(time.perf_counter())
        playback = self.server.playback
        record = Received(t_received, body, self.headers.get("Authorization"))
        playback.received.append(record)
        if self.path.rstrip("/").endswith("/moderations"):
            return self._moderate(record)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._error(404, f"No route {self.path}")
        if playback.api_key and record.authorization != f"Bearer {playback.api_key}":
            return self._error(401, "Incorrect API key provided.")
        try:
            script = playback.script_for(str(body.get("model", "")))
        except LookupError as exc:
            return self._error(404, str(exc.args[0]) if exc.args else "Unknown model")
        if script.refuse_formats and (body.get("response_format") or body.get("tool_choice")):
            record.t_done = time.perf_counter()
            return self._error(400, "response_format and tool_choice are not supported by "
                                    "this server.")
        if script.hang_s:
            self._wait_until(time.perf_counter() + script.hang_s)
        status = playback.next_status(body["model"], script)
        if status != 200:
            headers = {"Retry-After": f"{script.retry_after_s:g}"} if script.retry_after_s else None
            record.t_done = time.perf_counter()
            return self._error(
                status, script.error_message or f"Scripted failure {status}", headers
            )
        if body.get("stream"):
            self._stream(script, record)
        else:
            self._blocking(script, record)

    def _moderate(self, record: Received) -> None:
        playback = self.server.playback
        if playback.api_key and record.authorization != f"Bearer {playback.api_key}":
            return self._error(401, "Incorrect API key provided.")
        inputs = record.body.get("input", "")
        results = []
        for text in inputs if isinstance(inputs, list) else [inputs]:
            hits = [term for term in playback.flagged_terms if term.lower() in str(text).lower()]
            results.append(
                {
                    "flagged": bool(hits),
                    "categories": {"violence": bool(hits), "harassment": False},
                    "category_scores": {"violence": 0.97 if hits else 0.001, "harassment": 0.001},
                }
            )
        self._send_json(
            200, {"id": "modr-playback", "model": record.body.get("model"), "results": results}
        )

    def _blocking(self, script: Script, record: Received) -> None:
        at = script.blocking_at_s
        if at is None:
            at = script.offsets[-1] if script.offsets else 0.0
        self._wait_for_answering()
        self._wait_until(record.t_received + at)
        if script.blocking_body is not None:
            record.t_done = time.perf_counter()
            record.sent.append(record.t_done)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(script.blocking_body)))
            self.end_headers()
            self.wfile.write(script.blocking_body)
            return
        message = script.message(script.texts_for(record.body))
        tool = _forced_tool(record.body)
        if tool is not None:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_playback", "type": "function",
                 "function": {"name": tool, "arguments": message.get("content") or ""}}]}
        payload = {
            "id": "chatcmpl-playback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": record.body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }
        if script.usage:
            payload["usage"] = _usage(record.body, script)
        # Stamped before the write: once the bytes are out, the client may read `sent` at once.
        record.t_done = time.perf_counter()
        record.sent.append(record.t_done)
        self._send_json(200, payload)

    def _stream(self, script: Script, record: Received) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        model = record.body.get("model")

        def frame(delta: dict | None, finish: str | None = None,
                  usage: dict | None = None) -> bytes:
            chunk = {
                "id": "chatcmpl-playback",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": []
                if delta is None
                else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if usage is not None:
                chunk["usage"] = usage
            return _chunked(f"data: {json.dumps(chunk)}\n\n".encode())

        def event(delta: dict | None, finish: str | None = None, usage: dict | None = None) -> None:
            self._send(frame(delta, finish, usage))

        # A role-only chunk at once, as real servers do; it carries no text and must not count.
        event({"role": "assistant", "content": ""})
        inject = dict(script.inject)
        texts = script.texts_for(record.body)
        deltas = script.deltas(texts)
        tool = _forced_tool(record.body)
        if tool is not None:  # the answer goes out as the forced tool call's arguments
            event({"tool_calls": [{"index": 0, "id": "call_playback", "type": "function",
                                   "function": {"name": tool, "arguments": ""}}]})
            deltas = [{"tool_calls": [{"index": 0, "function": {"arguments": d["content"]}}]}
                      if "content" in d else d for d in deltas]
        self._wait_for_answering()
        for index, (offset, delta) in enumerate(zip(script.offsets, deltas)):
            if script.drop_after is not None and index >= script.drop_after:
                record.t_done = time.perf_counter()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            ready = frame(delta)  # built before its moment: only the send is left at it
            self._wait_until(record.t_received + offset)
            if index in inject:
                self._write(inject.pop(index))
            record.sending.append(time.perf_counter())
            self._send(ready)
            record.sent.append(time.perf_counter())
        for raw in inject.values():
            self._write(raw)
        record.t_done = time.perf_counter()
        event({}, finish="stop")
        if script.usage and record.body.get("stream_options", {}).get("include_usage"):
            event(None, usage=_usage(record.body, script))
        if script.done:
            self._write(b"data: [DONE]\n\n")
        else:
            time.sleep(script.hold_s)
        self._write(b"", last=True)

    def _write(self, data: bytes, last: bool = False) -> None:
        self._send((_chunked(data) if data else b"") + (b"0\r\n\r\n" if last else b""))

    def _send(self, framed: bytes) -> None:
        self.wfile.write(framed)
        self.wfile.flush()


def _chunked(data: bytes) -> bytes:
    """One HTTP/1.1 chunk of a chunked body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _forced_tool(body: dict) -> str | None:
    """The tool a request forces (`tool_choice` naming a function), if any."""
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return (choice.get("function") or {}).get("name")
    return None


def _usage(body: dict, script: Script) -> dict:
    output_tokens = script.output_tokens if script.output_tokens is not None else len(script.texts)
    prompt_tokens = script.input_tokens
    if prompt_tokens is None:
        prompt = "".join(str(m.get("content", "")) for m in body.get("messages", []))
        prompt_tokens = max(1, len(prompt) // 4)
    usage: dict = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": prompt_tokens + output_tokens,
    }
    if script.thought and script.reasoning_usage:
        usage["completion_tokens_details"] = {"reasoning_tokens": sum(script.thought)}
    return usage


SPIN_STREAMS = 8
"""Up to this many open connections, the last millisecond before a chunk is spun."""


def _sleep_until(deadline: float, spin: bool = True) -> None:
    """Sleep to a perf_counter deadline; the last millisecond is spun for precision (or slept:
    ~0.1 ms late, without the CPU)."""
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return
        time.sleep(remaining - 0.001 if remaining > 0.002 else 0 if spin else remaining)


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer whose handler threads are kept and reused.

    socketserver starts a thread per connection, and `Thread.start()` waits, in the one thread
    that accepts, until the new thread has run: two hand-overs of the GIL per connection. With
    64 streams sending 6,400 chunks/s every hand-over waits its turn, and a benchmark wave of 64
    new connections queued behind them arrived up to 90 ms late (the client saw it as TTFT).
    Here the accepting thread only hands the connection to an idle handler thread, which a
    previous connection left waiting; a new thread starts only when none is idle.
    """

    allow_reuse_address = True
    # socketserver's default backlog is 5: a benchmark opening 64 connections at once would
    # overflow it, and each dropped SYN costs the client a 1 s retransmission.
    request_queue_size = 1024
    playback: "PlaybackServer"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._connections: queue.SimpleQueue = queue.SimpleQueue()
        self._pool_lock = threading.Lock()
        self._closed = False
        self.idle_threads = 0
        self.handler_threads = 0
        """Threads started to serve connections (each serves many, one after another)."""

    def process_request(self, request, client_address):
        with self._pool_lock:
            start = self.idle_threads == 0
            if start:
                self.handler_threads += 1
            else:
                self.idle_threads -= 1  # that thread is promised this connection
        self._connections.put((request, client_address))
        if start:
            name = f"playback {self.server_address[1]} handler {self.handler_threads}"
            threading.Thread(target=self._serve_connections, name=name, daemon=True).start()

    def _serve_connections(self) -> None:
        while (item := self._connections.get()) is not None:
            self.process_request_thread(*item)  # finish_request, handle_error, shutdown_request
            with self._pool_lock:
                if self._closed:
                    return
                self.idle_threads += 1

    def server_close(self):
        super().server_close()
        with self._pool_lock:  # idle threads end now, busy ones when their connection does
            self._closed = True
            idle, self.idle_threads = self.idle_threads, 0
        for _ in range(idle):
            self._connections.put(None)

    def handle_error(self, request, client_address):
        # Clients that cancel or time out close their connection, and a client that refuses
        # our certificate ends its handshake: expected, not news.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            super().handle_error(request, client_address)


class PlaybackServer:
    """A playback server on 127.0.0.1 and a free port, in a background thread.

    Requests find their script through `script_for` and `/v1/models` lists `model_names`:
    a subclass can resolve names on demand (lib.replay does).
    """

    def __init__(
        self,
        scripts: dict[str, Script] | None = None,
        api_key: str | None = None,
        port: int = 0,
        flagged_terms: tuple[str, ...] = (),
        echo_key: bool = False,
        tls: ssl.SSLContext | None = None,
    ):
        """`tls`: a server-side context (its certificate loaded) to serve HTTPS instead."""
        self.scripts = dict(scripts or {})
        self.api_key = api_key
        self.flagged_terms = flagged_terms
        self.echo_key = echo_key
        self.received: list[Received] = []
        self.open_connections = 0
        """Connections a handler thread is still serving (0 once every client has gone)."""
        self.answering = threading.Event()
        """Cleared, every answer waits before its first content (a test holds the model while
        it readies the page); set again, what fell due meanwhile goes out at once."""
        self.answering.set()
        self.lock = threading.Lock()
        self._served: dict[str, int] = {}
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.playback = self
        self.tls = tls is not None
        if tls is not None:  # each connection's handshake runs on its handler thread
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self._thread: threading.Thread | None = None

    def next_status(self, model: str, script: Script) -> int:
        """The status of this model's next request: its script's schedule, else its status."""
        if not script.status_schedule:
            return script.status
        with self.lock:
            index = self._served.get(model, 0)
            self._served[model] = index + 1
        return script.status_schedule[index % len(script.status_schedule)]

    def script_for(self, model: str) -> Script:
        """The script to play for a request's model name; LookupError(message) if none."""
        try:
            return self.scripts[model]
        except KeyError:
            raise LookupError(f"The model '{model}' does not exist") from None

    def model_names(self) -> list[str]:
        return list(self.scripts)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1"

    def start(self) -> "PlaybackServer":
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, daemon=True, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if getattr(self, "_thread", None) is not None:  # shutdown() waits for serve_forever
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "PlaybackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
