"""StreamRace: page config, navigation, and the endpoint picker in the sidebar."""

import streamlit as st

from app_pages.shared import endpoint_sidebar

st.set_page_config(page_title="StreamRace", page_icon="🏁", layout="wide")

page = st.navigation([
    st.Page("app_pages/race.py", title="Race", icon="🏁", url_path="race", default=True),
    st.Page("app_pages/guardrails.py", title="Guardrails", icon="🛡️", url_path="guardrails"),
])
endpoint_sidebar()
page.run()
