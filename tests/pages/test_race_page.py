"""The race page through Streamlit's AppTest, against a real playback server on 127.0.0.1.

The whole app runs (`streamlit_app.py`: page config, st.navigation, the sidebar), pointed at
the playback server through the same environment variables a user would set. Each test gets
its own run log (a SQLite file in tmp_path) and reads it back through `lib.store.Store`.
"""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from lib.core.config import ENDPOINT_KINDS
from lib.present.display import WORD_JOINER
from lib.race import PRESETS
from lib.serving.playback import PlaybackServer, Script
from lib.storage.store import Store

TIMEOUT = 30

SCRIPTED = Script.regular(ttft_s=0.05, gap_s=0.01, n=30)
DROP_AFTER = 3
HTML_TEXTS = ("<script>alert(1)</script>", "<b>bold</b>", " & [a](http://example.com)")
QUICK_BLOCKING_S = 0.3
"""In the `quick-blocking` model the blocking answer leaves here; the stream runs ~2 s."""


@pytest.fixture(scope="module")
def server():
    """One playback server for the module: a regular answer and a few failures."""
    scripts = {
        "scripted": SCRIPTED,
        "boom": Script.regular(ttft_s=0.05, gap_s=0.01, n=5, status=500),
        "drop": Script.regular(ttft_s=0.05, gap_s=0.01, n=10, drop_after=DROP_AFTER),
        "html": Script(offsets=(0.05, 0.06, 0.07), texts=HTML_TEXTS),
        "quick-blocking": Script.regular(ttft_s=0.05, gap_s=0.05, n=40,
                                         blocking_at_s=QUICK_BLOCKING_S),
        "thinker": Script.reasoning(0.05, 0.01, thoughts=10, words=10, form="think"),
    }
    with PlaybackServer(scripts) as server:
        yield server


@pytest.fixture
def make_app(server, open_app):
    return lambda model="scripted": open_app(server.base_url, model)


def panel(at: AppTest, title: str):
    """The race column whose subheader contains `title` ("Blocking call", "Streaming call")."""
    matches = [c for c in at.columns if any(title in h.value for h in c.subheader)]
    assert len(matches) == 1, f"expected one panel titled {title!r}, found {len(matches)}"
    return matches[0]


