"""The Endpoint type: where a call goes (a base URL per lane), with what model and key.

Built by the resolvers of lib.endpoints.resolve; taken by lib.core.calls, which therefore
never imports a resolver (nor the servers they start).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlparse

from lib.core.errors import InvalidInput
from lib.core.trace import Mode


@dataclass(frozen=True)
class Endpoint:
    """A resolved endpoint. The key is kept out of repr, logs and the run log."""

    kind: str
    model: str
    urls: dict[Mode, str]
    """Base URL per lane (one URL for every lane of an endpoint today)."""
    api_key: str | None = field(default=None, repr=False)
    note: str | None = None
    """Something the user should know, e.g. that the embedded server was restarted."""
    source: str | None = None
    """The run-log source every call to this endpoint gets (`replay`, `simulated`): its
    timing is not a live measurement, whoever makes the call. None for real endpoints."""
    transform: str | None = None
    """JSON of what the endpoint does to its recording, for the run log's `transform`."""

    def url_for(self, mode: Mode) -> str:
        return self.urls[mode]

    @property
    def display_url(self) -> str:
        urls = sorted(set(self.urls.values()))
        return urls[0] if len(urls) == 1 else " | ".join(urls)


def check_base_url(url: str) -> str:
    """The URL without a trailing slash, or InvalidInput saying what is wrong with it."""
    url = (url or "").strip()
    if not url:
        raise InvalidInput("Enter the endpoint's base URL, e.g. http://127.0.0.1:11434/v1.")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidInput(
            f"'{url}' is not an http(s) URL. A base URL looks like http://127.0.0.1:8000/v1."
        )
    try:
        _ = parsed.port  # raises ValueError for a port out of range
    except ValueError:
        raise InvalidInput(f"'{url}' has an invalid port.") from None
    return url.rstrip("/")
