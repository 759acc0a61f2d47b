"""Every private API of Mirascope, the openai SDK and httpx that StreamRace relies on.

Kept in this one module so that a new release that moves one breaks here, loudly: the unit
test tests/unit/test_seams.py checks each of them exists where we reach for it.
"""

from __future__ import annotations

import functools
import socket
import ssl
import struct
import threading
import time
from typing import Iterator

import httpcore
import httpx
import pydantic
from mirascope.llm.content import (
    Text,
    TextChunk,
    TextEndChunk,
    TextStartChunk,
    Thought,
    ThoughtChunk,
    ThoughtEndChunk,
    ThoughtStartChunk,
)
from mirascope.llm.providers.openai.completions import _utils as completions_utils
from mirascope.llm.providers.openai.completions._utils import (
    CompletionsModelFeatureInfo,
    feature_info_for_openai_model,
)
from mirascope.llm.providers.openai.completions._utils.decode import _OpenAIChunkProcessor
from mirascope.llm.providers.openai.completions.base_provider import (
    BaseOpenAICompletionsProvider,
)
from mirascope.llm.responses import RawStreamEventChunk, Response, StreamResponse
from mirascope.llm.responses._utils import (  # noqa: F401 - lib.core.structured reads prefixes
    extract_serialized_json,
    parse_partial_json,
)
from openai import OpenAI

from lib.core import arrival
from lib.core.thoughts import InlineThink, reasoning_of, split_inline

_TIMEVAL = struct.Struct("@ll")  # the struct timeval SO_RCVTIMEO takes (Linux: two longs)


