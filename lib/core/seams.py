"""Every private API of Mirascope, the openai SDK and httpx that StreamRace relies on.

Kept in this one module so that a new release that moves one breaks here, loudly: the unit
test tests/unit/test_seams.py checks each of them exists where we reach for it.
"""

from __future__ import annotations

import socket
import threading

import httpcore
import httpx
import pydantic
from mirascope.llm.providers.openai.completions._utils import (
    CompletionsModelFeatureInfo,
    feature_info_for_openai_model,
)
from mirascope.llm.providers.openai.completions.base_provider import (
    BaseOpenAICompletionsProvider,
)
from openai import OpenAI


class SocketTracker(httpcore.NetworkBackend):
    """A network backend that remembers its sockets, so another thread can shut them down."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()
        self._streams: list[httpcore.NetworkStream] = []
        self._lock = threading.Lock()
        self.aborted = False

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        with self._lock:
            self._streams.append(stream)
            if self.aborted:
                self._shutdown(stream)
        return stream

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
