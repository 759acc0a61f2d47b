"""A page's first paint: what a visitor needs first is drawn first, the rest once it is on screen.

Not a page (st.navigation lists the pages). Opening a page costs the browser more than the
server: each kind of element loads and runs its own JavaScript when it first appears (plotly's
is 4.7 MB, the data grid's 1.2 MB), and whatever reaches the browser before the first chart is
painted is drawn before it. A page draws its first useful content, then asks `painted(page)`:
on the page's first run in a browser session that mounts a small inline component (nothing
from the network) which waits until the browser has painted what is on screen (no element
still loading its code, every chart drawn) and then asks for the run that draws the
rest. True from then on in that session, and always without a browser (AppTest, bare mode).
"""

from __future__ import annotations

import streamlit as st

WAIT_LIMIT_MS = 15_000
"""Past this, the rest is drawn anyway (a chart that never draws must not hide the page)."""

JS = """
export default function (component) {
  const { data, setStateValue } = component;
  if (!data || !data.wait) return;
  const main = () => document.querySelector('[data-testid="stMain"]') || document.body;
  const loading = () => !!main().querySelector('[data-testid="stSkeleton"]')
    || [...main().querySelectorAll('[data-testid="stPlotlyChart"]')]
      .some((chart) => !chart.querySelector('.main-svg'))
    || [...main().querySelectorAll('[data-testid="stVegaLiteChart"]')]
      .some((chart) => !chart.querySelector('canvas, svg'));
  const began = performance.now();
  const check = () => {
    if (loading() && performance.now() - began < %(limit_ms)d) {
      setTimeout(check, 25);
      return;
    }
    // Two frames: the content found ready has been painted, not only laid out.
    requestAnimationFrame(() => requestAnimationFrame(() => setStateValue('painted', true)));
  };
  check();
}
""" % {"limit_ms": WAIT_LIMIT_MS}

_waiter = st.components.v2.component("streamrace_first_paint", js=JS)


def painted(page: str) -> bool:
    """Whether the page may draw its slower parts now: False on its first run in a browser
    session (the browser asks for the next run once the first part is painted)."""
    done_key = f"{page}_first_paint_done"
    if st.session_state.get(done_key) or not _in_browser():
        return True

    def on_painted() -> None:
        st.session_state[done_key] = True

    _waiter(data={"wait": True}, key=f"{page}_first_paint", on_painted_change=on_painted,
            height="content")
    return False


def _in_browser() -> bool:
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    # `is True`: AppTest's runtime is a stand-in (a MagicMock) whose answers are mocks.
    return (ctx is not None and runtime.exists()
            and runtime.get_instance().is_active_session(ctx.session_id) is True)

