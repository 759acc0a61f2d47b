"""Structured races against the playback server streaming a known JSON report token by token:
each field's logged moments match the script, the blocking lane gets the whole object, and bad
input (a server without JSON mode, a stream cut mid-object, an object that never validates)
ends with a clear message and the partial object kept."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from lib.core.structured import read_fields
from lib.core.trace import Params
from lib.race import run_headless
from lib.serving.playback import REPORT
from lib.storage.store import trace_from_row
from lib.structured import structure_for
from lib.structured.schemas import Report
from tests.conftest import ROOT, SCRIPTS

PARAMS = Params(timeout_s=10)


def scripted_moments(script, sent: list[float] | None = None) -> dict[str, tuple[float, float]]:
    """Each field's first and last moment as the script sends them (after the request), or,
    given the server's stamps of the pieces it sent, as it really sent them."""
    text = "".join(script.texts)
    ends, total = [], 0
    for piece in script.texts:
        total += len(piece)
        ends.append(total)
    moments = sent if sent is not None else script.offsets

    def at(offset: int) -> float:
        return moments[next(i for i, end in enumerate(ends) if end > offset)]

    return {unit.path: (at(unit.content_start), at(unit.closed_by))
            for unit in read_fields(text).units}


def test_field_moments_match_the_script_within_5_ms(make_endpoint, store, unique_prompt,
                                                    received):
    """Against the script's own moments (the server sends each piece on time on a quiet
    machine), and against the moments the server really sent them (on the same clock): a
    loaded machine makes the server late, which no measurement should hide or add to."""
    structure = structure_for("report", "compatible", "strict")
    script = SCRIPTS["report"]
    expected = scripted_moments(script)
    to_script, to_server = [], []
    for _ in range(5):  # best of five: on a loaded machine one race is a few ms late, never early
        blocking, streaming = run_headless(make_endpoint("report"), unique_prompt, PARAMS,
                                           store, structure=structure)
        assert blocking.status == streaming.status == "ok"
        rows = {row["mode"]: row for row in store.recent(2).to_dict("records")}
        logged = json.loads(rows["streaming"]["field_moments"])
        assert list(logged) == list(expected)
        to_script.append(max(abs(logged[path][i] - expected[path][i])
                             for path in expected for i in (0, 1)))
        served = next(r for r in received(unique_prompt)[-2:] if r.body.get("stream"))
        sent = scripted_moments(script, served.sent)
        to_server.append(max(abs(streaming.t0 + logged[path][i] - sent[path][i])
                             for path in expected for i in (0, 1)))
        if to_script[-1] <= 0.005:
            break
    # The figure against the script itself, on a quiet machine: bench/structured_fields.py.
    assert min(to_server) <= 0.005, (to_server, to_script)
    # The blocking lane: every field at once, with the whole, valid object.
    blocking_row = rows["blocking"]
    assert blocking_row["object_valid"] and blocking_row["schema_name"] == "report"
    assert json.loads(blocking_row["output_text"]) == REPORT
    assert set(json.loads(blocking_row["field_moments"])) == set(expected)
    assert rows["streaming"]["first_field_s"] == pytest.approx(expected["title"][0], abs=0.005)
    assert rows["streaming"]["first_field_s"] < blocking_row["first_field_s"] / 3
    # A logged row is a structured Trace again: the same figures from the same code.
    again = trace_from_row(rows["streaming"])
    assert again.request.structure is not None and again.request.structure.model is Report


@pytest.mark.parametrize("mode", ["strict", "json", "tool"])
def test_every_mode_asks_its_way_and_gets_the_object(make_endpoint, received, unique_prompt,
                                                     mode):
    structure = structure_for("report", "compatible", mode)
    blocking, streaming = run_headless(make_endpoint("report-fast"), unique_prompt, PARAMS,
                                       None, structure=structure)
    assert blocking.status == streaming.status == "ok"
    assert json.loads(streaming.text) == REPORT == json.loads(blocking.text)
    body = received(unique_prompt)[0].body
    assert ("response_format" in body) == (mode == "strict")
    assert ("tools" in body) == (mode == "tool")


def test_a_server_without_json_mode_says_which_mode_to_choose(make_endpoint, unique_prompt):
    structure = structure_for("report", "compatible", "strict")
    blocking, streaming = run_headless(make_endpoint("report-refuse"), unique_prompt, PARAMS,
                                       None, structure=structure)
    for trace in (blocking, streaming):
        assert trace.status == "error" and trace.error_kind == "bad_request"
        assert "choose the json mode" in trace.error
    # The json mode asks in the prompt only: the same server answers.
    json_mode = structure_for("report", "compatible", "json")
    blocking, streaming = run_headless(make_endpoint("report-refuse"), unique_prompt, PARAMS,
                                       None, structure=json_mode)
    assert blocking.status == streaming.status == "ok"


def test_a_stream_cut_mid_object_keeps_its_partial_object(make_endpoint, store, unique_prompt):
    structure = structure_for("report", "compatible")
    _, streaming = run_headless(make_endpoint("report-cut"), unique_prompt, PARAMS, store,
                                structure=structure)
    assert streaming.status == "error" and streaming.error_kind == "stream_broken"
    row = next(r for r in store.recent(2).to_dict("records") if r["mode"] == "streaming")
    assert not row["object_valid"] and pd.isna(row["valid_object_s"])
    moments = json.loads(row["field_moments"])
    assert moments["title"][1] is not None  # the title closed before the cut
    assert list(moments.values())[-1][1] is None  # the field being written never closed
    assert row["output_text"] == streaming.text and streaming.text.startswith('{"title"')


