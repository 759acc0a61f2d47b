"""The `openai` and `compatible` kinds: a remote OpenAI-compatible server, nothing started."""

from __future__ import annotations

from lib.core.config import OPENAI_BASE_URL, Settings
from lib.core.errors import InvalidInput
from lib.core.trace import MODES
from lib.endpoints.endpoint import Endpoint, check_base_url


def _model(settings: Settings) -> str:
    model = (settings.model or "").strip()
    if not model:
        raise InvalidInput(
            "Enter a model name (for Ollama e.g. llama3.2, for vLLM the served name)."
        )
    return model


def _endpoint(settings: Settings, model: str, url: str) -> Endpoint:
    return Endpoint(
        settings.endpoint_kind, model, {mode: url for mode in MODES}, settings.api_key or None
    )


def resolve_openai(settings: Settings) -> Endpoint:
    model = _model(settings)
    if not settings.api_key:
        raise InvalidInput(
            "The openai endpoint needs OPENAI_API_KEY (environment, .streamlit/secrets.toml "
            "or the key field in the sidebar)."
        )
    return _endpoint(settings, model, check_base_url(settings.base_url or OPENAI_BASE_URL))


def resolve_compatible(settings: Settings) -> Endpoint:
    model = _model(settings)
    return _endpoint(settings, model, check_base_url(settings.base_url))
