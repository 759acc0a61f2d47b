"""The lanes of a race: which endpoint, model and mode each call of a race uses, and its label.

A `Lane` is resolved (its `Endpoint` is known: a server may have been started for it); a
`LaneSpec` is what a user asked for (a configured endpoint's name or kind, or a base URL, a
model, a mode), as the command line's `--lane label=…,mode=…` and the race page's lane rows
give it. `resolve_lanes` turns specs into lanes, starting each endpoint once.

The default race is two lanes of one endpoint: blocking, then streamed (`default_lanes`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence, get_args

from lib.core.config import ENDPOINT_KINDS, Settings
from lib.core.errors import InvalidInput
from lib.core.thoughts import EFFORTS
from lib.core.trace import MODES, Mode, Params
from lib.endpoints import Endpoint

MIN_LANES, MAX_LANES = 2, 4
"""A race compares at least two calls; four columns are what a screen shows side by side (and
what the embedded model serves at once: lib.serving.embedded.SLOTS)."""

MODE_WORDS: dict[str, Mode] = {"blocking": "blocking", "streaming": "streaming",
                               "streamed": "streaming", "stream": "streaming"}
"""What a user may type for a mode (the run log always says `blocking` or `streaming`)."""


@dataclass(frozen=True)
class Lane:
    """One call of a race: where it goes, how, and with which of the race's settings changed.

    `reasoning_effort` and `show_thinking` are None when the lane takes the race's own.
    """

    endpoint: Endpoint
    mode: Mode
    label: str = ""
    """Shown above the lane's column and logged in `lane_label`; default `lane_label()`."""
    endpoint_name: str = ""
    """The configured endpoint's name (the sidebar's, or its kind); default the kind."""
    reasoning_effort: str | None = None
    show_thinking: bool | None = None

    @property
    def name(self) -> str:
        return self.endpoint_name or self.endpoint.kind

    @property
    def title(self) -> str:
        """The label a user reads: theirs, or endpoint · model · mode."""
        return self.label or lane_label(self.name, self.endpoint.model, self.mode)

    def params(self, race: Params) -> Params:
        """The race's parameters for this lane: its endpoint kind's sampling defaults under
        the race's values, then the lane's own settings."""
        from lib.endpoints.resolve import default_params  # resolvers import servers: when needed

        params = default_params(self.endpoint, **race.as_dict())
        if self.reasoning_effort is not None:
            effort = self.reasoning_effort
            params = replace(params, reasoning_effort=None if effort == "default" else effort)
        if self.show_thinking is not None:
            params = replace(params, show_thinking=self.show_thinking)
        return params


def lane_label(endpoint_name: str, model: str, mode: str) -> str:
    """endpoint · model · mode: what tells two lanes apart in a column title and in History."""
    return " · ".join(part for part in (endpoint_name, model, mode) if part)


def default_lanes(endpoint: Endpoint, endpoint_name: str = "") -> tuple[Lane, Lane]:
    """The race as it always was: one endpoint, blocking beside streamed."""
    return tuple(Lane(endpoint, mode, endpoint_name=endpoint_name) for mode in MODES)  # type: ignore[return-value]


def check_lanes(lanes: Sequence[Lane]) -> None:
    if not MIN_LANES <= len(lanes) <= MAX_LANES:
        raise InvalidInput(f"A race has {MIN_LANES} to {MAX_LANES} lanes; {len(lanes)} given.")
    titles = [lane.title for lane in lanes]
    twice = sorted({title for title in titles if titles.count(title) > 1})
    if twice:
        raise InvalidInput(f"Two lanes are labelled '{twice[0]}': give each lane its own label "
                           "(label=…), so that the run log and History can tell them apart.")


# -- what a user asks for ----------------------------------------------------------------------


@dataclass(frozen=True)
class LaneSpec:
    """A lane as asked for, before its endpoint is resolved."""

    mode: Mode
    endpoint: str = ""
    """A configured endpoint's name, or a kind (`local`, `openai`, …); "" for the default one."""
    base_url: str = ""
    """A `compatible` endpoint at this URL (instead of `endpoint`)."""
    model: str = ""
    """"" for the endpoint's own model."""
    label: str = ""
    api_key_env: str = ""
    """The variable holding this lane's key (a key itself is never typed on a command line)."""
    reasoning_effort: str | None = None
    show_thinking: bool | None = None


SPEC_KEYS = ("label", "mode", "model", "endpoint", "base_url", "api_key_env", "effort",
             "thinking")


