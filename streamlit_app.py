"""StreamRace: page config, navigation, and the endpoint picker in the sidebar."""

import streamlit as st

from app_pages.access import gate
from app_pages.endpoints import endpoints_sidebar
from app_pages.kept import page_begins, page_ends
from app_pages.shared import endpoint_sidebar, stacks_on_signal, warm_up_at_start

st.set_page_config(page_title="StreamRace", page_icon="🏁", layout="wide")
stacks_on_signal()  # kill -USR1: every thread's stack in the app's log
gate()  # sign-in on ([auth] in secrets.toml): nothing below runs for a visitor not let in

page = st.navigation([
    st.Page("app_pages/race.py", title="Race", icon="🏁", url_path="race", default=True),
    st.Page("app_pages/benchmark.py", title="Benchmark", icon="📈", url_path="benchmark"),
    st.Page("app_pages/history.py", title="History", icon="📊", url_path="history"),
    st.Page("app_pages/replay.py", title="Replay", icon="🎞️", url_path="replay"),
    st.Page("app_pages/guardrails.py", title="Guardrails", icon="🛡️", url_path="guardrails"),
])
settings = endpoint_sidebar()
endpoints_sidebar(settings)  # more endpoints, by name, for a race's lanes
warm_up_at_start(settings.database_url)  # once per process, in the background (issue 17)
# Kept widget values are pushed to a page's widgets when it arrives (app_pages/kept.py).
page_begins(page.title)
page.run()
page_ends(page.title)  # not reached when the run stops early: the page has not been drawn whole
