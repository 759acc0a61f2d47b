"""The browser's clock: the click on Run → the first and the last text painted in each lane.

Not a page (st.navigation lists the pages). An inline `st.components.v2` component (no iframe,
nothing loaded from the network) installs, once per browser tab, a capturing click listener on
the Run button and a MutationObserver on the page; each lane's text is drawn in a container
keyed `race_lane_<lane>_<race_id>` (`lane_key`; <lane> is the mode in the default race, the
lane's index in a race of lanes), so a new race's lanes are new elements whatever
the previous race left on screen. When a lane's text changes, the next animation frame's
`performance.now()` is its paint moment. Nothing is sent while the race runs (sending reruns
the script): the component mounted after a race (`report`) hands that race's figures back once,
and `on_report` writes them to the race's rows. The figures are the browser's, never ours: no
`perf_counter` is compared with them.

A click made before the component had loaded (a fresh page, clicked at once) is taken from the
browser's first-input record, which holds that click's press (a moment before the click event,
by how long the button was held); a lane whose text was already drawn by then is left
unmeasured. `listen` mounts it above the race so that it loads while such a race runs.
"""

from __future__ import annotations

from typing import Callable

import streamlit as st

RUN_BUTTON_KEY = "race_run"
LANE_PREFIX = "race_lane_"

JS = """
export default function (component) {
  const { data, setStateValue } = component;
  const PREFIX = 'st-key-%(lane_prefix)s';
  let clock = window.__streamraceClock;
  if (!clock) {
    const onRun = (el) => el instanceof Element && !!el.closest('.st-key-%(run_key)s button');
    clock = window.__streamraceClock = { click: null, lanes: {}, reported: {} };
    // A fresh page's first click can come before this script has run (it loads after the
    // button): the browser keeps the first input's moment, the press of that click.
    const [press] = performance.getEntriesByType('first-input');
    if (press && onRun(press.target)) clock.click = press.startTime;
    // Capturing: before Streamlit's own handler sends the click to the server.
    document.addEventListener('click', (event) => {
      if (onRun(event.target)) clock.click = performance.now();
    }, true);
    let installing = true;
    const scan = () => {
      for (const el of document.querySelectorAll('[class*="' + PREFIX + '"]')) {
        const cls = [...el.classList].find((c) => c.startsWith(PREFIX));
        const key = cls.slice(PREFIX.length);
        let lane = clock.lanes[key];
        const len = el.textContent.trim().length;
        if (!lane) {
          // Text already drawn before the clock was here was painted at an unknown moment.
          const seen = installing && len > 0;
          lane = clock.lanes[key] = { click: seen ? null : clock.click, first: null, done: null,
                                      len: seen ? len : 0 };
        }
        if (len === lane.len) continue;
        lane.len = len;
        if (len > 0) {
          requestAnimationFrame(() => {
            const t = performance.now();
            if (lane.first === null) lane.first = t;
            lane.done = t;
          });
        }
      }
    };
    scan();
    installing = false;
    new MutationObserver(scan).observe(document.body,
      { subtree: true, childList: true, characterData: true });
    window.__streamraceScan = scan;
  }
  const raceId = data && data.race_id;
  if (!raceId || clock.reported[raceId]) return;
  window.__streamraceScan();
  // Two frames: every paint callback queued for the race's last text has run.
  requestAnimationFrame(() => requestAnimationFrame(() => {
    if (clock.reported[raceId]) return;
    const lanes = {};
    const suffix = '_' + raceId;
    for (const [key, lane] of Object.entries(clock.lanes)) {
      if (!key.endsWith(suffix) || lane.click === null) continue;
      const since = (t) => (t === null ? null : (t - lane.click) / 1000);
      lanes[key.slice(0, -suffix.length)] = [since(lane.first), since(lane.done)];
    }
    clock.reported[raceId] = true;
    setStateValue('screen', { race_id: raceId, lanes });
  }));
}
""" % {"lane_prefix": LANE_PREFIX, "run_key": RUN_BUTTON_KEY}

_clock = st.components.v2.component("streamrace_screen_clock", js=JS)


def lane_key(lane: str, race_id: str) -> str:
    """The key of the container a lane's text is drawn in (the component finds it by class)."""
    return f"{LANE_PREFIX}{lane}_{race_id}"


def listen() -> None:
    """Mount the clock with nothing to report, above the race: a click that comes before the
    page's first run has reached its end (where `report` mounts it) stops that run, and the
    race's run reaches its end only after the race, too late to see it painted. Mounted here,
    it loads while the race runs and takes the click from the first-input record."""
    _clock(data={"race_id": None}, key="race_screen_clock_listener", height="content")


def report(race_id: str | None, on_report: Callable[[dict], None]) -> None:
    """Mount the clock at the page's end (every run); with `race_id`, it
    hands back that race's figures once: `on_report({"race_id":…, "lanes": {lane: [first_s,
    done_s]}})` (lane: a mode, or a lane index as text) runs at the start of the script run
    the browser's answer causes."""

    def changed() -> None:
        value = (st.session_state.get("race_screen_clock") or {}).get("screen")
        if value:
            on_report(value)

    _clock(data={"race_id": race_id}, key="race_screen_clock", on_screen_change=changed,
           height="content")
