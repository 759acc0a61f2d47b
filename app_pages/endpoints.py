"""Endpoints side by side: the named endpoints a race's lanes pick from, in the sidebar.

Not a page (st.navigation lists the pages). The sidebar's own endpoint (app_pages/shared.py) is
one of them, under its kind's name; the configured ones come from secrets.toml's
`[endpoints.<name>]` tables or `STREAMRACE_ENDPOINT_<NAME>_*` variables
(lib.core.config.load_endpoints); more can be added for this session. Keys stay in this
browser session's memory: shown masked, never stored, logged or exported.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from app_pages.access import configured_key_for
from lib.core.config import OPENAI_BASE_URL, Settings, key_for, load_endpoints
from lib.core.errors import StreamRaceError
from lib.endpoints import check_base_url

ADDED = "lane_endpoints_added"
"""Session key: the endpoints added in the sidebar, name → Settings (keys in memory only)."""
ADD_KINDS = ("compatible", "openai")


def lane_endpoints(default: Settings) -> dict[str, Settings]:
    """Every endpoint a lane can pick, by name: the sidebar's own endpoint under its kind's
    name, then the configured ones, then those added in this session."""
    # Read on every run (secrets.toml and the environment: cheap), so an edit shows at once.
    return {default.endpoint_kind: default, **load_endpoints(),
            **st.session_state.get(ADDED, {})}


def describe(name: str, settings: Settings) -> str:
    """One line about an endpoint for the sidebar: never its key, only where the key is from."""
    where = f"`{settings.base_url}`" if settings.endpoint_kind in ("compatible", "openai") \
        and settings.base_url else ""
    key = f" · 🔑 key ({settings.key_origin})" if settings.api_key else ""
    parts = [f"**{name}**", settings.endpoint_kind, settings.model, where]
    return " · ".join(part for part in parts if part) + key


def endpoints_sidebar(default: Settings) -> None:
    """The list of endpoints lanes can use, and a form to add one for this session."""
    added: dict[str, Settings] = st.session_state.setdefault(ADDED, {})
    with st.sidebar:
        st.subheader("Endpoints for lanes")
        st.caption("A race's lanes pick from these by name (🏁 Race → Lanes).")
        for name, settings in lane_endpoints(default).items():
            row = st.columns([5, 1], vertical_alignment="center")
            row[0].caption(describe(name, settings))
            if name in added and row[1].button("✖️", key=f"lane_endpoint_remove_{name}",
                                               help=f"Remove {name}"):
                added.pop(name, None)
                st.rerun()
        if st.button("➕ Add an endpoint", key="lane_endpoint_open", width="stretch"):
            add_endpoint(added, default)


@st.dialog("➕ Add an endpoint for lanes")
def add_endpoint(added: dict[str, Settings], default: Settings) -> None:
    """A form in a dialog (drawn only while open: the sidebar keeps one Model and one API key
    field, the default endpoint's)."""
    with st.form("lane_endpoint_add", border=False):
        name = st.text_input("Name", placeholder="e.g. ours", key="lane_endpoint_name")
        kind = st.selectbox("Kind", ADD_KINDS, key="lane_endpoint_kind")
        url = st.text_input("Base URL", placeholder="http://127.0.0.1:8000/v1 "
                            "(OpenAI: leave empty)", key="lane_endpoint_url")
        model = st.text_input("Model", key="lane_endpoint_model")
        key = st.text_input("API key", type="password", key="lane_endpoint_key",
                            help="Kept in this session's memory only: never stored, logged "
                                 "or exported.")
        if st.form_submit_button("Add"):
            try:
                name, settings = checked(name, kind, url, model, key, default)
            except StreamRaceError as error:
                st.warning(error.message, icon="✋")
            else:
                added[name] = settings
                st.rerun()


def checked(name: str, kind: str, url: str, model: str, key: str, default: Settings
            ) -> tuple[str, Settings]:
    """A new endpoint's name and settings, or InvalidInput saying what is missing."""
    from lib.core.errors import InvalidInput

    name = name.strip().lower()
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidInput("Give the endpoint a name of letters, digits, '-', '_' or '.'.")
    if not model.strip():
        raise InvalidInput("Enter the model name the endpoint serves.")
    base_url = OPENAI_BASE_URL if kind == "openai" and not url.strip() else check_base_url(url)
    settings = Settings(kind, base_url, model.strip(), database_url=default.database_url)
    if key:
        settings = replace(settings, api_key=key, key_origin="typed")
    elif kind == "openai":  # as the sidebar's own openai endpoint: OPENAI_API_KEY if configured
        configured_key, origin = key_for("openai")
        # Shared: not to a URL of the user's choosing (app_pages/access.py).
        configured_key = configured_key_for(base_url, OPENAI_BASE_URL, configured_key)
        settings = replace(settings, api_key=configured_key,
                           key_origin=origin if configured_key else None)
    return name, settings
