"""Settings → Endpoint, by kind: one resolver and one set of sampling defaults per kind.

To add an endpoint kind: write its resolver (a function Settings → Endpoint that raises
InvalidInput with a message a user can act on), add it to `KINDS`, and to
lib.core.config.ENDPOINT_KINDS so that the sidebar and the command lines offer it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lib.core.config import ENDPOINT_KINDS, Settings, unknown_kind
from lib.core.trace import Params
from lib.endpoints import local, remote, replayed
from lib.endpoints.endpoint import Endpoint


@dataclass(frozen=True)
class Kind:
    resolve: Callable[[Settings], Endpoint]
    defaults: dict = field(default_factory=dict)
    """Sampling defaults of this kind's model (the embedded base model's repeat penalty)."""


KINDS: dict[str, Kind] = {
    "local": Kind(local.resolve, local.DEFAULTS),
    "openai": Kind(remote.resolve_openai),
    "compatible": Kind(remote.resolve_compatible),
    "replay": Kind(replayed.resolve),
}
assert tuple(KINDS) == ENDPOINT_KINDS, "every configurable kind has a resolver"


def resolve(settings: Settings) -> Endpoint:
    """Check the settings and turn them into an Endpoint; starts a local server if needed."""
    kind = KINDS.get(settings.endpoint_kind)
    if kind is None:
        raise unknown_kind(settings.endpoint_kind)
    return kind.resolve(settings)


def default_params(endpoint: Endpoint, **overrides) -> Params:
    """Sampling defaults of the endpoint's kind, then `overrides`."""
    kind = KINDS.get(endpoint.kind)
    for name, value in (kind.defaults if kind else {}).items():
        overrides.setdefault(name, value)
    return Params(**overrides)