def parse_spec(text: str, mode_required: bool = True) -> LaneSpec:
    """`label=ours,base_url=http://127.0.0.1:8000/v1,model=qwen,mode=streaming` as a LaneSpec.

    Comma-separated key=value pairs; the value is everything after the first `=` (model names
    may hold `=` or `/`). `mode` is required (without `mode_required`, e.g. a benchmark's
    target whose modes are the benchmark's own, it must not be given); `endpoint` and
    `base_url` exclude each other.
    """
    values: dict[str, str] = {}
    for pair in (part.strip() for part in text.split(",")):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not sep or key not in SPEC_KEYS:
            raise InvalidInput(f"Lane '{text}': '{pair}' is not one of "
                               f"{', '.join(k + '=…' for k in SPEC_KEYS)}.")
        if key in values:
            raise InvalidInput(f"Lane '{text}': {key} is given twice.")
        values[key] = value.strip()
    mode = MODE_WORDS.get(values.get("mode", "").lower())
    if not mode_required:
        if "mode" in values:
            raise InvalidInput(f"'{text}': no mode here (the benchmark's --modes apply).")
        mode = "streaming"
    elif mode is None:
        raise InvalidInput(f"Lane '{text}': say mode=blocking or mode=streaming.")
    if values.get("endpoint") and values.get("base_url"):
        raise InvalidInput(f"Lane '{text}': give endpoint=… or base_url=…, not both.")
    effort = values.get("effort") or None
    if effort is not None and effort not in EFFORTS:
        raise InvalidInput(f"Lane '{text}': effort is one of {', '.join(EFFORTS)}.")
    thinking = values.get("thinking")
    if thinking not in (None, "on", "off"):
        raise InvalidInput(f"Lane '{text}': thinking is on or off.")
    return LaneSpec(mode=mode, endpoint=values.get("endpoint", ""),
                    base_url=values.get("base_url", ""), model=values.get("model", ""),
                    label=values.get("label", ""), api_key_env=values.get("api_key_env", ""),
                    reasoning_effort=effort,
                    show_thinking=None if thinking is None else thinking == "on")


def spec_settings(spec: LaneSpec, endpoints: Mapping[str, Settings], default: Settings,
                  environ: Mapping[str, str]) -> tuple[str, Settings]:
    """The endpoint name and settings a spec's lane resolves: a named endpoint, a kind (as
    configured when it is the default's, else that kind's defaults), or a compatible URL."""
    from lib.core.config import load_settings

    if spec.base_url:
        # The URL it names, nothing else configured: no configured key goes to another server.
        name = "compatible"
        settings = Settings("compatible", spec.base_url, database_url=default.database_url)
    elif spec.endpoint in endpoints:
        name, settings = spec.endpoint, endpoints[spec.endpoint]
    elif not spec.endpoint or spec.endpoint == default.endpoint_kind:
        name, settings = default.endpoint_kind, default
    elif spec.endpoint in ENDPOINT_KINDS:
        name = spec.endpoint
        settings = load_settings({**environ, "STREAMRACE_ENDPOINT": spec.endpoint})
        settings = settings.with_overrides(database_url=default.database_url)
    else:
        known = sorted({*endpoints, *ENDPOINT_KINDS})
        raise InvalidInput(f"No endpoint named '{spec.endpoint}': use one of {', '.join(known)} "
                           "(named endpoints: README, Endpoints side by side).")
    if spec.api_key_env:
        key = environ.get(spec.api_key_env)
        if not key:
            raise InvalidInput(f"The variable {spec.api_key_env} (api_key_env) is not set.")
        settings = replace(settings, api_key=key, key_origin="environment")
    return name, settings.with_overrides(model=spec.model or None)


def resolve_lanes(specs: Sequence[LaneSpec], endpoints: Mapping[str, Settings],
                  default: Settings, environ: Mapping[str, str]) -> list[Lane]:
    """The lanes of these specs, their endpoints resolved (each distinct endpoint once)."""
    from lib.endpoints.resolve import resolve

    if not MIN_LANES <= len(specs) <= MAX_LANES:
        raise InvalidInput(f"A race has {MIN_LANES} to {MAX_LANES} lanes; {len(specs)} given "
                           "(one --lane each).")
    resolved: dict[Settings, Endpoint] = {}
    lanes = []
    for spec in specs:
        name, settings = spec_settings(spec, endpoints, default, environ)
        if settings not in resolved:
            resolved[settings] = resolve(settings)
        lanes.append(Lane(resolved[settings], spec.mode, spec.label, name,
                          spec.reasoning_effort, spec.show_thinking))
    check_lanes(lanes)
    return lanes


assert set(MODE_WORDS.values()) == set(get_args(Mode))