class ArrivalStream(httpcore.NetworkStream):
    """A plain TCP stream whose reads also say when their bytes reached this machine.

    `arrived_at` is the kernel's receive time (SO_TIMESTAMPNS) of the last bytes the last read
    returned, on the `perf_counter()` clock. It is when the endpoint's bytes were here, however
    late this process got to read them: on a busy client (dozens of streams, a few cores, one
    GIL) a thread can wake tens of ms after its bytes arrived, and a clock read only then
    would add that to every TTFT it measures. TLS runs over it (ArrivalTLSStream); systems
    without the option keep None: the caller's own clock is then the best there is.

    Reads and sends block in the system call itself, their timeouts kept by the kernel
    (`_in_the_kernel`): with a Python socket timeout, a thread polls, takes the GIL back, and
    only then reads or sends, and on a busy client that wait is tens of ms. A blocked recvmsg
    takes its bytes, and their stamp, the moment the kernel wakes it; the GIL is waited for
    after. A reader the system does not run until the next chunk has come finds them merged
    (TCP coalesces what waits in the receive queue, keeping the newest packet's stamp): those
    chunks get the moment the last of them arrived, still no later than the read.

    Writes are kept until the read that waits for the answer (or 64 KiB), so that a request's
    head and body leave in one send, as http.client sends them: sent apart, a busy process
    could keep the thread from sending the body, the head already at the server, for as long
    as the GIL was elsewhere. `sent_at` is when that send began: the request's t0.
    """

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._sock: socket.socket = inner.get_extra_info("socket")
        self.arrived_at: float | None = None
        self.sent_at: float | None = None
        """When the newest message written (a request; a TLS handshake's flight) began to go
        out: the start of its first send."""
        self._kernel_timeouts: dict[int, float | None] = {}  # as set: none at first
        self._unsent = bytearray()
        self._send_timeout: float | None = None
        self._message_sent = False
        self._answer_read = True
        arrival.ask_for_stamps(self._sock)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._send_unsent()
        self._answer_read = True
        try:
            self._in_the_kernel(socket.SO_RCVTIMEO, timeout)
            data, ancillary, _, _ = self._sock.recvmsg(max_bytes, arrival.ANCILLARY_SIZE)
        except (socket.timeout, BlockingIOError) as exc:  # as httpcore's own stream raises
            raise httpcore.ReadTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.ReadError(exc) from exc
        self.arrived_at = arrival.arrived_at(ancillary)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not self._unsent and self._answer_read:
            self._answer_read = False  # a new message: its first send will be its moment
            self._message_sent = False
        self._unsent += buffer
        self._send_timeout = timeout
        if len(self._unsent) >= 65536:
            self._send_unsent()

    def _send_unsent(self) -> None:
        if not self._unsent:
            return
        data, self._unsent = bytes(self._unsent), bytearray()
        try:
            self._in_the_kernel(socket.SO_SNDTIMEO, self._send_timeout)
            if not self._message_sent:  # nothing between this clock and the send lets go
                self.sent_at, self._message_sent = time.perf_counter(), True
            self._sock.sendall(data)
        except (socket.timeout, BlockingIOError) as exc:
            raise httpcore.WriteTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.WriteError(exc) from exc

    def _in_the_kernel(self, option: int, timeout: float | None) -> None:
        """Have the next send or receive block in its system call, `timeout` kept by the
        kernel (SO_SNDTIMEO / SO_RCVTIMEO; past it the call fails with EAGAIN)."""
        if timeout is not None and timeout <= 0:  # "do not wait": Python's own check
            self._sock.settimeout(timeout)
            return
        if self._sock.gettimeout() is not None:  # lets go of the GIL: only when it must
            self._sock.settimeout(None)
        if self._kernel_timeouts.get(option) != timeout:
            seconds = int(timeout or 0)
            micros = 0 if timeout is None else max(1, round((timeout - seconds) * 1e6))
            if micros >= 1_000_000:
                seconds, micros = seconds + 1, 0
            self._sock.setsockopt(socket.SOL_SOCKET, option,
                                  _TIMEVAL.pack(seconds, micros))  # 0, 0: no timeout
            self._kernel_timeouts[option] = timeout

    def close(self) -> None:
        self._unsent.clear()
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        return ArrivalTLSStream(self, ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class ArrivalTLSStream(httpcore.NetworkStream):
    """TLS over an ArrivalStream: the records are decrypted in memory (an SSLObject on two
    MemoryBIOs, as httpcore's own TLS-in-TLS stream does) from the plain stream's stamped
    reads, so HTTPS chunks keep their arrival moments too (`ssl.SSLSocket` reads the socket
    itself, where no stamp can be asked for). Plaintext is stamped by the read that completed
    its record: the plain stream's `arrived_at` after the last read, as SocketTracker reads it.
    """

    def __init__(self, raw: ArrivalStream, ssl_context: ssl.SSLContext,
                 server_hostname: str | None, timeout: float | None) -> None:
        self._raw = raw
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        try:
            self._ssl = ssl_context.wrap_bio(self._incoming, self._outgoing,
                                             server_hostname=server_hostname)
            self._perform(self._ssl.do_handshake, timeout)
        except (httpcore.ReadTimeout, httpcore.WriteTimeout) as exc:
            raw.close()
            raise httpcore.ConnectTimeout(exc) from exc
        except (httpcore.ReadError, httpcore.WriteError, OSError) as exc:  # ssl.SSLError too
            raw.close()
            raise httpcore.ConnectError(exc) from exc

    def _perform(self, operation, timeout: float | None):
        """Run an SSLObject operation, moving bytes between its BIOs and the socket until it
        no longer wants to read."""
        while True:
            try:
                result = operation()
                wants_read = False
            except ssl.SSLWantReadError:
                result, wants_read = None, True
            pending = self._outgoing.read()
            if pending:
                self._raw.write(pending, timeout)
            if not wants_read:
                return result
            data = self._raw.read(65536, timeout)
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._perform(functools.partial(self._ssl.read, max_bytes), timeout)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return b""  # the peer closed without close_notify: an EOF, as SSLSocket reports it
        except ssl.SSLError as exc:
            raise httpcore.ReadError(exc) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            while buffer:
                written = self._perform(functools.partial(self._ssl.write, buffer), timeout)
                buffer = buffer[written:]
        except ssl.SSLError as exc:
            raise httpcore.WriteError(exc) from exc

    def close(self) -> None:
        self._raw.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):  # pragma: no cover
        raise NotImplementedError("TLS inside TLS (an HTTPS proxy) is not supported")

    def get_extra_info(self, info: str):
        if info == "ssl_object":
            return self._ssl
        return self._raw.get_extra_info(info)


