"""The command lines share their flags and mean the same by them (lib/cli/common.py)."""

from __future__ import annotations

import pytest

from lib.cli import bench, guards, race
from lib.cli.common import cli_settings

URL = "http://127.0.0.1:11434/v1"


@pytest.fixture(autouse=True)
def configured_for_the_embedded_model(monkeypatch, tmp_path):
    """A user whose configuration says `local` (or says nothing)."""
    monkeypatch.chdir(tmp_path)  # no .streamlit/secrets.toml
    for name in ("STREAMRACE_ENDPOINT", "STREAMRACE_BASE_URL", "STREAMRACE_MODEL",
                 "STREAMRACE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def parsers():
    yield "race", race.build_parser(), ["--prompt", "x"]
    yield "bench", bench.build_parser(), ["--out", "r.csv"]


@pytest.mark.parametrize("name,parser,required", list(parsers()), ids=lambda v: str(v)[:5])
def test_base_url_alone_means_that_compatible_server_in_every_command(name, parser, required):
    settings = cli_settings(parser.parse_args([*required, "--base-url", URL, "--model", "m"]))
    assert (settings.endpoint_kind, settings.base_url, settings.model) == ("compatible", URL, "m")


@pytest.mark.parametrize("name,parser,required", list(parsers()), ids=lambda v: str(v)[:5])
def test_an_explicit_endpoint_wins_over_the_base_url(name, parser, required):
    args = parser.parse_args([*required, "--endpoint", "openai", "--base-url", URL])
    assert cli_settings(args).endpoint_kind == "openai"


@pytest.mark.parametrize("name,parser,required", list(parsers()), ids=lambda v: str(v)[:5])
def test_without_flags_the_configuration_decides(name, parser, required, monkeypatch):
    assert cli_settings(parser.parse_args(required)).endpoint_kind == "local"
    monkeypatch.setenv("STREAMRACE_ENDPOINT", "compatible")
    monkeypatch.setenv("STREAMRACE_BASE_URL", URL)
    settings = cli_settings(parser.parse_args(required))
    assert (settings.endpoint_kind, settings.base_url) == ("compatible", URL)


def test_every_command_that_calls_an_endpoint_has_the_same_endpoint_flags():
    def flags(parser):
        return {a.dest: (tuple(a.option_strings), a.choices) for a in parser._actions
                if a.dest in ("endpoint", "base_url", "model", "api_key_env", "database_url")}

    assert len(flags(race.build_parser())) == 5
    assert flags(race.build_parser()) == flags(bench.build_parser()) == flags(guards.build_parser())


@pytest.mark.parametrize("name,parser,required", list(parsers()), ids=lambda v: str(v)[:5])
def test_a_kind_on_the_command_line_gets_its_own_key_and_model(name, parser, required,
                                                                monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-key")
    settings = cli_settings(parser.parse_args([*required, "--endpoint", "openai"]))
    assert (settings.endpoint_kind, settings.model, settings.api_key) == (
        "openai", "gpt-4o-mini", "sk-openai-key")
    # Configured for OpenAI, pointed at another server: OpenAI's key never goes there.
    monkeypatch.setenv("STREAMRACE_ENDPOINT", "openai")
    settings = cli_settings(parser.parse_args([*required, "--base-url", URL, "--model", "m"]))
    assert (settings.endpoint_kind, settings.base_url, settings.api_key) == (
        "compatible", URL, None)
