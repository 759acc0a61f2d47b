"""The race page's structured race through AppTest, against a playback server streaming the
known report: the preset picks the schema, both panels draw the object, the field figures and
chart follow; a schema that does not parse and a server without JSON mode say what to do."""

from __future__ import annotations

import json

import pytest

from lib.serving.playback import REPORT, PlaybackServer, Script
from lib.storage.store import Store
from tests.pages.test_race_page import panel, unescaped

TIMEOUT = 30


@pytest.fixture(scope="module")
def server():
    text = json.dumps(REPORT)
    scripts = {"report": Script.tokens(text, 0.02, 0.004),
               "refuse": Script.tokens(text, 0.02, 0.004, refuse_formats=True)}
    with PlaybackServer(scripts) as server:
        yield server


def panel_text(at, title: str) -> str:
    return unescaped("\n".join(m.value for m in panel(at, title).markdown))


def test_the_structured_preset_races_the_report(server, open_app, store_url):
    at = open_app(server.base_url, "report")
    at.pills(key="race_preset").set_value("Structured report").run()
    assert at.selectbox(key="race_schema").value == "report"
    at.button(key="race_run").click().run(timeout=TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    for title in ("Blocking call", "Streaming call"):
        text = panel_text(at, title)
        assert f"### {REPORT['title']}" in text and REPORT["summary"] in text
        assert REPORT["sections"][1]["body"] in text and "▍" not in text
    labels = [m.label for m in at.metric]
    assert "⚡ First field, streaming" in labels and "🧩 Partial-parse failures" in labels
    assert any("Each field drawn whole at most" in c.value for c in at.caption)
    rows = Store(store_url).recent(2)
    assert set(rows["schema_name"]) == {"report"} and rows["object_valid"].all()
    assert set(rows["format_mode"]) == {"json"}  # `auto` on a compatible endpoint


def test_a_schema_that_does_not_parse_sends_nothing(server, open_app, store_url):
    at = open_app(server.base_url, "report")
    at.selectbox(key="race_schema").set_value("custom").run()
    at.text_area(key="race_schema_json").set_value('{"type": "object", "properties": {').run()
    at.button(key="race_run").click().run(timeout=TIMEOUT)
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("The JSON Schema does not parse") for w in warnings), warnings
    assert not at.exception and Store(store_url).count() == 0


def test_a_server_without_json_mode_says_to_choose_json(server, open_app, store_url):
    at = open_app(server.base_url, "refuse")
    at.selectbox(key="race_schema").set_value("report").run()
    at.selectbox(key="race_output_mode").set_value("strict").run()
    at.button(key="race_run").click().run(timeout=TIMEOUT)
    errors = [e.value for e in at.error]
    assert any("choose the json mode" in e for e in errors), errors
    assert not at.exception
    assert set(Store(store_url).recent(2)["error_kind"]) == {"bad_request"}