class SocketTracker(httpcore.NetworkBackend):
    """A network backend that remembers its sockets, so another thread can shut them down,
    and when the bytes they last read arrived (`arrived_at`, see ArrivalStream)."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()
        self._streams: list[httpcore.NetworkStream] = []
        self._lock = threading.Lock()
        self.aborted = False

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        if arrival.AVAILABLE:
            try:
                stream = ArrivalStream(stream)
            except OSError:  # a kernel without the option: the caller's clock it is
                pass
        with self._lock:
            self._streams.append(stream)
            if self.aborted:
                self._shutdown(stream)
        return stream

    def sent_at(self) -> float | None:
        """When the newest connection's last message began to go out, if known."""
        with self._lock:
            return getattr(self._streams[-1], "sent_at", None) if self._streams else None

    def arrived_at(self, floor: float, now: float) -> float:
        """When the bytes last read arrived, if known, kept between `floor` (nothing read for
        this call is older: t0, or the chunk before) and `now`; else `now`."""
        with self._lock:  # the newest connection is the one being read
            arrived = getattr(self._streams[-1], "arrived_at", None) if self._streams else None
        return now if arrived is None else min(max(arrived, floor), now)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):  # pragma: no cover
        return self._inner.connect_unix_socket(path, timeout, socket_options)

    def sleep(self, seconds: float) -> None:  # pragma: no cover
        self._inner.sleep(seconds)

    @staticmethod
    def _shutdown(stream: httpcore.NetworkStream) -> None:
        sock = stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            for stream in self._streams:
                self._shutdown(stream)


class Provider(BaseOpenAICompletionsProvider):
    """Mirascope's Chat Completions provider with our own client.

    Model names pass through whole (they may contain slashes); features are OpenAI's own
    for api.openai.com and neutral elsewhere, so temperature is never dropped.
    """

    id = "openai:completions"
    default_scope: list[str] = []
    api_key_env_var = "STREAMRACE_API_KEY"
    api_key_required = False
    PREFIX = "streamrace/"

    def __init__(self, client: OpenAI, openai_features: bool) -> None:  # noqa: D107
        self.client = client
        self.async_client = None  # type: ignore[assignment]  # only sync calls are made
        self._openai_features = openai_features

    def _model_name(self, model_id: str) -> str:
        return model_id.removeprefix(self.PREFIX)

    def _provider_model_name(self, model_id: str) -> str:
        return self._model_name(model_id)

    def _model_feature_info(self, model_id: str) -> CompletionsModelFeatureInfo:
        if self._openai_features:
            return feature_info_for_openai_model(self._model_name(model_id))
        return CompletionsModelFeatureInfo()

    # Mirascope's own `_call` and `_stream`, with decoders that keep the reasoning (its Chat
    # Completions decoders drop it); the rest is theirs, line for line.

    def _call(self, *, model_id, messages, toolkit, format=None, **params):  # noqa: A002
        input_messages, format, kwargs = completions_utils.encode_request(
            model_id=model_id, messages=messages, tools=toolkit, format=format, params=params,
            feature_info=self._model_feature_info(model_id), provider_id=self.id,
        )
        kwargs["model"] = self._model_name(model_id)
        openai_response = self.client.chat.completions.create(**kwargs)
        assistant_message, finish_reason, usage = completions_utils.decode_response(
            openai_response, model_id, self.id, self._provider_model_name(model_id)
        )
        if openai_response.choices:
            assistant_message.content = with_thoughts(
                openai_response.choices[0].message, list(assistant_message.content)
            )
        return Response(
            raw=openai_response, provider_id=self.id, model_id=model_id,
            provider_model_name=self._provider_model_name(model_id), params=params,
            tools=toolkit, input_messages=input_messages, assistant_message=assistant_message,
            finish_reason=finish_reason, usage=usage, format=format,
        )

    def _stream(self, *, model_id, messages, toolkit, format=None, **params):  # noqa: A002
        input_messages, format, kwargs = completions_utils.encode_request(
            model_id=model_id, messages=messages, tools=toolkit, format=format, params=params,
            feature_info=self._model_feature_info(model_id), provider_id=self.id,
        )
        kwargs["model"] = self._model_name(model_id)
        openai_stream = self.client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
        processor = ReasoningChunkProcessor()
        return StreamResponse(
            provider_id=self.id, model_id=model_id,
            provider_model_name=self._provider_model_name(model_id), params=params,
            tools=toolkit, input_messages=input_messages,
            chunk_iterator=processor.decode(openai_stream), format=format,
        )


