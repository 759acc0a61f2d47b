"""The Replay page through Streamlit's AppTest: record a logged race, import and export files,
the what-if controls, and "Use in race" followed by a real race against the replay endpoint.

The whole app runs (`streamlit_app.py`), configured like the race page's AppTest: a playback
server on 127.0.0.1 is the live endpoint, and each test has its own run log.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import endpoint_for
from streamlit.testing.v1 import AppTest

from lib import replay
from lib.core.trace import Params
from lib.race import run_headless
from lib.replay import Recordings
from lib.serving.playback import PlaybackServer, Script
from lib.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30
LIVE = Script.regular(ttft_s=0.05, gap_s=0.01, n=12)
PAGE = "app_pages/replay.py"


@pytest.fixture(scope="module")
def server():
    with PlaybackServer({"live": LIVE}) as server:
        yield server


@pytest.fixture
def log(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    yield store
    store.engine.dispose()


@pytest.fixture
def make_app(server, log, monkeypatch, warmed):
    for name in ("STREAMRACE_API_KEY", "OPENAI_API_KEY", "STREAMRACE_MODEL_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("STREAMRACE_ENDPOINT", "compatible")
    monkeypatch.setenv("STREAMRACE_BASE_URL", server.base_url)
    monkeypatch.setenv("STREAMRACE_MODEL", "live")
    monkeypatch.setenv("DATABASE_URL", log.url)

    def make() -> AppTest:
        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
        at.run()
        at.switch_page(PAGE).run()
        ok(at)
        return at

    return make


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def table(at: AppTest, column: str):
    """The one table with this column (a table without selection has no key in AppTest)."""
    [frame] = [d.value for d in at.dataframe if column in d.value.columns]
    return frame


def live_race(server, log, prompt: str = "record this race"):
    return run_headless(endpoint_for(server.base_url, "live"), prompt, Params(), log)


def test_the_page_shows_its_sections_and_a_synthetic_preview(make_app):
    at = make_app()
    assert [t.value for t in at.title] == ["🎞️ Replay"]
    assert [s.value for s in at.main.subheader] == ["⏺️ Record a run", "🎞️ Recordings",
                                                 "🔮 What if…"]
    assert not at.error and not at.warning
    # Nothing recorded yet: the what-if plays a synthetic profile of the built-in text.
    assert at.radio(key="what_if_kind").value == "A synthetic profile"
    cards = {m.label: m.value for m in at.metric}
    assert cards["⚡ First words"] == "500 ms"
    assert cards["⚡ Tokens/s"] == "30.0 tok/s"
    assert at.button(key="use_in_race").label == "▶️ Use in race"


def test_record_a_race_then_use_a_what_if_in_the_race(make_app, server, log):
    blocking, streaming = live_race(server, log)
    at = make_app()
    runs = at.dataframe(key="runs_table").value
    assert sorted(runs["mode"]) == ["blocking", "streaming"] and set(runs["source"]) == {"live"}
    at.session_state["runs_table"] = {"selection": {"rows": [0, 1]}}  # both rows of the race
    at.text_input(key="new_name").input("demo-race")
    ok(at.run())  # Save is enabled once runs are picked
    ok(at.button(key="save").click().run())
    assert [s.value for s in at.success] == ["Saved 'demo-race': 12 chunks."]
    saved = Recordings(log)["demo-race"]
    assert set(saved.source_run_ids) == {blocking.run_id, streaming.run_id}
    assert saved.blocking_at_s is not None and saved.text == LIVE.text
    assert list(table(at, "chunks")["name"]) == ["demo-race"]

    # What if each token took twice as long?
    assert at.radio(key="what_if_kind").value == "The recording, transformed"
    ok(at.select_slider(key="scale").set_value(2.0).run())
    assert any("'demo-race' · time per token ×2" in c.value for c in at.caption)
    cards = {m.label: m for m in at.metric}
    assert not cards["⚡ First words"].delta  # the first chunk keeps its time
    assert cards["⚡ Last words"].delta.startswith("+")  # later than recorded
    assert cards["⏳ Blocking answer"].delta.startswith("+")

    ok(at.button(key="use_in_race").click().run())
    assert at.session_state["endpoint_kind"] == "replay"
    assert at.sidebar.selectbox(key="replay_model").value == "demo-race~scale=2"
    assert [t.value for t in at.title] == ["🏁 StreamRace"]  # st.switch_page to the race
    # AppTest stays on the page it was told, where a browser follows st.switch_page.
    ok(at.switch_page("app_pages/race.py").run())
    ok(at.button(key="race_run").click().run(timeout=60))
    notes = [i.value for i in at.info]
    expected = "replayed from the recording 'demo-race' with a what-if transform"
    assert any(expected in n for n in notes), notes
    rows = log.recent(10, sources=["replay"])
    assert len(rows) == 2 and set(rows["status"]) == {"ok"}
    assert set(rows["model"]) == {"demo-race~scale=2"}
    assert {json.loads(t)["transform"]["time_scale"] for t in rows["transform"]} == {2.0}
    assert set(rows["output_text"]) == {LIVE.text}
    # The race page's recent runs say which rows were replayed.
    recent = table(at, "perceived_s")
    assert sorted(recent["source"]) == ["live", "live", "replay", "replay"]


def test_saving_with_a_bad_name_or_two_streams_says_why(make_app, server, log):
    live_race(server, log, "first")
    live_race(server, log, "second")
    at = make_app()
    streams = [
        i
        for i, mode in enumerate(at.dataframe(key="runs_table").value["mode"])
        if mode == "streaming"
    ]
    at.session_state["runs_table"] = {"selection": {"rows": streams}}
    at.text_input(key="new_name").input("my demo!")
    ok(at.run())
    ok(at.button(key="save").click().run())
    assert "not a usable recording name" in at.error[0].value
    at.text_input(key="new_name").input("fine-name")
    ok(at.button(key="save").click().run())
    assert "you picked 2 streaming runs" in at.error[0].value
    assert len(Recordings(log)) == 0


BAD = {
    "wrong version": ('{"format": "streamrace-recording", "version": 9}', "format version 9"),
    "truncated": (
        replay.dumps(replay.Recording("cut", (0.1, 0.2), ("a", "b")))[:60],
        "not valid JSON, or it is cut short",
    ),
    "negative offset": (
        '{"format": "streamrace-recording", "version": 1, "name": "neg", "mode": '
        '"streaming", "timeline": [[-1, "a"]]}',
        "the offset -1 s is negative",
    ),
}


def upload(at: AppTest, name: str, content: str | bytes) -> AppTest:
    data = content.encode() if isinstance(content, str) else content
    return ok(at.file_uploader(key="import_file").set_value((name, data, "application/json")).run())


def test_importing_bad_files_shows_clear_errors_and_keeps_everything(make_app, log):
    Recordings(log).save(replay.Recording("kept", (0.1,), ("x",), prompt="original"))
    at = make_app()
    for case, (content, expected) in BAD.items():
        upload(at, f"{case}.json", content)
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and expected in errors[0], (case, errors)
        assert errors[0].startswith(f"{case}.json: Not a usable recording"), errors
    assert list(Recordings(log)) == ["kept"]

    # A good file of the same name: refused until the user says to replace.
    good = replay.dumps(replay.Recording("kept", (0.2, 0.3), ("y", "z"), prompt="imported"))
    upload(at, "kept.json", good)
    assert "already exists" in at.error[0].value
    assert Recordings(log)["kept"].prompt == "original"
    ok(at.checkbox(key="import_replace").check().run())
    assert at.success[0].value == "Imported 'kept' from kept.json."
    assert Recordings(log)["kept"].prompt == "imported"
    assert list(table(at, "chunks")["chunks"]) == [2]


def test_a_synthetic_profile_can_borrow_a_recordings_text(make_app, log):
    Recordings(log).save(
        replay.Recording(
            "words", (0.1, 0.2), ("alpha ", "beta "), output_tokens=2, token_source="server"
        )
    )
    at = make_app()
    at.radio(key="what_if_kind").set_value("A synthetic profile")
    at.run()
    at.selectbox(key="profile_text").set_value("words")
    ok(at.slider(key="profile_ttft").set_value(1000).run())
    assert any("text of 'words'" in c.value for c in at.caption)
    cards = {m.label: m for m in at.metric}
    assert cards["⚡ First words"].value == "1.00 s"
    assert cards["⚡ First words"].delta == "+900 ms"  # against the recording's 100 ms
    ok(at.button(key="use_in_race").click().run())
    assert at.sidebar.selectbox(key="replay_model").value == (
        "synthetic~ttft=1,tps=30,tokens=200,text=words"
    )


def test_the_race_keeps_its_prompt_across_pages(make_app):
    """Going to the Replay page and back (or "Use in race") must not lose the race's prompt."""
    at = make_app()
    ok(at.switch_page("app_pages/race.py").run())
    at.pills(key="race_preset").set_value("One-line answer")
    ok(at.run())
    assert "capital of France" in at.text_area(key="race_prompt").value
    assert at.number_input(key="race_max_tokens").value == 48
    ok(at.text_area(key="race_prompt").input("My own prompt").run())
    ok(at.switch_page(PAGE).run())
    ok(at.button(key="use_in_race").click().run())
    ok(at.switch_page("app_pages/race.py").run())
    assert at.text_area(key="race_prompt").value == "My own prompt"
    assert at.number_input(key="race_max_tokens").value == 48
