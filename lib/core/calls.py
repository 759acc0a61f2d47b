"""One call to an endpoint through Mirascope 2, blocking or streamed, recorded in a Trace.

Both modes share everything but the sending: request checks, the provider and its client
(our timeout, no retries: a silent retry would hide inside a measurement), the t0 hook,
error mapping and cancellation. Timestamps are taken on the thread that runs the call,
the thread that receives the bytes; a chunk's is when its bytes arrived (the kernel's receive
stamp, lib.core.seams.ArrivalStream), so a thread that wakes late does not make it late.

Cancellation closes the HTTP connection from any thread: the client's sockets are tracked
and shut down, which wakes a read blocked on a silent server at once.
"""

from __future__ import annotations

import functools
import gc
import ssl
import threading
import time

import httpx
import pydantic
from mirascope import llm
from mirascope.llm.tools import Toolkit

from lib.core import errors
from lib.core.seams import OpenAIClient, Provider, SocketTracker, use_network_backend
from lib.core.structured import Structure, invalid_reason
from lib.core.thoughts import EFFORTS, effort_value
from lib.core.trace import MODES, Chunk, Mode, Params, Request, Trace
from lib.endpoints import Endpoint

MAX_PROMPT_CHARS = 100_000


MAX_TOKENS_LIMIT = 32_768


