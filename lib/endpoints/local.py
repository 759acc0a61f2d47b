"""The `local` kind: the embedded llama.cpp model, started on first use (lib.serving.embedded)."""

from __future__ import annotations

from lib.core.config import Settings
from lib.endpoints.endpoint import Endpoint
from lib.serving import embedded

DEFAULTS = {"repeat_penalty": embedded.REPEAT_PENALTY, "stop": embedded.STOP}
"""A small base model: the repeat penalty and stop sequences keep it readable."""


def resolve(settings: Settings) -> Endpoint:
    lanes = embedded.ensure_lanes(settings.model_path)
    note = "The embedded model server had stopped and was restarted." if lanes.restarted else None
    return Endpoint("local", embedded.MODEL_ALIAS, dict(lanes.urls), None, note)
