"""The errors a call can end with, each carrying a message a user can act on.

    StreamRaceError
     ├── InvalidInput        nothing was sent: empty prompt, bad base URL, absurd parameter
     └── CallFailed          the request was sent (or tried) and did not complete
          ├── EndpointUnreachable   connection refused, unknown host
          │    └── ServerStartFailed  a server we run ourselves (embedded model, replay) did
          │                           not start: binary missing, killed by a signal, no health
          ├── AuthFailed            401 / 403: missing or wrong key
          ├── ModelNotFound         404: unknown model or wrong path
          ├── RateLimited           429, with the server's Retry-After when it gave one
          ├── BadRequest            400 / 422: the server rejected the parameters
          ├── ServerFailed          5xx
          ├── TimedOut              no byte within the configured timeout
          ├── StreamBroken          the connection or the stream broke after it started
          ├── InvalidObject         a structured answer arrived whole but is not a valid object
          ├── WorkersUnavailable    the benchmark's Ray cluster cannot be joined or started,
          │                         or gives no workers in time (nothing was sent)
          └── WorkerLost            the benchmark worker sending the request died with it

Library errors (Mirascope's `llm.Error` tree, openai, httpx, ValueError from a
mid-stream decode) are converted once, in `from_exception`, where they enter.
Messages never contain an API key: callers pass the keys to scrub.
"""

from __future__ import annotations

import json
import re
import ssl

import httpx


class StreamRaceError(Exception):
    """Base of every error StreamRace raises on purpose."""

    kind = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(StreamRaceError):
    """The input was refused before anything was sent."""

    kind = "invalid_input"


class CallFailed(StreamRaceError):
    """The request was sent, or tried, and did not complete."""

    kind = "call_failed"


class EndpointUnreachable(CallFailed):
    """No connection could be made to the endpoint."""

    kind = "unreachable"


class AuthFailed(CallFailed):
    """The endpoint refused the key (401/403)."""

    kind = "auth"


class ModelNotFound(CallFailed):
    """The endpoint does not know the model, or the URL has no chat API (404)."""

    kind = "not_found"


class RateLimited(CallFailed):
    """The endpoint asked us to slow down (429)."""

    kind = "rate_limited"

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BadRequest(CallFailed):
    """The endpoint rejected the request's parameters (400/422)."""

    kind = "bad_request"


class ServerFailed(CallFailed):
    """The endpoint answered with a server error (5xx)."""

    kind = "server_error"


class TimedOut(CallFailed):
    """No byte arrived within the configured timeout."""

    kind = "timeout"


class StreamBroken(CallFailed):
    """The response started, then the connection or the data broke."""

    kind = "stream_broken"


class InvalidObject(CallFailed):
    """A structured answer ended, but is not an object valid against its schema (the text,
    and the partial object read from it, are kept)."""

    kind = "invalid_object"


class WorkersUnavailable(CallFailed):
    """The benchmark's Ray cluster cannot be reached or started, or did not start its workers
    in time: nothing was sent."""

    kind = "workers"


class WorkerLost(CallFailed):
    """The Ray worker that was sending this request died (or stopped answering) with it in
    flight: whatever it received went with it."""

    kind = "worker_lost"


class ServerStartFailed(EndpointUnreachable):
    """A server StreamRace starts itself (the embedded model, the replay server) did not start;
    the message says why (missing binary, a crash by signal, no health in time)."""

    kind = "server_start"


def redact(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """`text` with every secret (and any `sk-...` looking token) replaced by a mask."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "•••")
    return re.sub(r"\bsk-[A-Za-z0-9_\-*.]{6,}", "sk-•••", text)


def _status_of(exc: BaseException) -> int | None:
    for candidate in (exc, getattr(exc, "original_exception", None), exc.__cause__):
        status = getattr(candidate, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def _retry_after(exc: BaseException) -> float | None:
    for candidate in (getattr(exc, "original_exception", None), exc.__cause__, exc):
        response = getattr(candidate, "response", None)
        if isinstance(response, httpx.Response):
            value = response.headers.get("retry-after")
            try:
                return float(value) if value is not None else None
            except ValueError:
                return None
    return None


def _server_detail(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """The server's own words, scrubbed, then shortened: often the most useful part of the
    message. (Shortened first, a key cut in two at the limit would escape the scrub.)"""
    text = redact(str(exc).strip(), secrets)
    return text if len(text) <= 300 else text[:300] + "…"


def _certificate_problem(exc: BaseException) -> str | None:
    """Why the server's certificate was refused, if that is what failed (it lies a few
    wrappers deep: Mirascope's error, the SDK's, httpx's, httpcore's)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        candidate = todo.pop()
        if candidate is None or id(candidate) in seen:
            continue
        seen.add(id(candidate))
        if isinstance(candidate, ssl.SSLCertVerificationError):
            return candidate.verify_message or str(candidate)
        todo += [candidate.__cause__, candidate.__context__,
                 getattr(candidate, "original_exception", None)]
    return None


