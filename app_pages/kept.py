"""Widget values kept across pages, and the page-visit protocol they rely on.

Streamlit drops a widget's state on every run that does not draw the widget (another page ran),
and a value restored with `setdefault` can miss the browser after a page switch
(st.switch_page from the Replay page left the prompt box empty while runs used it). So a kept
widget has two keys: its own, `<page>_<name>`, which Streamlit may drop, and ours,
`kept_<page>_<name>`, which it never touches. The widget's `on_change` copies its value to
ours, and ours is the widget's default; before the widget is drawn, ours is pushed to it when
the page has just arrived (its widgets may be new in the browser) or the two differ (a preset,
another page, changed ours).
Not on every run: a value the script sets is pushed to the browser and replaces what the user
is typing there (20 sessions on a loaded machine lost a typed prompt so).

The page-visit protocol, run by streamlit_app.py around every page:

    page_begins(title)   # before page.run(): did we arrive, and nothing is drawn yet
    page.run()           # may stop early (st.stop, an interrupting click)
    page_ends(title)     # only when the page was drawn to its end

`page_arrived()` is True on the first run of a page since another page ran, or since a run of
this page was interrupted before its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

_ARRIVED = "page_arrived"
_SHOWN = "page_shown"


def page_begins(title: str) -> None:
    st.session_state[_ARRIVED] = st.session_state.get(_SHOWN) != title
    st.session_state[_SHOWN] = None  # until this run has drawn the page to its end


def page_ends(title: str) -> None:
    st.session_state[_SHOWN] = title


def page_arrived() -> bool:
    """Whether this page has not been drawn to its end since another page ran (True when a
    page runs alone, as in AppTest)."""
    return st.session_state.get(_ARRIVED, True)


def index_of(options: Sequence, value: Any) -> int:
    """A selectbox's default index for `value`: its place in `options`, else the first."""
    choices = list(options)
    return choices.index(value) if value in choices else 0


class Kept:
    """One page's kept widget values: `Kept("race", prompt="…", max_tokens=300)`.

    Draw a kept widget with `key=kept.key("prompt")` and `**kept.watch("prompt")`, after
    `kept.restore()` in the same run.
    """

    def __init__(self, page: str, **defaults: Any) -> None:
        self.page = page
        self.defaults = defaults

    def key(self, name: str) -> str:
        """The widget's key: page-prefixed, so that pages never share a widget's state."""
        return f"{self.page}_{name}"

    def _kept(self, name: str) -> str:
        return f"kept_{self.page}_{name}"

    def get(self, name: str) -> Any:
        return st.session_state.get(self._kept(name), self.defaults[name])

    def set(self, **values: Any) -> None:
        """New kept values (a preset, another page's "use this"): the widgets show them on
        their next draw."""
        for name, value in values.items():
            st.session_state[self._kept(name)] = value

    def restore(self) -> None:
        """Before the widgets are drawn: push each kept value to its widget where needed."""
        arrived = page_arrived()
        for name, default in self.defaults.items():
            kept = st.session_state.setdefault(self._kept(name), default)
            if arrived or st.session_state.get(self.key(name)) != kept:
                st.session_state[self.key(name)] = kept

    def watch(self, name: str, default: str = "value", options: Sequence | None = None) -> dict:
        """The widget arguments that keep its value: a callback that keeps what the user chose,
        and the kept value as the widget's own default. `default` names the widget's argument
        for it: `value` (text, numbers, toggles), `default` (multiselect, segmented control) or
        `index` (selectbox, into `options`). A multiselect's default keeps only its `options`.

        A browser can rebuild a widget from its default instead of the value it was shown
        (Streamlit issues 4247 and 4836: an interrupted run, a loaded machine); it then sends
        that default back as if the user had chosen it, and `_changed` would keep it. Seen on
        2 loaded cores: an empty prompt, 1 max token, the sidebar back on Embedded. With the
        kept value as the default, what comes back is the kept value.
        """
        kept = self.get(name)
        if options is not None:
            kept = index_of(options, kept) if default == "index" else [
                value for value in kept if value in options]
        return {default: kept, "on_change": self._changed, "args": (name,)}

    def _changed(self, name: str) -> None:
        st.session_state[self._kept(name)] = st.session_state[self.key(name)]
