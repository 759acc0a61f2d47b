"""The `replay` kind: a recording played by this process's replay server (lib.replay)."""

from __future__ import annotations

import json

from lib.core.config import Settings
from lib.core.trace import MODES
from lib.endpoints.endpoint import Endpoint
from lib.replay import lookup, parse_model
from lib.replay.server import ensure_server, served_names


def endpoint_for(base_url: str, model: str) -> Endpoint:
    """A `replay` endpoint on a replay server: both lanes there, the source and transform
    that its calls are logged with taken from the model name."""
    spec = parse_model(model)
    return Endpoint("replay", spec.model, {mode: base_url for mode in MODES}, None,
                    source=spec.source, transform=json.dumps(spec.describe(), sort_keys=True))


def resolve(settings: Settings) -> Endpoint:
    """The `replay` endpoint for the settings' model name: checked, and its server running."""
    spec = parse_model(settings.model)
    base_url = ensure_server(settings.database_url)
    needed = spec.profile.text if spec.profile is not None else spec.recording
    if needed is not None and needed not in served_names(base_url):
        lookup({}, needed)  # the same message as the server's
    return endpoint_for(base_url, spec.model)