def unescaped(markdown: str) -> str:
    """What a Markdown body escaped by `plain_markdown` reads as."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("  \n", "\n").replace(WORD_JOINER, "")


def panel_text(at: AppTest, title: str) -> str:
    return "\n".join(unescaped(m.value) for m in panel(at, title).markdown)


def run_race(at: AppTest) -> AppTest:
    at.button(key="race_run").click().run(timeout=TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    return at


def logged(store_url: str):
    return Store(store_url).recent(50)


def test_page_renders_title_and_both_panels(make_app):
    at = make_app()
    assert any("StreamRace" in t.value for t in at.title)
    headers = [h.value for h in at.subheader]
    assert any("Blocking call" in h for h in headers)
    assert any("Streaming call" in h for h in headers)
    assert at.button(key="race_run").label.endswith("Run race")
    assert at.text_area(key="race_prompt").value.strip()
    # The sidebar starts from the configuration.
    assert at.sidebar.selectbox(key="endpoint_kind").value == "compatible"
    assert not at.error and not at.warning


def test_run_race_streams_scripted_text_and_logs_two_rows(make_app, server, store_url):
    at = make_app()
    before = len(server.received)
    run_race(at)

    # Both calls reached the server: one blocking, one streamed.
    bodies = [r.body for r in server.received[before:]]
    assert sorted(bool(b.get("stream")) for b in bodies) == [False, True]
    assert all(b["model"] == "scripted" for b in bodies)

    expected = SCRIPTED.text.strip()
    assert expected in panel_text(at, "Streaming call")
    assert expected in panel_text(at, "Blocking call")

    cards = {m.label: m for m in at.metric}
    assert len(cards) == 4
    for label, card in cards.items():
        assert card.value and card.value != "–", (label, card.value)
    streaming_card = next(c for label, c in cards.items() if "Blank screen, streaming" in label)
    assert "sooner" in streaming_card.delta
    assert any("sooner" in s.value for s in at.success)
    assert not at.error and not at.warning

    frame = logged(store_url)
    assert len(frame) == 2
    assert frame["race_id"].nunique() == 1 and frame["race_id"].iloc[0]
    assert set(frame["status"]) == {"ok"}
    assert set(frame["mode"]) == {"blocking", "streaming"}
    assert set(frame["model"]) == {"scripted"}
    assert all(text.strip() == expected for text in frame["output_text"])

    # The recent-runs table shows what was just logged.
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 2


def test_empty_prompt_warns_and_sends_nothing(make_app, server, store_url):
    at = make_app()
    at.text_area(key="race_prompt").input("   ")
    before = len(server.received)
    run_race(at)

    assert at.warning, "an empty prompt must be refused with a warning"
    assert any("prompt" in w.value.lower() for w in at.warning)
    assert len(server.received) == before
    assert not at.metric and not at.success
    assert Store(store_url).count() == 0


def test_server_error_is_shown_and_logged(make_app, store_url):
    at = make_app("boom")
    run_race(at)

    errors = [e.value for e in at.error]
    assert len(errors) == 2, errors  # one per panel
    assert all("server error" in e for e in errors), errors
    assert all("500" in e for e in errors), errors
    assert not at.success

    frame = logged(store_url)
    assert len(frame) == 2 and frame["race_id"].nunique() == 1
    assert set(frame["status"]) == {"error"}
    assert all("server error" in e for e in frame["error"])


def test_dropped_stream_keeps_partial_text(make_app, store_url):
    at = make_app("drop")
    run_race(at)

    partial = "".join(Script.regular(ttft_s=0, gap_s=0, n=DROP_AFTER).texts)
    streamed = panel_text(at, "Streaming call")
    assert partial.strip() in streamed
    errors = [e.value for e in panel(at, "Streaming call").error]
    assert len(errors) == 1 and "broke" in errors[0], errors

    frame = logged(store_url).set_index("mode")
    assert frame.loc["streaming", "status"] == "error"
    assert frame.loc["streaming", "output_text"] == partial
    assert frame.loc["streaming", "error"]
    # The blocking call is unaffected by a stream-only fault.
    assert frame.loc["blocking", "status"] == "ok"


def test_html_in_model_output_is_escaped(make_app, store_url):
    at = make_app("html")
    run_race(at)

    raw = "".join(HTML_TEXTS)
    for title in ("Streaming call", "Blocking call"):
        bodies = [m.value for m in panel(at, title).markdown if "script" in m.value]
        assert len(bodies) == 1, (title, [m.value for m in panel(at, title).markdown])
        body = bodies[0]
        assert r"\<script\>" in body and r"\<b\>bold\</b\>" in body
        assert r"\[a\]\(http" in body  # no link either
        assert not re.search(r"(?<!\\)[<>\[\]]", body), body  # every special is escaped
        assert unescaped(body) == raw
    assert logged(store_url).set_index("mode").loc["streaming", "output_text"] == raw


def test_blocking_answer_is_shown_when_it_arrives(make_app, store_url):
    """The blocking panel must not wait for the stream to end: its blank screen is the
    headline number, and drawing it late would inflate it (and the "× sooner")."""
    at = make_app("quick-blocking")
    run_race(at)

    rows = logged(store_url).set_index("mode")
    blocking, streaming = rows.loc["blocking"], rows.loc["streaming"]
    assert blocking["status"] == streaming["status"] == "ok"
    assert blocking["e2e_s"] < 1.0 < streaming["e2e_s"]  # the scenario: blocking ends first
    arrived = blocking["client_s"] + blocking["e2e_s"]
    # The bug drew it when the stream ended, ~1.7 s late: half of that is the bound, so a
    # loaded machine's slow script run does not pass for it, and it does not pass for one.
    late_bound = (streaming["e2e_s"] - blocking["e2e_s"]) / 2
    assert late_bound > 0.5
    assert blocking["perceived_s"] - arrived < late_bound, (
        f"the blocking answer arrived after {arrived:.3f} s but was shown after "
        f"{blocking['perceived_s']:.3f} s (the stream ended after {streaming['e2e_s']:.3f} s)")


# -- bad input: a clear message, nothing sent where nothing should be, nothing lost ----------


def sent_since(server, before: int) -> int:
    return len(server.received) - before


def test_a_200000_character_prompt_is_refused_before_sending(make_app, server, store_url):
    at = make_app()
    before = len(server.received)
    at.text_area(key="race_prompt").set_value("x" * 200_000)
    run_race(at)
    assert any("100,000" in w.value for w in at.warning), [w.value for w in at.warning]
    assert sent_since(server, before) == 0
    assert logged(store_url).empty


def test_control_characters_right_to_left_and_emoji_arrive_and_are_logged_intact(
        make_app, server, store_url):
    prompt = "Résumé\tטקסט מימין לשמאל \u202e🙂🏁\x07 مرحبا\u0000end"
    at = make_app()
    before = len(server.received)
    at.text_area(key="race_prompt").set_value(prompt)
    run_race(at)
    sent = [r.body["messages"][-1]["content"] for r in server.received[before:]]
    assert sent == [prompt, prompt]
    rows = logged(store_url)
    assert list(rows["prompt"]) == [prompt, prompt]
    assert set(rows["status"]) == {"ok"}


def test_an_invalid_base_url_is_refused_with_a_clear_message(make_app, server, monkeypatch,
                                                              store_url):
    at = make_app()
    at.sidebar.text_input(key="base_url_compatible").set_value("localhost:8000/v1").run()
    before = len(server.received)
    run_race(at)
    warnings = [w.value for w in at.warning]
    assert any("is not an http(s) URL" in w for w in warnings), warnings
    assert sent_since(server, before) == 0
    assert logged(store_url).empty


def test_an_unusable_store_url_is_a_message_not_a_traceback(
    make_app, server, monkeypatch, tmp_path
):
    at = make_app()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/no/such/folder/runs.db")
    before = len(server.received)
    run_race(at)
    messages = [m.value for m in at.warning] + [m.value for m in at.error]
    assert any("Cannot open the run log" in m for m in messages), messages
    # Nothing is sent when its results could not be logged.
    assert sent_since(server, before) == 0


def test_a_reasoning_model_shows_its_thinking_folded_and_both_moments(make_app, server,
                                                                       store_url):
    at = make_app("thinker")
    at.selectbox(key="race_reasoning_effort").set_value("high")
    at.toggle(key="race_show_thinking").set_value(True)
    run_race(at)
    assert {r.body.get("reasoning_effort") for r in server.received[-2:]} == {"high"}
    labels = [e.label for e in at.expander]
    assert any("Thought for" in label for label in labels), labels
    assert any("Reasoning, received with the answer" in label for label in labels), labels
    assert "thought0" not in panel_text(at, "Streaming call").split("Streaming shows")[-1]
    cards = {m.label: m.value for m in at.metric}
    assert {"🧠 First thought, streaming", "💬 First answer word, streaming",
            "🧠 Thinking time", "🧠 Reasoning / answer tokens"} <= set(cards)
    assert cards["🧠 Reasoning / answer tokens"] == "10 / 10"
    frame = logged(store_url)
    streaming = frame[frame["mode"] == "streaming"].iloc[0]
    assert '"reasoning_effort": "high"' in streaming["params"]
    assert '"show_thinking": true' in streaming["params"]
    # Thinking counted as text: the blank screen ended at the first thought, not the answer.
    assert streaming["perceived_s"] < streaming["ttfo_s"]


def test_a_model_typed_in_the_sidebar_and_run_together_race_the_typed_model(make_app, server):
    """The typed model and the click reach the app in one message (as on a loaded machine,
    where the run the typing started is cut short by the click): the Run button's callback
    must not race the model the sidebar showed before (it did; likely why, under load, the
    key-scan browser test's race of its HTTP 500 model never came)."""
    at = make_app("scripted")
    before = len(server.received)
    at.text_input(key="model_compatible").set_value("boom")
    run_race(at)
    assert [r.body.get("model") for r in server.received[before:]] == ["boom", "boom"]
    assert "HTTP 500" in " ".join(e.value for e in at.error)



def test_every_kept_widget_defaults_to_the_value_it_shows(make_app):
    """A browser can rebuild a widget from its default and send that back as the user's choice
    (app_pages/kept.py). It cost, under load: an empty prompt ("Type a prompt first" after a
    click on a full box), 1 max token, the sidebar back on Embedded after a typed Base URL.
    So each widget's default is the value it shows: typed, from a preset, or chosen."""
    at = make_app("scripted")
    at.text_area(key="race_prompt").input("Hello there").run()
    at.number_input(key="race_max_tokens").set_value(77).run()
    at.text_input(key="base_url_compatible").input("http://127.0.0.1:9/v1").run()
    at.text_input(key="model_compatible").input("typed-model").run()
    shown = {
        "race_prompt": at.text_area(key="race_prompt"),
        "race_max_tokens": at.number_input(key="race_max_tokens"),
        "base_url_compatible": at.text_input(key="base_url_compatible"),
        "model_compatible": at.text_input(key="model_compatible"),
    }
    assert {key: (w.value, w.proto.default) for key, w in shown.items()} == {
        "race_prompt": ("Hello there", "Hello there"),
        "race_max_tokens": (77, 77.0),
        "base_url_compatible": ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
        "model_compatible": ("typed-model", "typed-model"),
    }
    kind = at.selectbox(key="endpoint_kind")
    assert (kind.value, kind.proto.default) == ("compatible", ENDPOINT_KINDS.index("compatible"))
    at.button_group(key="race_preset").set_value("One-line answer").run()
    prompt = at.text_area(key="race_prompt")
    assert prompt.value == PRESETS[0].prompt and prompt.proto.default == PRESETS[0].prompt
