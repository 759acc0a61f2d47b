"""The History page's widget groups: filters, patience settings, comparison groups, the table.

Not a page (st.navigation lists the pages); each function draws its widgets and returns
what lib/ needs, so that app_pages/history.py reads as the page's outline.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any

import pandas as pd
import streamlit as st

from lib.core.trace import MODES
from lib.present import charts, stats
from lib.storage import history
from lib.storage.store import SOURCES

RANGES: dict[str, Any] = {
    "All time": None, "Last hour": timedelta(hours=1), "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7), "Last 30 days": timedelta(days=30),
    "Custom dates": "custom"}
STATUSES = ("ok", "error", "cancelled")
SECONDS = {"client_s": "client", "ttft_s": "TTFT", "perceived_s": "blank screen", "e2e_s": "E2E",
           "tpot_s": "TPOT", "icl_p50_s": "gap p50", "icl_p95_s": "gap p95",
           "icl_max_s": "worst gap"}
TABLE_ORDER = ["created_at", "mode", "status", "model", "perceived_s", "ttft_s", "e2e_s",
               "tpot_s", "output_tps", "output_tokens", "token_source", "icl_max_s", "source",
               "endpoint_kind", "prompt", "error_kind", "error"]
TABLE_ORDER += [c for c in history.TABLE_COLUMNS if c not in TABLE_ORDER]
TABLE_CONFIG = {
    "created_at": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    **{name: st.column_config.NumberColumn(f"{label} (s)", format="%.3f s", help=name)
       for name, label in SECONDS.items()},
    "output_tps": st.column_config.NumberColumn("tokens/s", format="%.1f tok/s",
                                                help="output_tps"),
    "output_tokens": st.column_config.NumberColumn("output tokens", format="%d"),
    "input_tokens": st.column_config.NumberColumn("input tokens", format="%d"),
    "output_chars": st.column_config.NumberColumn("output chars", format="%d"),
}
GROUP_LABELS = {"mode": "Mode", "model": "Model", "endpoint_kind": "Endpoint",
                "source": "Source", "lane_label": "Race lane", "created_at": "Date range"}
"""Labels of lib.history.GROUP_COLUMNS, what two groups can differ by."""


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as shown: created_at as a UTC time (the export keeps the log's text)."""
    shown = table.copy()
    shown["created_at"] = pd.to_datetime(shown["created_at"], format="ISO8601", utc=True)
    return shown


def _options(facets: pd.DataFrame, column: str, known: tuple[str, ...] = ()) -> list[str]:
    present = set(facets[column].dropna()) if not facets.empty else set()
    return list(known) + sorted(present - set(known))


def filters_from_widgets(facets: pd.DataFrame, now: datetime) -> history.Filters:
    """The filter widgets; an empty multiselect means "any"."""
    with st.container(border=True):
        top = st.columns([1.2, 1.4, 1, 1.6])
        choice = top[0].selectbox("Time range", list(RANGES), key="history_range")
        since = until = None
        span = RANGES[choice]
        if span == "custom":
            today = now.date()
            picked = top[0].date_input("Dates (UTC)", (today - timedelta(days=7), today),
                                       key="history_dates")
            since, until = _day_range(picked)
        elif span is not None:
            # Minute steps: the cached queries are not redone on every rerun.
            since = now.replace(second=0, microsecond=0) - span
        sources = top[1].multiselect("Source", _options(facets, "source", SOURCES),
                                     default=list(history.DEFAULT_SOURCES), key="history_sources",
                                     placeholder="any source")
        kinds = top[2].multiselect("Endpoint", _options(facets, "endpoint_kind"),
                                   key="history_endpoints", placeholder="any")
        models = top[3].multiselect("Model", _options(facets, "model"), key="history_models",
                                    placeholder="any")
        bottom = st.columns([1, 1.4, 1.6, 2.2])
        modes = bottom[0].multiselect("Mode", list(MODES), key="history_modes", placeholder="both")
        statuses = bottom[1].multiselect("Status", list(STATUSES), key="history_statuses",
                                         placeholder="any")
        lanes = bottom[2].multiselect("Race lane", _options(facets, "lane_label"),
                                      key="history_lanes", placeholder="any",
                                      help="A race lane's label: endpoint · model · mode, or "
                                           "the label it was given")
        prompt = bottom[3].text_input("Prompt contains", key="history_prompt",
                                      placeholder="any text, matched literally")
    return history.Filters(since=since, until=until, sources=tuple(sources),
                           endpoint_kinds=tuple(kinds), models=tuple(models), modes=tuple(modes),
                           statuses=tuple(statuses), prompt_contains=prompt.strip(),
                           lane_labels=tuple(lanes))


