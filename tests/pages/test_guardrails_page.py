"""The guardrails page through Streamlit's AppTest, against real playback servers on 127.0.0.1.

The whole app runs (`streamlit_app.py`: navigation, the sidebar), switched to the page, and
pointed at the playback server through the environment variables a user would set.
"""

from __future__ import annotations

import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from lib.present.display import WORD_JOINER
from lib.serving.playback import PlaybackServer, Script
from lib.storage.store import Store

PAGE = "app_pages/guardrails.py"
TIMEOUT = 30

TEXTS = ("Hello", " there.", " Call", " me", " at", " 555-0100", " now.", " Bye", " then.")
GUARD = Script(offsets=tuple(0.03 + 0.01 * i for i in range(len(TEXTS))), texts=TEXTS)
HTML = Script(
    offsets=(0.02, 0.03, 0.04), texts=("<b>x</b> mail", " a@b.io", " <script>alert(1)</script>")
)
MOD_KEY = "mod-page-key-77aa55cc33"
LABELS = ["none", "after", "sentence", "window 16/4 stream_first", "blocking"]


@pytest.fixture(scope="module")
def server():
    scripts = {
        "guard": GUARD,
        "html": HTML,
        "clean": Script.regular(ttft_s=0.02, gap_s=0.005, n=20),
    }
    with PlaybackServer(scripts, api_key=None) as server:
        yield server


@pytest.fixture(scope="module")
def moderation_server():
    with PlaybackServer({}, api_key=MOD_KEY, flagged_terms=("bye",)) as server:
        yield server


@pytest.fixture
def make_app(server, open_app):
    return lambda model="guard", **env: open_app(server.base_url, model, PAGE, **env)


def run_lab(at: AppTest) -> AppTest:
    at.button(key="guard_run").click().run(timeout=TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    return at


def panels(at: AppTest) -> dict[str, list[str]]:
    """Each strategy panel's Markdown by its label: the status line, then the answer (and the
    held-back caption while text is held), word joiners left out."""
    found: dict[str, list[str]] = {}
    for element in _walk(at.main):
        if element.type != "markdown":
            continue
        if element.value.startswith("**🛡️ "):
            found[element.value.removeprefix("**🛡️ ").removesuffix("**")] = []
        elif found:
            found[list(found)[-1]].append(element.value.replace(WORD_JOINER, ""))
    return found


def panel_bodies(at: AppTest) -> dict[str, list[str]]:
    return {label: values[1:] for label, values in panels(at).items()}


def statuses(at: AppTest) -> dict[str, str]:
    return {label: values[0] for label, values in panels(at).items()}


def _walk(node):
    children = getattr(node, "children", None)
    if children is None:
        yield node
        return
    for child in children.values():
        yield from _walk(child)


def test_page_renders_its_controls(make_app):
    at = make_app()
    assert any("Guardrails lab" in t.value for t in at.title)
    assert at.multiselect(key="guard_validators").value == ["pii"]
    assert at.multiselect(key="guard_strategies").value == [
        "none",
        "after",
        "sentence",
        "window",
        "blocking",
    ]
    assert "moderation" not in at.multiselect(key="guard_validators").options
    assert any("OPENAI_API_KEY" in c.value for c in at.caption)
    assert at.text_area(key="guard_prompt").value.startswith("In one sentence")
    assert not at.error and not at.warning


def test_run_shows_each_strategy_as_its_user_sees_it_and_logs(make_app, server, store_url):
    at = make_app()
    before = len(server.received)
    run_lab(at)
    assert len(server.received) - before == 1, "one generation for every strategy"

    bodies = panel_bodies(at)
    assert list(bodies) == LABELS
    text = {label: "\n".join(values) for label, values in bodies.items()}
    assert "555\\-0100" in text["none"] and "~~" not in text["none"]
    assert "\u2009~~555\\-0100~~\u2009" in text["after"]  # shown, then struck out
    for label in ("sentence", "blocking"):
        assert "`[redacted]`" in text[label] and "555" not in text[label]
    assert "~~555\\-0100~~" in text["window 16/4 stream_first"]  # released, then checked
    status = statuses(at)
    assert list(status) == LABELS
    assert status["none"].endswith(", never removed")
    assert status["sentence"].endswith("Nothing violating was shown")

    [table] = at.dataframe
    frame = table.value.set_index("strategy")
    assert list(frame.index) == LABELS
    assert list(frame["exposure_chars"]) == [8, 8, 0, 8, 0]
    assert list(frame["leaked_chars"]) == [8, 0, 0, 0, 0]
    assert list(frame["retractions"]) == [0, 1, 0, 1, 0]
    assert frame.loc["blocking", "perceived_s"] > frame.loc["none", "perceived_s"]
    assert not at.error and not at.warning

    logged = Store(store_url).recent(20)
    assert len(logged) == 5 and set(logged["source"]) == {"guardrails"}
    assert logged["race_id"].nunique() == 1
    assert sorted(logged["strategy"]) == sorted(["none", "after", "sentence", "window", "blocking"])


def test_planted_violation_from_the_page(make_app, store_url):
    at = make_app("clean")
    at.toggle(key="guard_plant").set_value(True).run(timeout=TIMEOUT)  # enables its fields
    at.text_input(key="guard_plant_text").input("write to leak@example.com")
    at.slider(key="guard_plant_at").set_value(0.25)
    at.multiselect(key="guard_strategies").set_value(["none", "sentence"])
    at.number_input(key="guard_max_tokens").set_value(20)
    run_lab(at)
    bodies = panel_bodies(at)
    assert "leak@example\\.com" in "".join(bodies["none"])
    assert "`[redacted]`" in "".join(bodies["sentence"])
    logged = Store(store_url).recent(10)
    assert set(logged["planted"]) == {"write to leak@example.com"}
    assert {json.loads(p)["plant_at_chunk"] for p in logged["guard_params"]} == {5}
    assert any("planted" in c.value for c in at.caption)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda at: at.multiselect(key="guard_validators").set_value([]), "at least one validator"),
        (lambda at: at.multiselect(key="guard_strategies").set_value([]), "at least one strategy"),
        (
            lambda at: (
                at.multiselect(key="guard_validators").set_value(["json_schema"]),
                at.text_area(key="guard_schema").input('{"type": "objet"}'),
            ),
            "not a valid schema",
        ),
        (
            lambda at: (
                at.toggle(key="guard_plant").set_value(True).run(timeout=TIMEOUT),
                at.text_input(key="guard_plant_text").input(" "),
            ),
            "Type the text to plant",
        ),
        (lambda at: at.text_area(key="guard_prompt").input(""), "Type a prompt"),
    ],
)
def test_bad_input_is_a_clear_warning_and_sends_nothing(
    make_app, server, store_url, change, message
):
    at = make_app()
    change(at)
    before = len(server.received)
    run_lab(at)
    assert [w.value for w in at.warning] and message in at.warning[0].value, [
        w.value for w in at.warning
    ]
    assert len(server.received) == before
    assert Store(store_url).count() == 0
    assert not at.dataframe