def check_request(prompt: str, params: Params) -> None:
    """Refuse, before anything is sent, what no endpoint should receive."""
    if not prompt or not prompt.strip():
        raise errors.InvalidInput("Type a prompt first: nothing was sent.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise errors.InvalidInput(
            f"The prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}."
        )
    if not 1 <= params.max_tokens <= MAX_TOKENS_LIMIT:
        raise errors.InvalidInput(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT:,}.")
    if not 0.0 <= params.temperature <= 2.0:
        raise errors.InvalidInput("temperature must be between 0 and 2.")
    if params.reasoning_effort not in (None, *EFFORTS):
        raise errors.InvalidInput(f"Reasoning effort must be one of {', '.join(EFFORTS)}.")
    if not 0.1 <= params.timeout_s <= 3600:
        raise errors.InvalidInput("The timeout must be between 0.1 s and 3600 s.")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context shared by every call (httpx's own default, built once):
    httpx builds a fresh one per client, and loading the CA bundle costs ~40 ms of CPU, which
    would cap a benchmark at ~25 requests a second. An SSLContext is safe to share."""
    return httpx.create_ssl_context()


class Call:
    """A single call: build it, `run()` it on a worker thread, `cancel()` it from any thread.

    `progress` is notified on every chunk and at the end, so a renderer can wait on it.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        prompt: str,
        params: Params,
        mode: Mode,
        *,
        source: str = "live",
        race_id: str | None = None,
        structure: Structure | None = None,
    ) -> None:
        check_request(prompt, params)
        self.endpoint = endpoint
        self.params = params
        self.structure = structure
        self.partial: pydantic.BaseModel | None = None
        """A structured answer's object so far: Mirascope's partial object (every field
        optional) after each chunk, streamed; the validated object, blocking."""
        base_url = endpoint.url_for(mode)
        request = Request(prompt, params, endpoint.kind, base_url, endpoint.model,
                          endpoint.transform, structure)
        # A replayed or simulated timing is never logged as anything else (nor as live).
        source = endpoint.source or source
        self.trace = Trace(request=request, mode=mode, source=source, race_id=race_id)
        self.progress = threading.Condition()
        self._cancelled = threading.Event()
        self._tracker = SocketTracker()
        self._t0_from_send = False
        # Built before t_start: constructing clients is set-up, not part of the call.
        timeout = httpx.Timeout(params.timeout_s, connect=min(params.timeout_s, 10.0))
        transport = httpx.HTTPTransport(verify=_ssl_context())
        use_network_backend(transport, self._tracker)
        self._http = httpx.Client(
            transport=transport, timeout=timeout, event_hooks={"request": [self._on_request]}
        )
        client = OpenAIClient(
            api_key=endpoint.api_key or "not-needed",
            base_url=base_url,
            http_client=self._http,
            max_retries=0,
            timeout=timeout,
        )
        # Mirascope's Params have no slot for server extensions (its `thinking` level is not
        # sent by the Chat Completions encoder); the SDK's own arguments do.
        extra: dict = {}
        if params.repeat_penalty is not None:
            extra["extra_body"] = {"repeat_penalty": params.repeat_penalty}
        if effort_value(params.reasoning_effort) is not None:
            extra["reasoning_effort"] = effort_value(params.reasoning_effort)
        if extra:
            completions = client.chat.completions
            completions.create = functools.partial(  # type: ignore[method-assign,assignment]
                completions.create, **extra
            )
        self._provider = Provider(client, openai_features=endpoint.kind == "openai")
        self._kwargs = {
            "model_id": Provider.PREFIX + endpoint.model,
            "messages": [llm.messages.user(prompt)],
            "toolkit": Toolkit(None),
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            **({"seed": params.seed} if params.seed is not None else {}),
            **({"stop_sequences": list(params.stop)} if params.stop else {}),
        }
        if structure is not None:
            self._kwargs["format"] = structure.format()

    # -- shared bookkeeping -------------------------------------------------------------

    def _on_request(self, request: httpx.Request) -> None:
        # The request hook fires before the connection exists; httpcore's trace tells when
        # the request starts to be sent (t0 until the send itself is known, below;
        # connecting counts as client_s).
        request.extensions["trace"] = self._on_http_event

    def _on_http_event(self, event: str, info: dict) -> None:
        if self.trace.t0 is None and event.endswith(".send_request_headers.started"):
            self.trace.t0 = time.perf_counter()
        elif event.endswith((".receive_response_headers.complete",
                             ".receive_response_headers.failed")) and not self._t0_from_send:
            # The request's head and body left in one send, at the first read for its answer
            # (ArrivalStream.write): the Python between building it and that send, where a
            # busy process can keep this thread waiting for the GIL, is client work.
            self._t0_from_send = True
            sent = self._tracker.sent_at()
            if self.trace.t0 is not None and sent is not None and sent > self.trace.t0:
                self.trace.t0 = sent

    def _add_text(self, text: str, thought: bool = False) -> None:
        # A chunk's moment is when its bytes reached this machine (the kernel's stamp), not
        # when this thread got round to them: nothing read for this call is older than t0 or
        # the chunk before.
        now = time.perf_counter()
        floor = self.trace.chunks[-1].t if self.trace.chunks else self.trace.t0
        arrived = self._tracker.arrived_at(now if floor is None else floor, now)
        with self.progress:
            self.trace.chunks.append(Chunk(arrived, text, thought))
            self.progress.notify_all()

    def _finish(self, status: str, error: errors.StreamRaceError | None = None) -> None:
        with self.progress:
            self.trace.t_end = time.perf_counter()
            if error is not None:
                self.trace.error = error.message
                self.trace.error_kind = error.kind
            self.trace.status = status  # type: ignore[assignment]
            self.progress.notify_all()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the call from any thread; its trace ends `cancelled` with what it measured."""
        self._cancelled.set()
        self._tracker.abort()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the call has ended; True if it has."""
        with self.progress:
            return self.progress.wait_for(lambda: self.trace.done, timeout)

    # -- the sending, the only part that differs --------------------------------------

    def run(self, t_start: float | None = None, t_run: float | None = None) -> Trace:
        """Make the call on this thread. Never raises: the outcome is in the trace.

        `t_start` is when the caller decided to start it (default: now); the wait until this
        thread got going is kept apart (`t_run`: now, or when the caller's thread woke for it).
        """
        self.trace.t_run = t_run if t_run is not None else time.perf_counter()
        self.trace.t_start = t_start if t_start is not None else time.perf_counter()
        try:
            if self.cancelled:
                raise _Cancelled()
            if self.trace.mode == "blocking":
                self._run_blocking()
            else:
                self._run_streaming()
            self._finish("cancelled" if self.cancelled else "ok")
        except Exception as exc:  # noqa: BLE001 - every outcome becomes a trace status
            if self.cancelled:
                self._finish("cancelled")
            else:
                self._finish("error", self._map(exc))
        finally:
            self._http.close()
        return self.trace

    def _run_blocking(self) -> None:
        response = self._provider.call(**self._kwargs)
        thinking = "".join(thought.thought for thought in response.thoughts)
        text = response.text(sep="")
        if thinking:
            self._add_text(thinking, thought=True)
        if text:
            self._add_text(text)
        self._take_usage(response.usage)
        if self.structure is not None:
            self.partial = self._parsed(response)

    def _run_streaming(self) -> None:
        stream = self._provider.stream(**self._kwargs)
        structured = self.structure is not None
        # With a format, this is StreamResponse.structured_stream()'s own loop (a partial object
        # after each text chunk), with each chunk's moment taken before it is parsed.
        for chunk in stream.chunk_stream():
            if chunk.type in ("text_chunk", "thought_chunk") and chunk.delta:
                self._add_text(chunk.delta, thought=chunk.type == "thought_chunk")
                if structured and chunk.type == "text_chunk":
                    self.partial = stream.parse(partial=True) or self.partial
            if self.cancelled:
                raise _Cancelled()
        self._take_usage(stream.usage)
        if structured:
            self.partial = self._parsed(stream) or self.partial

    def _parsed(self, response):
        """The whole object, validated as Mirascope's `parse()` does; InvalidObject if not."""
        assert self.structure is not None
        try:
            return response.parse()
        except llm.ParseError as exc:
            reason = invalid_reason(exc.original_exception or exc)
            raise errors.InvalidObject(
                f"The answer is not a valid {self.structure.model.__name__}: {reason}. "
                "The text and the partial object are kept.") from exc

    def _take_usage(self, usage) -> None:
        if usage is not None and (usage.output_tokens or usage.input_tokens):
            self.trace.input_tokens = usage.input_tokens
            self.trace.output_tokens = usage.output_tokens
            # Mirascope reads a missing count as 0: a 0 is kept only when it can be true.
            reasoning = usage.reasoning_tokens or 0
            if reasoning or not self.trace.thought_chunks:
                self.trace.reasoning_tokens = reasoning

    def _map(self, exc: Exception) -> errors.StreamRaceError:
        secrets = (self.endpoint.api_key,) if self.endpoint.api_key else ()
        error = errors.from_exception(
            exc,
            base_url=self.trace.request.base_url,
            model=self.endpoint.model,
            timeout_s=self.params.timeout_s,
            started=bool(self.trace.chunks),
            secrets=secrets,
        )
        if self.structure is not None and isinstance(error, errors.BadRequest) and (
                self.structure.mode != "json"):
            asked = "a JSON Schema as response_format" if self.structure.mode == "strict" else (
                "a forced tool call")
            error = errors.BadRequest(
                f"{error.message} The server may not support structured output as "
                f"{asked} ({self.structure.mode} mode): choose the json mode, which asks for "
                "the object in the prompt.")
        return error


class _Cancelled(Exception):
    """Raised inside a call to unwind it after `cancel()`."""


_warm_lock = threading.Lock()


_warmed = False


def warm_up() -> None:
    """Pay the first-call cost of Mirascope and the SDK (lazy imports, ~0.5 s) off the clock.

    Both modes make one real call to a throwaway playback server; once per process.
    """
    global _warmed
    with _warm_lock:
        if _warmed:
            return
        from lib.serving.playback import PlaybackServer, Script

        with PlaybackServer({"warm-up": Script(offsets=(0.0,), texts=("ok",))}) as server:
            endpoint = Endpoint("compatible", "warm-up", {m: server.base_url for m in MODES})
            for mode in MODES:
                Call(endpoint, "warm up", Params(timeout_s=5), mode).run()
        _warmed = True
        # A full collection pauses every thread for 40-100+ ms while it walks the heap loaded at
        # import; frozen, that heap is never walked again, and no call stalls on it.
        gc.collect()
        gc.freeze()
