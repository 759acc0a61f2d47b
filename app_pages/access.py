"""Sign-in when StreamRace is shared: the st.login glue (the rules are lib.access's).

Not a page. Sign-in is on when .streamlit/secrets.toml has an [auth] section; then `gate()`,
called by streamlit_app.py before the navigation, lets through only a signed-in user on the
allow-list: a signed-out visitor sees the sign-in page and nothing else, a refused one is told
so. Pages ask `current_user()` who owns what they write, may delete, or exports.
"""

from __future__ import annotations

from typing import Mapping

import streamlit as st

from lib.access import (
    Sharing,
    SpendLimits,
    User,
    configured_key_may_go,
    sign_in_configured,
    spends_configured_key,
    user_from_claims,
)
from lib.access.setup import provider_problem
from lib.core.config import Settings
from lib.core.errors import InvalidInput

TITLE = "🏁 StreamRace"


def _secrets() -> Mapping:
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:  # no secrets.toml: sign-in is off
        return {}


def sign_in_on() -> bool:
    return sign_in_configured(_secrets())


def sharing() -> Sharing:
    return Sharing.from_secrets(_secrets())


def current_user() -> User | None:
    """The signed-in user; None when sign-in is off (or outside a script run)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx(suppress_warning=True) is None or not sign_in_on():
        return None
    return user_from_claims(st.user.to_dict())


def current_owner() -> str | None:
    """What the run log's `owner` columns get for this session's rows and exports."""
    user = current_user()
    return user.id if user else None


def gate() -> None:
    """With sign-in on, stop the script unless an allowed user is signed in; else show who is
    signed in, with a Sign out button, in the sidebar."""
    secrets = _secrets()
    if not sign_in_configured(secrets):
        return
    try:
        rules = Sharing.from_secrets(secrets)
    except InvalidInput as error:
        st.title(TITLE)
        st.error(f"This dashboard's sharing settings cannot be used: {error.message}", icon="🚨")
        st.stop()
    user = user_from_claims(st.user.to_dict())
    if user is None:
        sign_in_page(secrets)
        st.stop()
    if not rules.allows(user):
        st.title(TITLE)
        st.error(f"You are signed in as `{user.label}`, who is not on this dashboard's "
                 "allow-list: nothing here is open to you. Ask the presenter to add you, or "
                 "sign out and sign in with another account.", icon="🚫")
        sign_out_button(st)
        st.stop()
    with st.sidebar:
        # In code: an e-mail address in Markdown would become a mailto link.
        st.caption(f"👤 Signed in as `{user.label}`" + (" (admin)" if rules.is_admin(user)
                                                         else ""))
        sign_out_button(st)


def sign_in_page(secrets: Mapping) -> None:
    """All a signed-out visitor sees: what this is, and the way in (or why there is none)."""
    st.title(TITLE)
    st.markdown("This dashboard is shared with sign-in: sign in to run races and benchmarks "
                "and to see the runs.")
    problem = provider_problem(secrets)
    if problem:
        st.error(problem, icon="🔌")
    if st.button("🔑 Sign in", type="primary", key="sign_in", disabled=problem is not None):
        st.login()


def sign_out_button(where) -> None:
    if where.button("Sign out", key="sign_out"):
        st.logout()


@st.cache_resource(show_spinner=False)
def _spend_limits() -> SpendLimits:
    """One count of runs per user for the whole app process (every tab of every user)."""
    return SpendLimits()


def check_spend(*spending: Settings, requests: int | None = None) -> None:
    """Count one run (a benchmark of `requests` calls) of the signed-in user when any of its
    endpoints (`spending`: one, or a race's lanes) is paid with a configured key, or raise
    InvalidInput when it would pass their limit. A typed key, the embedded model, replays,
    admins and sign-in off are not limited."""
    user = current_user()
    if user is None or not any(spends_configured_key(s.api_key, s.key_origin)
                               for s in spending):
        return
    rules = sharing()
    if not rules.is_admin(user):
        _spend_limits().admit(user.id, rules, requests=requests)


def configured_key_for(url: str, configured_url: str, key: str | None) -> str | None:
    """The configured key, when it may go to `url`: shared (sign-in on), only to the URL it
    was configured with (an allowed user may type any base URL)."""
    if key is None or not sign_in_on() or configured_key_may_go(url, configured_url):
        return key
    return None


def check_lane_keys(specs) -> None:
    """Shared, a lane may not read a key from the app's environment (api_key_env): it would
    send any of the app's variables to a base URL of the user's choosing."""
    if sign_in_on() and any(spec.api_key_env for spec in specs):
        raise InvalidInput("On a shared dashboard a lane cannot take its key from the app's "
                           "environment (api_key_env): pick a configured endpoint, or add one "
                           "with your own key in the sidebar.")


def may_delete(owner: str | None) -> bool:
    """Whether this session may delete something `owner` made (its owner, or an admin)."""
    user = current_user()
    return user is None or sharing().may_delete(user, owner)


def whose_runs() -> tuple[str, ...]:
    """History's "Mine" / "Everyone" (sign-in on): the owners to filter on, () for everyone."""
    user = current_user()
    if user is None:
        return ()
    whose = st.radio("Runs", ["Mine", "Everyone"], key="history_whose", horizontal=True,
                     help=f"Mine: the runs you ran, signed in as {user.label}.")
    return (user.id,) if whose == "Mine" else ()