def _what_broke(exc: BaseException) -> str:
    """What a broken response did, in words, with the library's detail after it."""
    for candidate in (exc, exc.__cause__, getattr(exc, "original_exception", None)):
        if isinstance(candidate, UnicodeDecodeError):
            return "sent bytes that are not UTF-8 text"
        if isinstance(candidate, json.JSONDecodeError):
            return "sent data that is not valid JSON (a malformed server-sent event or body)"
        if isinstance(candidate, (httpx.RemoteProtocolError, httpx.ReadError)):
            return "closed the connection in the middle of the answer"
    return "sent a response that was cut or malformed"


def from_exception(
    exc: BaseException,
    *,
    base_url: str,
    model: str,
    timeout_s: float,
    started: bool,
    secrets: tuple[str, ...] = (),
) -> StreamRaceError:
    """Convert any exception from a call into our tree, with a message a user can act on.

    `started` says whether text had already arrived: a failure after that is a broken stream,
    whatever the library called it.
    """
    if isinstance(exc, StreamRaceError):
        return exc
    # Imported here: Mirascope takes seconds to import, and a command that makes no call (a
    # replay server, `python -m lib.replay list`) should not wait for it.
    from mirascope import llm

    detail = _server_detail(exc, secrets)
    timeout_like = isinstance(exc, (llm.TimeoutError, httpx.TimeoutException)) or (
        isinstance(exc.__cause__, httpx.TimeoutException)
    )
    if timeout_like:
        where = "mid-stream" if started else "before the first byte"
        kept = " The text received so far is kept." if started else ""
        error: StreamRaceError = TimedOut(
            f"Timed out {where}: {base_url} sent nothing for {timeout_s:g} s"
            f"{' and did not end the stream' if started else ''}. "
            f"Raise the timeout, or check that the server is not overloaded.{kept}"
        )
    elif started:
        error = StreamBroken(
            f"The stream from {base_url} broke after it started: it {_what_broke(exc)} "
            f"({type(exc).__name__}: {detail}). The text received so far is kept."
        )
    else:
        status = _status_of(exc)
        if isinstance(exc, llm.AuthenticationError) or status in (401, 403):
            error = AuthFailed(
                f"{base_url} refused the API key (HTTP {status or 401}). "
                "Check the key in the sidebar, the environment or .streamlit/secrets.toml."
            )
        elif isinstance(exc, llm.NotFoundError) or status == 404:
            error = ModelNotFound(
                f"{base_url} does not know the model '{model}' (HTTP 404), or the URL has no "
                "/chat/completions route. Check the model name and that the base URL ends in /v1."
            )
        elif isinstance(exc, llm.RateLimitError) or status == 429:
            retry_after = _retry_after(exc)
            hint = f" It asked to retry after {retry_after:g} s." if retry_after else ""
            error = RateLimited(f"{base_url} is rate limiting requests (HTTP 429).{hint}",
                                retry_after)
        elif isinstance(exc, llm.BadRequestError) or status in (400, 422):
            error = BadRequest(f"{base_url} rejected the request (HTTP {status}): {detail}")
        elif isinstance(exc, llm.ServerError) or (status is not None and status >= 500):
            error = ServerFailed(
                f"{base_url} answered with a server error (HTTP {status}): {detail}"
            )
        elif (problem := _certificate_problem(exc)) is not None:
            error = EndpointUnreachable(
                f"{base_url} sent a TLS certificate this machine does not trust ({problem}). "
                "A server with a certificate from a private authority: set SSL_CERT_FILE to "
                "that authority's certificate (PEM) before starting StreamRace."
            )
        elif isinstance(exc, (llm.ConnectionError, httpx.ConnectError, ConnectionError)):
            error = EndpointUnreachable(
                f"Cannot reach {base_url}: is the server running, and is the URL right? ({detail})"
            )
        elif isinstance(exc, (httpx.TransportError, ValueError, llm.Error)):
            error = StreamBroken(f"{base_url} {_what_broke(exc)} ({detail}).")
        else:
            error = CallFailed(f"The call to {base_url} failed ({type(exc).__name__}: {detail})")
    error.__cause__ = exc
    return error
