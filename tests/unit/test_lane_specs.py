"""Lane specs (the command line's --lane) and named endpoints (secrets.toml, environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib.core.config import Settings, load_endpoints
from lib.core.errors import InvalidInput
from lib.core.trace import Params
from lib.endpoints import Endpoint
from lib.race import Lane, LaneSpec, lane_label, parse_spec
from lib.race.lanes import spec_settings


def test_spec_of_the_issue():
    spec = parse_spec("label=ours,base_url=http://127.0.0.1:8000/v1,model=qwen,mode=streaming")
    assert spec == LaneSpec(mode="streaming", base_url="http://127.0.0.1:8000/v1", model="qwen",
                            label="ours")


def test_spec_values_keep_slashes_and_equals_signs():
    spec = parse_spec("mode=blocking, endpoint=local , model=org/model=v2, effort=high,"
                      "thinking=on")
    assert (spec.mode, spec.endpoint, spec.model) == ("blocking", "local", "org/model=v2")
    assert (spec.reasoning_effort, spec.show_thinking) == ("high", True)


@pytest.mark.parametrize("text, message", [
    ("model=x", "say mode=blocking or mode=streaming"),
    ("mode=fast", "say mode=blocking or mode=streaming"),
    ("mode=blocking,colour=red", "'colour=red' is not one of"),
    ("mode=blocking,model", "'model' is not one of"),
    ("mode=blocking,mode=streaming", "mode is given twice"),
    ("mode=blocking,endpoint=local,base_url=http://x/v1", "not both"),
    ("mode=blocking,effort=extreme", "effort is one of"),
    ("mode=blocking,thinking=maybe", "thinking is on or off"),
])
def test_bad_specs_say_what_is_wrong(text, message):
    with pytest.raises(InvalidInput, match=message):
        parse_spec(text)


def test_spec_settings_pick_a_named_endpoint_a_kind_or_a_url():
    default = Settings("compatible", "http://a/v1", "m", api_key="k-default",
                       database_url="sqlite:///x.db")
    named = {"ours": Settings("compatible", "http://ours/v1", "qwen", api_key="k-ours")}
    name, settings = spec_settings(LaneSpec("streaming", endpoint="ours"), named, default, {})
    assert (name, settings.base_url, settings.model, settings.api_key) == (
        "ours", "http://ours/v1", "qwen", "k-ours")
    name, settings = spec_settings(LaneSpec("streaming", model="other"), named, default, {})
    assert (name, settings.base_url, settings.model) == ("compatible", "http://a/v1", "other")
    # A URL lane takes nothing configured: no other server's key goes to it.
    name, settings = spec_settings(LaneSpec("blocking", base_url="http://b/v1", model="x"),
                                   named, default, {"B_KEY": "k-b"})
    assert (name, settings.base_url, settings.api_key, settings.database_url) == (
        "compatible", "http://b/v1", None, "sqlite:///x.db")
    _, settings = spec_settings(LaneSpec("blocking", base_url="http://b/v1", model="x",
                                         api_key_env="B_KEY"), named, default, {"B_KEY": "k-b"})
    assert settings.api_key == "k-b"
    with pytest.raises(InvalidInput, match="B_KEY"):
        spec_settings(LaneSpec("blocking", base_url="http://b/v1", api_key_env="B_KEY"),
                      named, default, {})


def test_lane_label_and_params():
    local = Endpoint("local", "gemma-3-270m", {"blocking": "u", "streaming": "u"})
    lane = Lane(local, "streaming", reasoning_effort="off", show_thinking=True)
    assert lane.title == lane_label("local", "gemma-3-270m", "streaming") == \
        "local · gemma-3-270m · streaming"
    params = lane.params(Params(temperature=0.3, reasoning_effort="high"))
    # The kind's sampling defaults under the race's values, then the lane's own settings.
    assert params.repeat_penalty is not None and params.temperature == 0.3
    assert (params.reasoning_effort, params.show_thinking) == ("off", True)
    assert Lane(local, "blocking", label="mine").title == "mine"


def test_named_endpoints_from_secrets_and_environment(tmp_path: Path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        'STREAMRACE_ENDPOINT = "local"\n'
        '[endpoints.ours]\nbase_url = "http://127.0.0.1:8000/v1"\nmodel = "qwen"\n'
        'api_key_env = "OURS_KEY"\n'
        '[endpoints.provider]\nkind = "openai"\nmodel = "gpt-4o-mini"\n'
        '[endpoints.broken]\nkind = "nonsense"\n'
    )
    environ = {"OURS_KEY": "k-ours", "OPENAI_API_KEY": "k-openai",
               "STREAMRACE_ENDPOINT_OURS_MODEL": "qwen-big",
               "STREAMRACE_ENDPOINT_VLLM_BOX_BASE_URL": "http://10.0.0.2:8000/v1",
               "STREAMRACE_ENDPOINT_VLLM_BOX_MODEL": "Qwen/Qwen3-8B"}
    endpoints = load_endpoints(environ, secrets)
    assert sorted(endpoints) == ["ours", "provider", "vllm_box"]
    ours = endpoints["ours"]
    assert (ours.endpoint_kind, ours.base_url, ours.model) == (
        "compatible", "http://127.0.0.1:8000/v1", "qwen-big")  # the environment wins
    assert (ours.api_key, ours.key_origin) == ("k-ours", "environment")
    provider = endpoints["provider"]
    assert (provider.endpoint_kind, provider.api_key) == ("openai", "k-openai")
    assert provider.base_url == "https://api.openai.com/v1"
    assert endpoints["vllm_box"].model == "Qwen/Qwen3-8B"
    assert "k-ours" not in repr(endpoints)  # keys are never in a repr (logs, tracebacks)


def test_no_named_endpoints_without_configuration(tmp_path: Path):
    assert load_endpoints({}, tmp_path / "missing.toml") == {}


def test_an_endpoint_added_in_the_sidebar_is_checked():
    from app_pages.endpoints import checked

    default = Settings("local", database_url="sqlite:///x.db")
    name, settings = checked(" Ours ", "compatible", "http://127.0.0.1:8000/v1/", "qwen",
                             "k-typed", default)
    assert (name, settings.base_url, settings.model) == ("ours", "http://127.0.0.1:8000/v1",
                                                          "qwen")
    assert (settings.api_key, settings.key_origin, settings.database_url) == (
        "k-typed", "typed", "sqlite:///x.db")
    _, openai = checked("cloud", "openai", "", "gpt-4o-mini", "", default)
    assert openai.base_url == "https://api.openai.com/v1"
    for bad, message in ((("", "compatible", "http://x/v1", "m", ""), "name"),
                         (("a b", "compatible", "http://x/v1", "m", ""), "name"),
                         (("ok", "compatible", "http://x/v1", " ", ""), "model"),
                         (("ok", "compatible", "ftp://x", "m", ""), "http")):
        with pytest.raises(InvalidInput, match=message):
            checked(*bad, default)
