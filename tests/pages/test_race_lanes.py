"""The race page's lanes through AppTest: two named endpoints on two real playback servers of
known speeds, three lanes, one column per lane, the outcome, the run log, View code."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lib.serving.playback import PlaybackServer, Script
from lib.storage.store import Store

TIMEOUT = 30
QUICK = Script.regular(ttft_s=0.05, gap_s=0.01, n=10)
SLOW = Script.regular(ttft_s=0.6, gap_s=0.02, n=10)  # well after the blocking answer (0.14 s)


@pytest.fixture(scope="module")
def servers():
    with PlaybackServer({"quick": QUICK}) as a, PlaybackServer({"slow": SLOW}) as b:
        yield a, b


@pytest.fixture
def app(servers, open_app, monkeypatch) -> AppTest:
    a, b = servers
    # The second endpoint by name, as a user configures one (README: named endpoints).
    return open_app(a.base_url, "quick", STREAMRACE_ENDPOINT_SLOWBOX_BASE_URL=b.base_url,
                    STREAMRACE_ENDPOINT_SLOWBOX_MODEL="slow",
                    STREAMRACE_ENDPOINT_SLOWBOX_API_KEY=SLOWBOX_KEY)


SLOWBOX_KEY = "pbk-slowbox-key-3c9e11"
"""The named endpoint's key: sent to its server, shown and stored nowhere."""


def every_text(at: AppTest) -> str:
    """Everything the page drew, as text."""
    parts = [str(getattr(e, "value", "")) for kind in ("markdown", "caption", "code", "metric",
                                                       "success", "text", "dataframe", "info")
             for e in at.get(kind)]
    parts += [str(getattr(e, "value", "")) for e in at.sidebar.get("caption")]
    parts += [str(e.label) + str(getattr(e, "help", "")) for e in at.get("metric")]
    return "\n".join(parts)


def set_lanes(at: AppTest, lanes: list[tuple[str, str, str]]) -> AppTest:
    """Lanes on, and each lane's (endpoint, mode, label)."""
    at.toggle(key="race_setup_on").set_value(True).run()
    at.segmented_control(key="race_setup_count").set_value(len(lanes)).run()
    for i, (endpoint, mode, label) in enumerate(lanes):
        at.selectbox(key=f"race_setup_{i}_endpoint").set_value(endpoint)
        at.selectbox(key=f"race_setup_{i}_mode").set_value(mode)
        at.text_input(key=f"race_setup_{i}_label").set_value(label)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


THREE = [("compatible", "blocking", ""), ("compatible", "streaming", ""),
         ("slowbox", "streaming", "slow box")]


def test_sidebar_lists_the_named_endpoints_without_keys(app):
    captions = " ".join(c.value for c in app.sidebar.caption)
    assert "**slowbox** · compatible · slow · `http" in captions
    assert "🔑 key (environment)" in captions and SLOWBOX_KEY not in captions
    assert "**compatible** · compatible · quick" in captions


def test_three_lanes_race_on_the_page_and_log_three_rows(app, servers, store_url):
    at = set_lanes(app, THREE)
    at.button(key="race_run").click().run(timeout=TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    headings = [m.value for m in at.markdown if m.value.startswith("##### ")]
    assert headings == ["##### ⏳ compatible · quick · blocking",
                        "##### ⚡ compatible · quick · streaming", "##### ⚡ slow box"]
    metrics = {m.label: m.value for m in at.metric}
    assert set(metrics) == {"#1 ⚡ compatible · quick · streaming",
                            "#2 ⏳ compatible · quick · blocking", "#3 ⚡ slow box"}
    success = " ".join(s.value for s in at.success)
    assert "compatible · quick · streaming showed words" in success
    assert "sooner than slow box" in success
    assert any("Lanes released within" in c.value for c in at.caption)
    rows = Store(store_url).recent(10).sort_values("lane_index")
    assert list(rows["lane_label"]) == ["compatible · quick · blocking",
                                        "compatible · quick · streaming", "slow box"]
    assert list(rows["model"]) == ["quick", "quick", "slow"]
    assert rows["race_id"].nunique() == 1 and set(rows["status"]) == {"ok"}
    # View code: one tab per lane, the lane's model and mode, runnable (tests/integration).
    codes = [c.value for c in at.code]
    assert len(codes) == 3
    assert "'compatible/slow'" in codes[2] and "answer.stream(PROMPT)" in codes[2]
    assert "answer(PROMPT)" in codes[0]

    # The named endpoint's key went to its server, and nowhere else.
    _, b = servers
    assert b.received[-1].authorization == f"Bearer {SLOWBOX_KEY}"
    assert SLOWBOX_KEY not in every_text(at)
    assert SLOWBOX_KEY not in Store(store_url).recent(10).to_csv()

    # A redraw (any widget) keeps the lanes' outcome, from the traces.
    at.run()
    assert [m.value for m in at.markdown if m.value.startswith("##### ")] == headings


def test_two_lanes_with_one_label_are_refused_before_anything_is_sent(app, servers, store_url):
    a, _ = servers
    before = len(a.received)
    at = set_lanes(app, [("compatible", "streaming", ""), ("compatible", "streaming", "")])
    at.button(key="race_run").click().run(timeout=TIMEOUT)
    assert any("Two lanes are labelled" in w.value for w in at.warning)
    assert len(a.received) == before
    assert Store(store_url).count() == 0


def test_lanes_off_is_the_default_race(app, store_url):
    at = set_lanes(app, THREE)
    at.toggle(key="race_setup_on").set_value(False).run()
    at.button(key="race_run").click().run(timeout=TIMEOUT)
    headers = [h.value for h in at.subheader]
    assert "⏳ Blocking call" in headers and "⚡ Streaming call" in headers
    rows = Store(store_url).recent(10)
    assert sorted(rows["mode"]) == ["blocking", "streaming"]
