"""StreamRace: page config, navigation, and the endpoint picker in the sidebar."""

import streamlit as st

from app_pages.shared import endpoint_sidebar

st.set_page_config(page_title="StreamRace", page_icon="🏁", layout="wide")

page = st.navigation([
    st.Page("app_pages/race.py", title="Race", icon="🏁", url_path="race", default=True),
    st.Page("app_pages/benchmark.py", title="Benchmark", icon="📈", url_path="benchmark"),
    st.Page("app_pages/history.py", title="History", icon="📊", url_path="history"),
    st.Page("app_pages/replay.py", title="Replay", icon="🎞️", url_path="replay"),
    st.Page("app_pages/guardrails.py", title="Guardrails", icon="🛡️", url_path="guardrails"),
])
endpoint_sidebar()
# Whether this page has not yet been drawn to the end since another page ran (or since a run of
# it was interrupted): its widgets may be new in the browser, and a page restoring a kept value
# must push it there (see app_pages/race.py).
st.session_state["page_arrived"] = st.session_state.get("page_shown") != page.title
st.session_state["page_shown"] = None  # until this run has drawn the page to its end (no st.stop)
page.run()
st.session_state["page_shown"] = page.title