def with_thoughts(message, parts: list) -> list:
    """A blocking message's content parts with its reasoning as a leading `Thought`: from the
    `reasoning`/`reasoning_content` field, or a leading inline `<think>` block of its text."""
    thought = reasoning_of(message)
    out: list = []
    for part in parts:
        if isinstance(part, Text) and not out:
            inline, answer = split_inline(part.text)
            if inline:
                thought += inline
                part = Text(text=answer)
        out.append(part)
    return ([Thought(thought=thought)] if thought else []) + out


class ReasoningChunkProcessor(_OpenAIChunkProcessor):
    """Mirascope's Chat Completions chunk processor, with the reasoning kept as its own thought
    chunks (ThoughtStartChunk, ThoughtChunk…, ThoughtEndChunk), as its Anthropic and Google
    decoders emit them. A delta may carry thought and answer at once: the thought goes first,
    then the answer, nothing lost. A thought after answer text ends the text part and opens a
    new thought part (Mirascope's stream keeps parts in order)."""

    def __init__(self) -> None:
        super().__init__()
        self._inline = InlineThink()
        self._thinking = False

    def decode(self, openai_stream) -> Iterator:
        for chunk in openai_stream:
            yield from self.process_chunk(chunk)
        thought, answer = self._inline.flush()  # a stream that ended without a finish reason
        yield from self._thought(thought)
        yield from self._end_thought()
        if answer:
            if self.current_content_type is None:  # type: ignore[has-type]
                yield TextStartChunk()
                self.current_content_type = "text"
            yield TextChunk(delta=answer)

    def _thought(self, text: str) -> Iterator:
        if not text:
            return
        if self.current_content_type == "text":
            yield TextEndChunk()
            self.current_content_type = None
        if not self._thinking:
            yield ThoughtStartChunk()
            self._thinking = True
        yield ThoughtChunk(delta=text)

    def _end_thought(self) -> Iterator:
        if self._thinking:
            yield ThoughtEndChunk()
            self._thinking = False

    def process_chunk(self, chunk) -> Iterator:
        choice = chunk.choices[0] if chunk.choices else None
        if choice is None:
            yield from super().process_chunk(chunk)
            return
        delta = choice.delta
        thought = reasoning_of(delta)
        content = delta.content or ""
        inline, content = self._inline.feed(content) if content else ("", "")
        if choice.finish_reason:
            held_thought, held_answer = self._inline.flush()
            inline, content = inline + held_thought, content + held_answer
        thought += inline
        answer = content or None  # "" (a role-only chunk's) opens no text part
        yield RawStreamEventChunk(raw_stream_event=chunk)
        yield from self._thought(thought)
        if answer is not None or delta.tool_calls or delta.refusal or choice.finish_reason:
            yield from self._end_thought()
        # Mirascope's processor gets the answer as the content; copied only when they differ
        # (three pydantic copies would be a sixth of a chunk's CPU).
        rest = chunk if answer == delta.content else chunk.model_copy(
            update={"choices": [choice.model_copy(
                update={"delta": delta.model_copy(update={"content": answer})})]}
        )
        for item in super().process_chunk(rest):
            if not isinstance(item, RawStreamEventChunk):
                yield item


class OpenAIClient(OpenAI):
    """The SDK's client, with response models built by pydantic-core (~6 µs a streamed chunk)
    instead of the SDK's lenient `construct_type` (~150 µs): at 2,000 chunks/s that is the
    difference between keeping up and falling behind. Off-spec payloads that fail validation
    still take the SDK's own path. (Overrides a private method; tests/unit/test_seams.py pins it.)
    """

    def _process_response_data(self, *, data, cast_to, response):
        if (
            isinstance(data, dict)
            and isinstance(cast_to, type)
            and issubclass(cast_to, pydantic.BaseModel)
        ):
            try:
                return cast_to.model_validate(data)
            except pydantic.ValidationError:
                pass
        return super()._process_response_data(data=data, cast_to=cast_to, response=response)


def use_network_backend(transport: httpx.HTTPTransport, backend: httpcore.NetworkBackend) -> None:
    """Make the transport's connection pool open its sockets through `backend` (httpx has no
    public way to: `_pool._network_backend` is the pool's only I/O seam)."""
    transport._pool._network_backend = backend
