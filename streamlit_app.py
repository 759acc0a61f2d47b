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
# Whether this run is the page's first since another page ran: widgets are drawn anew then,
# and a page restoring a kept value must push it to the browser (see app_pages/race.py).
st.session_state["page_arrived"] = st.session_state.get("page_shown") != page.title
st.session_state["page_shown"] = page.title
page.run()