def _day_range(picked) -> tuple[datetime | None, datetime | None]:
    """Whole UTC days from a date_input range (a single date while the user is picking)."""
    days = [d for d in (picked if isinstance(picked, (tuple, list)) else (picked,)) if d]
    if not days:
        return None, None
    start, end = days[0], days[-1]
    return (datetime.combine(start, time(), timezone.utc),
            datetime.combine(end + timedelta(days=1), time(), timezone.utc))


def patience_settings() -> tuple[tuple[float, ...], float]:
    """The patience thresholds (editable, or Nielsen's limits) and the headline one."""
    cols = st.columns([2, 1.2, 1.2])
    nielsen = cols[1].toggle("Nielsen's limits (0.1 s, 1 s, 10 s)", key="patience_nielsen")
    typed = cols[0].text_input("Patience thresholds (seconds, comma-separated)", "1, 3",
                               key="patience_thresholds", disabled=nielsen)
    thresholds: tuple[float, ...] | None
    if nielsen:
        thresholds = charts.NIELSEN_S
    else:
        thresholds = parse_thresholds(typed)
        if thresholds is None:
            st.warning(f"“{typed}” is not a list of positive numbers of seconds, e.g. 1, 3: "
                       "using 1 s and 3 s.", icon="✋")
            thresholds = stats.DEFAULT_THRESHOLDS_S
    default = 1.0 if 1.0 in thresholds else thresholds[0]
    headline = cols[2].selectbox("Headline at", thresholds, index=thresholds.index(default),
                                 format_func=lambda t: f"{t:g} s of patience",
                                 key=f"patience_headline_{'n' if nielsen else 't'}")
    return thresholds, headline


def parse_thresholds(text: str) -> tuple[float, ...] | None:
    """'1, 3' → (1.0, 3.0); None unless every item is a positive number (at most 6)."""
    try:
        values = [float(item) for item in text.replace(";", ",").split(",") if item.strip()]
    except ValueError:
        return None
    if not values or len(values) > 6 or any(not (0 < v < 3600) for v in values):
        return None
    return tuple(sorted(set(values)))


def comparison_groups(filters: history.Filters, facets: pd.DataFrame):
    """Two groups of the filtered runs, ((label, filters), (label, filters)), or None.

    `facets`: lib.history.facets of the filtered runs (the values a group can take).
    """
    column = st.selectbox("Compare by", list(GROUP_LABELS), format_func=GROUP_LABELS.get,
                          key="compare_by")
    cols = st.columns(2)
    if column == "created_at":
        today = datetime.now(timezone.utc).date()
        defaults = {"A": (today - timedelta(days=13), today - timedelta(days=7)),
                    "B": (today - timedelta(days=6), today)}
        groups = []
        for col, (side, default) in zip(cols, defaults.items()):
            picked = col.date_input(f"Group {side}: dates (UTC)", default,
                                    key=f"compare_{side}_dates")
            since, until = _day_range(picked)
            if since is None:
                st.info("Pick a date range for each group.", icon="📅")
                return None
            label = f"{since.date()} – {(until - timedelta(days=1)).date()}"
            groups.append((label, history.narrowed(filters, column, since=since, until=until)))
        return tuple(groups)
    options = _options(facets, column)
    if len(options) < 2:
        st.info(f"The filtered runs have {len(options)} {GROUP_LABELS[column].lower()} value"
                f"{'' if len(options) == 1 else 's'}: nothing to compare by it.", icon="⚖️")
        return None
    groups = []
    for i, side in enumerate("AB"):
        values = cols[i].multiselect(f"Group {side}", options, default=[options[i]],
                                     key=f"compare_{side}_{column}")
        if not values:
            st.info("Pick at least one value for each group.", icon="⚖️")
            return None
        groups.append((" + ".join(values), history.narrowed(filters, column, tuple(values))))
    return tuple(groups)

