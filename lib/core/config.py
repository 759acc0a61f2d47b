"""Configuration, the same for the app and every `python -m lib.<name>` command.

Read from the environment, then `.streamlit/secrets.toml` (same names), then defaults.
The sidebar starts from these settings; CLI flags override them.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from lib.core.errors import InvalidInput

ENDPOINT_KINDS = ("local", "openai", "compatible", "replay")
DEFAULT_MODELS = {"local": "gemma-3-270m", "openai": "gpt-4o-mini", "compatible": "", "replay": ""}
OPENAI_BASE_URL = "https://api.openai.com/v1"
SECRETS_PATH = Path(".streamlit/secrets.toml")


@dataclass(frozen=True)
class Settings:
    """Where calls go and where runs are logged. `api_key` never appears in repr."""

    endpoint_kind: str = "local"
    base_url: str = ""
    model: str = ""
    api_key: str | None = field(default=None, repr=False)
    key_origin: str | None = None
    """Where the key came from, for the UI: 'environment', 'secrets.toml' or 'typed'."""
    model_path: str | None = None
    database_url: str | None = None

    def with_overrides(self, **changes) -> "Settings":
        """A copy with the non-None changes applied (CLI flags, sidebar widgets)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _read_secrets(path: Path) -> dict:
    return {k: v for k, v in _read_toml(path).items() if isinstance(v, (str, int, float))}


def load_settings(
    environ: Mapping[str, str] | None = None, secrets_path: Path | None = None
) -> Settings:
    """Settings from the environment, then secrets.toml, then defaults."""
    environ = os.environ if environ is None else environ
    secrets = _read_secrets(secrets_path or SECRETS_PATH)

    def get(name: str) -> tuple[str | None, str | None]:
        return _lookup(name, environ, secrets)

    value, origin = get("STREAMRACE_ENDPOINT")
    kind = (value or "").strip().lower() or "local"
    if kind not in ENDPOINT_KINDS:  # a typo never silently races another endpoint
        raise unknown_kind(kind, f"STREAMRACE_ENDPOINT, {origin}")
    base_url = OPENAI_BASE_URL if kind == "openai" else get("STREAMRACE_BASE_URL")[0] or ""
    keyless = kind in ("local", "replay")
    api_key, origin = (None, None) if keyless else key_for(kind, environ, secrets_path)
    return Settings(
        endpoint_kind=kind,
        base_url=base_url,
        model=get("STREAMRACE_MODEL")[0] or DEFAULT_MODELS[kind],
        api_key=api_key,
        key_origin=origin,
        model_path=get("STREAMRACE_MODEL_PATH")[0],
        database_url=get("DATABASE_URL")[0],
    )


def unknown_kind(kind: str, where: str = "") -> InvalidInput:
    """The one-line refusal of an endpoint kind that is not one of ENDPOINT_KINDS."""
    source = f" ({where})" if where else ""
    return InvalidInput(f"Unknown endpoint kind '{kind}'{source}: use "
                        f"{', '.join(ENDPOINT_KINDS[:-1])} or {ENDPOINT_KINDS[-1]}.")


def _lookup(
    name: str, environ: Mapping[str, str], secrets: Mapping
) -> tuple[str | None, str | None]:
    """A setting's value and its origin: the environment wins over secrets.toml."""
    if environ.get(name):
        # Streamlit copies secrets.toml's top-level values into the app's environment: the
        # same value there came from the file.
        if str(secrets.get(name) or "") == environ[name]:
            return environ[name], "secrets.toml"
        return environ[name], "environment"
    if secrets.get(name):
        return str(secrets[name]), "secrets.toml"
    return None, None


def key_for(
    kind: str, environ: Mapping[str, str] | None = None, secrets_path: Path | None = None
) -> tuple[str | None, str | None]:
    """The configured key and its origin for an endpoint kind (the sidebar switches kinds)."""
    environ = os.environ if environ is None else environ
    name = "OPENAI_API_KEY" if kind == "openai" else "STREAMRACE_API_KEY"
    return _lookup(name, environ, _read_secrets(secrets_path or SECRETS_PATH))