def test_model_output_is_escaped_text_in_every_panel(make_app):
    at = make_app("html")
    run_lab(at)
    bodies = panel_bodies(at)
    assert list(bodies) == LABELS
    for label, values in bodies.items():
        body = "".join(values)
        assert "\\<script\\>alert\\(1\\)\\</script\\>" in body, (label, body)
        assert "\\<b\\>x\\</b\\>" in body, (label, body)
        assert not re.search(r"(?<!\\)[<>\[\]]", body.replace("`[redacted]`", "")), (label, body)
    assert "\u2009~~a@b\\.io~~" in "".join(bodies["after"])  # struck out, still escaped


def test_moderation_is_offered_with_a_key_and_runs_locally(make_app, moderation_server, store_url):
    at = make_app(OPENAI_API_KEY=MOD_KEY, STREAMRACE_MODERATION_URL=moderation_server.base_url)
    assert "moderation" in at.multiselect(key="guard_validators").options
    at.multiselect(key="guard_validators").set_value(["moderation"])
    at.multiselect(key="guard_strategies").set_value(["after", "sentence"])
    run_lab(at)
    bodies = panel_bodies(at)
    assert "\u2009~~Bye then\\.~~" in "".join(bodies["after"])  # shown, then removed
    assert "`[redacted]`" in "".join(bodies["sentence"])
    shown = json.dumps([e.value for e in _walk(at.main) if hasattr(e, "value")], default=str)
    assert MOD_KEY not in shown
    assert MOD_KEY not in json.dumps(Store(store_url).recent(10).astype(str).to_dict())


def test_the_lab_keeps_its_prompt_and_preset_across_pages(make_app):
    """As on the race page (app_pages/kept.py): a visit to another page loses nothing."""
    at = make_app()
    at.pills(key="guard_preset").set_value("Structured output (JSON)").run(timeout=TIMEOUT)
    assert at.multiselect(key="guard_validators").value == ["json_schema", "pii"]
    at.text_area(key="guard_prompt").input("My own guardrails prompt").run(timeout=TIMEOUT)
    at.switch_page("app_pages/race.py").run(timeout=TIMEOUT)
    at.switch_page(PAGE).run(timeout=TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    assert at.text_area(key="guard_prompt").value == "My own guardrails prompt"
    assert at.multiselect(key="guard_validators").value == ["json_schema", "pii"]
    assert at.number_input(key="guard_max_tokens").value == 60

