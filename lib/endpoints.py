"""Endpoints: where a race's two calls go, checked before anything is sent.

`local` is the embedded llama.cpp model (one llama-server for every lane, see lib.embedded); `openai`
is api.openai.com; `compatible` is any OpenAI-compatible base URL (Ollama, vLLM, llama.cpp,
LM Studio, a gateway); `replay` plays a saved recording, possibly transformed (lib.replay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlparse

from lib import embedded
from lib.config import OPENAI_BASE_URL, Settings
from lib.errors import InvalidInput
from lib.trace import MODES, Mode


@dataclass(frozen=True)
class Endpoint:
    """A resolved endpoint. The key is kept out of repr, logs and the run log."""

    kind: str
    model: str
    urls: dict[Mode, str]
    """Base URL per lane (today the same URL for every lane of an endpoint)."""
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
        parsed.port
    except ValueError:
        raise InvalidInput(f"'{url}' has an invalid port.") from None
    return url.rstrip("/")


def resolve(settings: Settings) -> Endpoint:
    """Check the settings and turn them into an Endpoint; starts the embedded model if needed."""
    kind = settings.endpoint_kind
    if kind == "replay":
        from lib import replay  # it builds Endpoints itself; imported here to avoid a cycle

        return replay.endpoint(settings.model, settings.database_url)
    if kind == "local":
        lanes = embedded.ensure_lanes(settings.model_path)
        note = "The embedded model server had stopped and was restarted." if lanes.restarted else None
        return Endpoint("local", embedded.MODEL_ALIAS, dict(lanes.urls), None, note)
    model = (settings.model or "").strip()
    if not model:
        raise InvalidInput("Enter a model name (for Ollama e.g. llama3.2, for vLLM the served name).")
    if kind == "openai":
        if not settings.api_key:
            raise InvalidInput(
                "The openai endpoint needs OPENAI_API_KEY (environment, .streamlit/secrets.toml "
                "or the key field in the sidebar)."
            )
        url = check_base_url(settings.base_url or OPENAI_BASE_URL)
    elif kind == "compatible":
        url = check_base_url(settings.base_url)
    else:
        raise InvalidInput(
            f"Unknown endpoint kind '{kind}': use local, openai, compatible or replay.")
    return Endpoint(kind, model, {mode: url for mode in MODES}, settings.api_key or None)