def moderation_config(
    environ: Mapping[str, str] | None = None, secrets_path: Path | None = None
) -> tuple[str, str | None]:
    """Where the moderation validator sends text, and the key it sends (OPENAI_API_KEY).

    `STREAMRACE_MODERATION_URL` points it elsewhere than api.openai.com (a gateway, a test server).
    """
    environ = os.environ if environ is None else environ
    secrets = _read_secrets(secrets_path or SECRETS_PATH)
    url = _lookup("STREAMRACE_MODERATION_URL", environ, secrets)[0] or OPENAI_BASE_URL
    return url, key_for("openai", environ, secrets_path)[0]


def default_data_dir() -> Path:
    """The user's data folder for StreamRace (XDG on Linux)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "streamrace"


ENDPOINT_FIELDS = ("kind", "base_url", "model", "api_key", "model_path")
_NAMED = re.compile(r"^STREAMRACE_ENDPOINT_([A-Z0-9]+(?:_[A-Z0-9]+)*?)_"
                    r"(KIND|BASE_URL|MODEL|API_KEY|MODEL_PATH)$")


def load_endpoints(
    environ: Mapping[str, str] | None = None, secrets_path: Path | None = None
) -> dict[str, Settings]:
    """The named endpoints a race's lanes can pick, name → Settings, besides the default one.

    In `.streamlit/secrets.toml`, one table per endpoint:

        [endpoints.ours]
        kind = "compatible"            # default: compatible (local, openai, replay too)
        base_url = "http://127.0.0.1:8000/v1"
        model = "qwen"
        api_key = "..."                # optional; or api_key_env = "OURS_KEY"

    In the environment, `STREAMRACE_ENDPOINT_<NAME>_<FIELD>` with FIELD one of KIND, BASE_URL,
    MODEL, API_KEY, MODEL_PATH (e.g. STREAMRACE_ENDPOINT_OURS_BASE_URL): the name is <NAME>
    in lower case; a value in the environment wins over secrets.toml's. An `openai` endpoint
    without its own key takes OPENAI_API_KEY. Entries that are not tables are ignored.
    """
    environ = os.environ if environ is None else environ
    tables = _read_toml(secrets_path or SECRETS_PATH).get("endpoints")
    fields: dict[str, dict[str, tuple[str, str]]] = {}
    for name, table in (tables.items() if isinstance(tables, dict) else ()):
        if not isinstance(table, dict):
            continue
        entry = fields.setdefault(str(name).lower(), {})
        for field_name in ENDPOINT_FIELDS:
            if isinstance(table.get(field_name), str) and table[field_name]:
                entry[field_name] = (table[field_name], "secrets.toml")
        key_env = table.get("api_key_env")
        if isinstance(key_env, str) and environ.get(key_env):
            entry["api_key"] = (environ[key_env], "environment")
    for variable, value in environ.items():
        match = _NAMED.match(variable)
        if match and value:
            name = match.group(1).lower()
            fields.setdefault(name, {})[match.group(2).lower()] = (value, "environment")
    endpoints = {}
    for name, entry in sorted(fields.items()):
        kind = entry.get("kind", ("compatible", ""))[0].strip().lower()
        if kind not in ENDPOINT_KINDS:
            continue
        key, origin = entry.get("api_key", (None, None))
        if key is None and kind == "openai":
            key, origin = key_for("openai", environ, secrets_path)
        base_url = entry.get("base_url", ("", ""))[0] or (OPENAI_BASE_URL if kind == "openai"
                                                         else "")
        endpoints[name] = Settings(
            endpoint_kind=kind, base_url=base_url,
            model=entry.get("model", ("", ""))[0] or DEFAULT_MODELS[kind],
            api_key=None if kind in ("local", "replay") else key,
            key_origin=None if kind in ("local", "replay") else origin,
            model_path=entry.get("model_path", (None, None))[0],
            database_url=_lookup("DATABASE_URL", environ,
                                 _read_secrets(secrets_path or SECRETS_PATH))[0],
        )
    return endpoints
