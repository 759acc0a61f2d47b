"""Structured answers on the guardrails lab and the benchmark page (AppTest), against a
playback server streaming the known report: the lab's `field` strategy among the others (the
e-mail in a section body exposed by neither field nor blocking), a structured benchmark's
summary, the rows logged with their schema."""

from __future__ import annotations

import json

import pytest

from lib.serving.playback import REPORT, PlaybackServer, Script
from lib.storage.store import Store

PAGE = "app_pages/guardrails.py"
TIMEOUT = 30


@pytest.fixture(scope="module")
def server():
    with PlaybackServer({"report": Script.tokens(json.dumps(REPORT), 0.02, 0.004)}) as server:
        yield server


def test_the_structured_preset_runs_the_field_strategy(server, open_app, store_url):
    at = open_app(server.base_url, "report", PAGE)
    at.pills(key="guard_preset").set_value("Structured report (field by field)").run()
    assert at.selectbox(key="guard_answer_as").value == "report"
    assert "field" in at.multiselect(key="guard_strategies").value
    at.toggle(key=next(t.key for t in at.toggle if "plant" in t.key)).set_value(False).run()
    at.button(key="guard_run").click().run(timeout=TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    rows = Store(store_url).recent(20)
    by = {row["strategy"]: row for row in rows.to_dict("records")}
    assert {"none", "field", "blocking"} <= set(by)
    assert by["field"]["exposure_chars"] == 0 and by["none"]["exposure_chars"] == 15
    assert by["field"]["delivered_ttft_s"] < by["blocking"]["delivered_ttft_s"]
    assert set(rows["schema_name"]) == {"report"}


def test_a_structured_benchmark_from_its_page(server, open_app, store_url):
    at = open_app(server.base_url, "report", "app_pages/benchmark.py")
    at.selectbox(key="bench_answer_as").set_value("report")
    at.number_input(key="bench_requests").set_value(4)
    at.button(key="bench_run").click().run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    percentiles = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    assert {"first_field_s", "valid_object_s"} <= set(percentiles["metric"])
    counts = next(d.value for d in at.dataframe if "valid objects" in d.value.columns)
    assert list(counts["valid objects"]) == [2, 2]
    assert set(Store(store_url).recent(10)["schema_name"]) == {"report"}
