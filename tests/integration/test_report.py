"""lib.report: the stakeholder report's content, its self-containment, no key, and the CLI.
(That it renders offline in a real browser: tests/browser/test_browser_history.py.)"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from conftest import SERVER_KEY, endpoint_for

from lib import report
from lib.cli import report as report_cli
from lib.core.trace import Params
from lib.race import Race
from lib.storage.history import Filters
from tests.support.history_runs import DAY, known_runs, make_run

pytestmark = pytest.mark.both_databases  # every run log here: SQLite, then PostgreSQL

GENERATED = datetime(2025, 3, 11, 9, 30, tzinfo=timezone.utc)


def build(store, **filters) -> str:
    return report.build(store.engine, Filters(**filters), generated_at=GENERATED)


def external_references(html: str) -> list[str]:
    """Elements and attributes that would load something when the file is opened (the
    scripts' own text, plotly.js and the charts' data, is left out: a browser test runs it)."""
    tags = re.findall(r"<(?:script|link|img|iframe|object|embed|source)\b[^>]*>", html)
    found = [tag for tag in tags if re.search(r"\b(?:src|href)\s*=", tag)]
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", html, flags=re.S)
    found += re.findall(r"""(?:src|href)\s*=\s*["']([^"'#][^"']*)["']""", markup)
    found += re.findall(r"url\(\s*['\"]?([^'\")]+)", markup)
    found += re.findall(r"@import", markup)
    return found


def test_report_content(store):
    store.log(known_runs())
    store.log([make_run("streaming", 0.3, prompt="<script>alert('x')</script> & co")])
    html = build(store)
    assert html.startswith("<!DOCTYPE html>")
    assert "Generated 2025-03-11 09:30 UTC · 10 runs · source: live" in html
    assert "Streaming would have kept" in html
    assert html.count('class="plotly-graph-div"') == 3  # distribution, patience, length
    assert "Blocking median 1.75 s (n = 4)" in html
    # The summary: blocking p50 of 0.5, 1, 2.5, 3.5 s = 1.75 s.
    assert "<td class=\"\">1.75 s</td>" in html
    assert "compatible" in html and "http://127.0.0.1:9/v1" in html and "model-a" in html
    # Prompts are text, never markup.
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in html
    assert "<script>alert(" not in html


def test_report_charts_the_browser_clock_when_runs_have_it(store):
    runs = known_runs()
    for trace in runs[:2]:
        trace.screen_first_s = trace.screen_done_s = 0.5
    store.log(runs)
    html = build(store)
    assert html.count('class="plotly-graph-div"') == 4
    assert "Blank screen on the user&#x27;s screen (browser clock)" in html \
        or "Blank screen on the user's screen (browser clock)" in html
    assert "browser&#x27;s clock" in html or "browser's clock" in html
    assert "the server&#x27;s clock" in html or "the server's clock" in html


def test_report_is_self_contained(store):
    store.log(known_runs())
    html = build(store)
    assert external_references(html) == []
    assert "cdn.plot.ly" not in html.split("<body>", 1)[1]
    assert len(html) > 3_000_000  # plotly.js is inside


def test_report_of_nothing_says_so(store):
    html = build(store)
    assert "No runs match these filters" in html and "plotly" not in html.lower()
    store.log([make_run("streaming", None, status="error")])
    html = build(store)
    assert "None of these runs ended ok" in html and "plotly-graph-div" not in html


def test_report_holds_no_key(store, keyed_playback, unique_prompt):
    race = Race(endpoint_for(keyed_playback.base_url, "fast", api_key=SERVER_KEY),
                unique_prompt, Params()).start()
    assert race.join(10)
    store.log(race.traces)
    html = build(store)
    assert unique_prompt in html
    assert SERVER_KEY not in html and SERVER_KEY[-12:] not in html


def test_cli_writes_the_filtered_report(store, store_url, tmp_path, capsys):
    store.log(known_runs())
    store.log([make_run("streaming", 0.2, model="model-b", created=DAY)])
    out = tmp_path / "report.html"
    code = report_cli.main(["--out", str(out), "--database-url", store_url, "--model", "model-b",
                        "--since", "2025-03-10", "--until", "2025-03-10"])
    assert code == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} (1 runs")
    html = out.read_text()
    assert "1 runs · 2025-03-10 00:00 UTC – 2025-03-11 00:00 UTC" in html
    assert "model: model-b" in html and "Streaming would have kept" not in html
    assert "Only streaming runs match" in html


def test_cli_bad_input_is_a_message(store_url, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report_cli.main(["--out", str(tmp_path / "r.html"), "--since", "last tuesday"])
    assert exit_info.value.code == 2
    assert "not an ISO date" in capsys.readouterr().err
    code = report_cli.main(["--out", str(tmp_path / "r.html"), "--database-url", "nope://x"])
    assert code == 2 and "DATABASE_URL" in capsys.readouterr().err
    code = report_cli.main(["--out", str(tmp_path / "no" / "dir" / "r.html"),
                        "--database-url", store_url])
    assert code == 2 and "cannot write" in capsys.readouterr().err


def test_report_compares_race_lanes(store):
    from tests.unit.test_history import lane_runs

    store.log(lane_runs())
    html = build(store)
    assert "<h2>Race lanes compared</h2>" in html
    section = html.split("<h2>Race lanes compared</h2>")[1].split("<h2>")[0]
    assert section.index("ours · streaming") < section.index("theirs · streaming") \
        < section.index("theirs · blocking")
    assert "9.0×" in section and "200 ms" in section and "1.80 s" in section
    assert external_references(html) == []