def test_an_object_that_never_validates_is_an_error_with_its_text(make_endpoint, store,
                                                                  unique_prompt):
    structure = structure_for("report", "compatible")
    blocking, streaming = run_headless(make_endpoint("report-invalid"), unique_prompt, PARAMS,
                                       store, structure=structure)
    for trace in (blocking, streaming):
        assert trace.status == "error" and trace.error_kind == "invalid_object"
        assert "sections" in trace.error and "kept" in trace.error
        assert json.loads(trace.text)["title"] == REPORT["title"]


def test_the_command_line_prints_and_logs_the_field_figures(playback, store_url):
    result = subprocess.run(
        [sys.executable, "-m", "lib.race", "--schema", "report", "--base-url", playback.base_url,
         "--model", "report-fast", "--database-url", store_url],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "streaming: first field" in result.stdout and "final object valid" in result.stdout
    assert "  title " in result.stdout and "  risks[1] " in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "lib.race", "--schema", '{"type": "object", "properties": {',
         "--base-url", playback.base_url, "--model", "report-fast", "--database-url", store_url],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: The JSON Schema does not parse")
    assert "Traceback" not in bad.stderr


def test_the_field_strategy_hides_the_email_and_shows_title_and_summary_before_blocking(
        make_endpoint, store, unique_prompt):
    from lib.core import metrics
    from lib.guards import build_validators, strategies_for
    from lib.guards import run_headless as guard_run

    structure = structure_for("report", "compatible")
    traces = guard_run(make_endpoint("report"), unique_prompt, PARAMS,
                       build_validators(["pii"]), strategies_for(True), store=store,
                       structure=structure)
    by = {trace.guard.strategy: trace for trace in traces}
    assert set(by) == {"none", "after", "sentence", "window", "field", "blocking"}
    figures = {name: metrics.compute(trace) for name, trace in by.items()}
    text = by["field"].text
    email = (text.index("ops@example.com"), text.index("ops@example.com") + 15)
    assert by["field"].guard.violations == (email,)
    assert figures["field"].exposure_chars == 0 and figures["field"].leaked_chars == 0
    assert figures["none"].exposure_chars == 15  # streaming unguarded shows it all
    # Title and summary whole on screen before the blocking strategy shows anything.
    units = {u.path: u for u in read_fields(text).units}
    shown = [p for p in by["field"].guard.pieces(len(text)) if p.state == "shown"]
    summary_shown = max(p.shown_at for p in shown if p.start < units["summary"].end)
    blocking_first = by["blocking"].guard.first("release").t
    assert summary_shown < blocking_first - 0.5  # the script takes 2.4 s; summary ends by 0.7 s
    assert figures["field"].delivered_ttft_s < figures["blocking"].delivered_ttft_s / 3
    assert json.loads(text) == REPORT  # the lab's answer is the object, unchanged


def test_a_planted_email_goes_inside_a_field_and_the_object_stays_valid(make_endpoint,
                                                                        unique_prompt):
    from lib.core import metrics
    from lib.guards import Plant, build_validators
    from lib.guards import run_headless as guard_run

    structure = structure_for("report", "compatible")
    traces = guard_run(make_endpoint("report-fast"), unique_prompt, PARAMS,
                       build_validators(["pii"]), ["none", "field", "blocking"],
                       plant=Plant("mail me at leak@example.org", 60), structure=structure)
    field = next(t for t in traces if t.guard.strategy == "field")
    report = json.loads(field.text)  # still one valid object
    assert "leak@example.org" in json.dumps(report)
    assert metrics.compute(field).exposure_chars == 0
    none = next(t for t in traces if t.guard.strategy == "none")
    assert metrics.compute(none).exposure_chars >= len("leak@example.org")


def test_the_guardrails_command_line_runs_the_field_strategy(playback, store_url):
    result = subprocess.run(
        [sys.executable, "-m", "lib.guards", "--structure", "report", "--base-url",
         playback.base_url, "--model", "report-fast", "--max-tokens", "400",
         "--database-url", store_url],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:7]}
    assert set(rows) == {"none", "after", "sentence", "window", "field", "blocking"}
    assert rows["field"][5] == "0"  # exposure_chars
    refused = subprocess.run(
        [sys.executable, "-m", "lib.guards", "--strategies", "field", "--base-url",
         playback.base_url, "--model", "fast", "--database-url", store_url],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "needs a structured answer" in refused.stderr


def test_history_and_the_report_chart_the_latest_structured_race(make_endpoint, store,
                                                                  unique_prompt):
    from lib import report
    from lib.storage import history

    run_headless(make_endpoint("fast"), unique_prompt, PARAMS, store)  # free text: not charted
    blocking, streaming = run_headless(make_endpoint("report-fast"), unique_prompt, PARAMS,
                                       store, structure=structure_for("report", "compatible"))
    run_headless(make_endpoint("fast"), unique_prompt, PARAMS, store)
    lanes = history.latest_structured_race(store.engine, history.Filters())
    assert {t.run_id for t in lanes} == {blocking.run_id, streaming.run_id}
    figure = charts_of(lanes)
    streamed = next(bar for bar in figure.data if "Streaming" in bar.name)
    assert list(streamed.y) == list(json.loads(next(
        r["field_moments"] for r in store.recent(10).to_dict("records")
        if r["run_id"] == streaming.run_id)))
    html = report.build(store.engine, history.Filters())
    assert "Structured answer, field by field" in html and "schema-valid object" in html
    # The run log's table (History's, and its exports) carries the figures.
    frame = history.table(store.engine, history.Filters())
    row = frame[frame["run_id"] == streaming.run_id].iloc[0]
    assert row["schema_name"] == "report" and bool(row["object_valid"])


def charts_of(traces):
    from lib.present import charts

    return charts.field_timeline(traces)
