"""Guardrails runs against real local servers: one generation fanned out to every strategy,
the planted violation in a live stream, the moderation validator, the run log, the CLI.

Every call goes through Mirascope, the SDK and httpx to a playback server on 127.0.0.1; the
moderation validator talks HTTP to the playback server's /v1/moderations route.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import endpoint_for, received_for

from lib.core import metrics
from lib.core.errors import AuthFailed, CallFailed, InvalidInput
from lib.core.trace import Params
from lib.guards import (
    STRATEGIES,
    TABLE_FIELDS,
    GuardOptions,
    GuardRun,
    Moderation,
    PersonalData,
    Plant,
    run_headless,
)
from lib.serving.playback import PlaybackServer, Script

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ("Hello", " there.", " Call", " me", " at", " 555-0100", " now.", " Bye", " then.")
GUARD = Script(offsets=tuple(0.05 + 0.02 * i for i in range(len(TEXTS))), texts=TEXTS)
CLEAN = Script.regular(ttft_s=0.05, gap_s=0.01, n=20)
MODERATED = Script(offsets=(0.03, 0.05, 0.07), texts=("We meet.", " We attack at dawn.", " Bye."))
KEY = "mod-test-key-5c1e0a77b2"
"""The moderation server's key (not `sk-`-shaped: only explicit scrubbing keeps it out)."""


@pytest.fixture(scope="module")
def server(warmed):
    scripts = {"guard": GUARD, "clean": CLEAN, "moderated": MODERATED,
               "slow": Script.regular(ttft_s=0.05, gap_s=1.0, n=5)}
    with PlaybackServer(scripts) as server:
        yield server


@pytest.fixture(scope="module")
def moderation_server(warmed):
    with PlaybackServer({}, api_key=KEY, flagged_terms=("attack",)) as server:
        yield server


def by_strategy(traces):
    return {trace.guard.strategy: trace for trace in traces}


def phone_chunk_t(trace) -> float:
    return next(c.t for c in trace.chunks if "555" in c.text)


# -- one generation, five strategies ---------------------------------------------------------------


@pytest.fixture(scope="module")
def fanned_out(server, tmp_path_factory):
    from lib.storage.store import Store

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('guard-run') / 'runs.db'}")
    prompt = "fan out [test_guards_run]"
    traces = run_headless(endpoint_for(server.base_url, "guard"), prompt, Params(),
                          [PersonalData()], list(STRATEGIES), store=store, timeout_s=20)
    yield traces, store, received_for(server, prompt)
    store.engine.dispose()


def test_one_generation_feeds_every_strategy(fanned_out):
    traces, _, requests = fanned_out
    assert len(requests) == 1 and requests[0].body["stream"] is True
    assert [t.guard.strategy for t in traces] == list(STRATEGIES)
    assert len({t.run_id for t in traces}) == 5 and len({t.race_id for t in traces}) == 1
    for trace in traces:
        assert trace.status == "ok", trace.error
        assert trace.source == "guardrails" and trace.mode == "streaming"
        assert trace.text == "".join(TEXTS)
        assert trace.chunks == traces[0].chunks  # the same timestamps for all
        assert trace.guard.violations == ((24, 32),)
        assert trace.guard.first("done") is not None


def test_each_strategy_measures_what_the_user_saw(fanned_out):
    traces, _, _ = fanned_out
    s = by_strategy(traces)
    m = {name: metrics.compute(trace) for name, trace in s.items()}
    base = s["none"]
    t_phone, t_end = phone_chunk_t(base), base.t_end

    # none: text at once; the phone number stays from its arrival to the end.
    assert m["none"].delivered_ttft_s == m["none"].ttft_s
    assert (m["none"].exposure_chars, m["none"].leaked_chars) == (8, 8)
    assert m["none"].exposure_s == pytest.approx(t_end - t_phone, abs=1e-9)
    assert m["none"].validation_s == 0 and m["none"].retractions == 0

    # after: the same first text; the number vanishes after the end's check.
    assert m["after"].delivered_ttft_s == m["none"].delivered_ttft_s
    assert m["after"].retractions == 1 and m["after"].leaked_chars == 0
    expected = t_end + m["after"].validation_s - t_phone
    assert m["after"].exposure_s == pytest.approx(expected, abs=1e-9)
    assert m["after"].guard_e2e_s == pytest.approx(
        t_end + m["after"].validation_s - base.t0, abs=1e-9
    )

    # sentence: first text when "Hello there. " is complete and checked; nothing exposed.
    first_sentence_done = next(c.t for c in base.chunks if c.text == " Call")
    assert m["sentence"].delivered_ttft_s == pytest.approx(
        first_sentence_done + s["sentence"].guard.checks_s[0] - base.t0, abs=1e-9
    )
    assert (m["sentence"].exposure_chars, m["sentence"].retractions) == (0, 0)

    # window 16/4 stream_first: 9 tokens make one window, released at the end, then checked.
    assert m["window"].delivered_ttft_s == pytest.approx(t_end - base.t0, abs=1e-9)
    assert m["window"].exposure_s == pytest.approx(s["window"].guard.checks_s[-1], abs=1e-9)
    assert m["window"].retractions == 1

    # blocking: nothing until the whole answer is checked; nothing exposed.
    assert m["blocking"].delivered_ttft_s == pytest.approx(
        t_end + m["blocking"].validation_s - base.t0, abs=1e-9
    )
    assert m["blocking"].delivered_ttft_s > m["none"].e2e_s
    assert (m["blocking"].exposure_chars, m["blocking"].retractions) == (0, 0)

    # The trade-off, in order: the later the first text, the less exposed.
    blank = [m[n].perceived_s for n in ("none", "sentence", "blocking")]
    assert blank == sorted(blank) and blank[0] < blank[2]
    for name, values in m.items():
        assert values.perceived_s == pytest.approx(
            values.delivered_ttft_s + values.client_s, abs=1e-9
        ), name


def test_rows_are_logged_with_the_guard_columns(fanned_out):
    traces, store, _ = fanned_out
    frame = store.recent(50).set_index("strategy")
    assert sorted(frame.index) == sorted(STRATEGIES)
    assert set(frame["source"]) == {"guardrails"} and frame["race_id"].nunique() == 1
    assert set(frame["validators"]) == {"pii"}
    assert frame["planted"].isna().all()
    assert json.loads(frame.loc["window", "guard_params"]) == {
        "on_fail": "redact",
        "chunk_size": 16,
        "context_size": 4,
        "stream_first": True,
    }
    after = by_strategy(traces)["after"]
    expected = metrics.compute(after)
    row = frame.loc["after"]
    for column in ("delivered_ttft_s", "guard_e2e_s", "exposure_s", "validation_s", "perceived_s"):
        assert row[column] == pytest.approx(getattr(expected, column), abs=1e-9), column
    assert (row["exposure_chars"], row["leaked_chars"], row["retractions"]) == (8, 0, 1)
    timeline = json.loads(row["guard_timeline"])
    assert timeline["violations"] == [[24, 32]]
    assert timeline["events"][-2][1:5] == ["redact", 24, 32, "pii: phone number"]
    assert timeline["events"][-1][1] == "done"
    assert timeline["events"][-1][0] == pytest.approx(expected.guard_e2e_s, abs=2e-6)


# -- the planted violation in a live stream -----------------------------------------------


def test_planted_violation_lands_at_its_point_of_the_live_stream(server, store):
    plant = Plant.at_fraction("call me at 555-0100", 0.5, 20)  # before chunk 10 of 20
    run = GuardRun(
        endpoint_for(server.base_url, "clean"),
        "plant [test_guards_run]",
        Params(max_tokens=20),
        [PersonalData()],
        ["none", "sentence"],
        plant=plant,
    ).start()
    assert run.join(20)
    none, sentence = run.traces()
    store.log(run.traces())
    original = run.call.trace.chunks
    assert run.call.trace.text == CLEAN.text  # the model's answer is untouched...
    text = none.text  # ...the strategies saw it with the plant, between two words
    before = "".join(c.text for c in original[:10])
    assert run.planter.offset == len(before)
    assert text == before + "call me at 555-0100 " + CLEAN.text[len(before) :]
    assert run.planter.t == original[10].t  # the chunk it was planted before
    planted = [c for c in none.chunks if c not in original]
    assert [c.text for c in planted] == ["call", " me", " at", " 555-0100 "]
    assert {c.t for c in planted} == {original[10].t}
    phone = (text.index("555-0100"), text.index("555-0100") + 8)
    assert none.guard.violations == (phone,)
    assert metrics.compute(none).leaked_chars == 8
    assert metrics.compute(sentence).exposure_chars == 0
    rows = store.recent(10)
    assert set(rows["planted"]) == {"call me at 555-0100"}
    assert {json.loads(p)["plant_at_chunk"] for p in rows["guard_params"]} == {10}


# -- moderation --------------------------------------------------------------------------------


def test_moderation_flags_sentences_in_one_request(moderation_server):
    moderation = Moderation(KEY, moderation_server.base_url)
    text = "We meet at noon. We attack at dawn.\nBye."
    before = len(moderation_server.received)
    [violation] = moderation.check(text)
    assert text[violation.start : violation.end] == "We attack at dawn."
    assert violation.reason == "flagged: violence"
    assert moderation.check("We meet at noon.") == []
    assert moderation.check("  \n ") == []  # nothing sent for blank text
    sent = moderation_server.received[before:]
    assert [r.body["input"] for r in sent] == [
        ["We meet at noon.", "We attack at dawn.", "Bye."],
        ["We meet at noon."],
    ]
    assert {r.authorization for r in sent} == {f"Bearer {KEY}"}
    assert {r.body["model"] for r in sent} == {"omni-moderation-latest"}
    moderation.close()


def test_moderation_errors_are_clear_and_keep_the_key_out(moderation_server):
    wrong = "mod-wrong-key-9d8c7b6a5f"
    with pytest.raises(AuthFailed) as info:
        Moderation(wrong, moderation_server.base_url).check("hello")
    assert "refused the key" in info.value.message and wrong not in info.value.message
    with pytest.raises(CallFailed) as info:
        Moderation(wrong, "http://127.0.0.1:9/v1").check("hello")
    assert "did not answer" in info.value.message and wrong not in info.value.message


def test_moderation_in_a_run(server, moderation_server, store):
    run = GuardRun(
        endpoint_for(server.base_url, "moderated"),
        "moderate [test_guards_run]",
        Params(),
        [Moderation(KEY, moderation_server.base_url)],
        ["after", "sentence"],
        GuardOptions(),
    ).start()
    assert run.join(20)
    after, sentence = run.traces()
    text = after.text
    assert text == "We meet. We attack at dawn. Bye."
    flagged = (9, 27)
    assert after.guard.violations == (flagged,)
    # after: shown, then removed at the end's verdict; sentence: masked before it was shown.
    assert after.guard.states(len(text))[9:27] == ["removed"] * 18
    assert sentence.guard.states(len(text))[9:27] == ["masked"] * 18
    assert set(sentence.guard.states(len(text))[:9] + sentence.guard.states(len(text))[27:]) == {
        "shown"
    }
    assert (metrics.compute(after).exposure_chars, metrics.compute(after).retractions) == (18, 1)
    assert (metrics.compute(sentence).exposure_chars, metrics.compute(sentence).retractions) == (
        0,
        0,
    )
    # sentence checked each sentence, after the whole answer: 3 checks against 1
    assert (len(sentence.guard.checks_s), len(after.guard.checks_s)) == (3, 1)
    store.log(run.traces())
    assert KEY not in json.dumps(store.recent(10).astype(str).to_dict())


def test_a_refused_moderation_key_fails_the_run_with_a_clean_message(
    server, moderation_server, store
):
    wrong = "mod-wrong-key-0a1b2c3d4e"
    run = GuardRun(
        endpoint_for(server.base_url, "guard"),
        "refused [test_guards_run]",
        Params(),
        [Moderation(wrong, moderation_server.base_url)],
        ["sentence"],
    ).start()
    assert run.join(20)
    [trace] = run.traces()
    assert trace.status == "error" and "refused the key" in trace.error
    store.log(run.traces())
    dump = json.dumps(store.recent(10).astype(str).to_dict())
    assert wrong not in dump and wrong[-10:] not in dump


# -- stop, bad input ------------------------------------------------------------------------------


def test_cancel_ends_the_run_and_keeps_what_it_measured(server, store):
    run = GuardRun(
        endpoint_for(server.base_url, "slow"),
        "cancel [test_guards_run]",
        Params(),
        [PersonalData()],
        ["none", "blocking"],
    ).start()
    with run.call.progress:
        assert run.call.progress.wait_for(lambda: run.call.trace.chunks, 10)
    run.cancel()
    assert run.join(10)
    none, blocking = run.traces()
    assert none.status == blocking.status == "cancelled"
    assert none.guard.first("done") is None  # never finished: no E2E with validation
    assert metrics.delivered_ttft_s(none) is not None and metrics.delivered_ttft_s(blocking) is None
    store.log(run.traces())
    assert set(store.recent(10)["status"]) == {"cancelled"}


def test_bad_input_sends_nothing(server):
    before = len(server.received)
    endpoint = endpoint_for(server.base_url, "guard")
    with pytest.raises(InvalidInput, match="prompt"):
        GuardRun(endpoint, "  ", Params(), [PersonalData()], ["none"])
    with pytest.raises(InvalidInput, match="strategy"):
        GuardRun(endpoint, "hi", Params(), [PersonalData()], ["sometimes"])
    with pytest.raises(InvalidInput, match="validator"):
        GuardRun(endpoint, "hi", Params(), [], ["none"])
    assert len(server.received) == before


# -- the CLI --------------------------------------------------------------------------------------


def run_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STREAMRACE_") and k not in ("DATABASE_URL", "OPENAI_API_KEY")
    }
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")  # never the user's own run log
    return subprocess.run(
        [sys.executable, "-m", "lib.guards", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_prints_the_table_writes_csv_and_logs(server, tmp_path):
    db, out = tmp_path / "runs.db", tmp_path / "guard.csv"
    result = run_cli(
        [
            "--endpoint",
            "compatible",
            "--base-url",
            server.base_url,
            "--model",
            "clean",
            "--prompt",
            "cli [test_guards_run]",
            "--strategies",
            "none,after,sentence,window,blocking",
            "--validators",
            "pii",
            "--plant",
            "call me at 555-0100",
            "--plant-at",
            "0.5",
            "--max-tokens",
            "20",
            "--window-tokens",
            "4",
            "--window-context",
            "1",
            "--no-stream-first",
            "--out",
            str(out),
            "--database-url",
            f"sqlite:///{db}",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == TABLE_FIELDS
    labels = [line.split()[0] for line in lines[1:6]]
    assert labels == ["none", "after", "sentence", "window", "blocking"]
    none_line = lines[1].split()
    assert none_line[TABLE_FIELDS.index("leaked_chars")] == "8"
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["strategy"] for r in rows] == ["none", "after", "sentence", "window 4/1", "blocking"]
    assert rows[0]["leaked_chars"] == "8" and rows[4]["exposure_chars"] == "0"
    with sqlite3.connect(db) as conn:
        logged = conn.execute(
            "SELECT strategy, planted, source FROM runs ORDER BY strategy"
        ).fetchall()
    assert logged == [
        (s, "call me at 555-0100", "guardrails")
        for s in sorted(["none", "after", "sentence", "window", "blocking"])
    ]


def test_cli_refuses_bad_input_before_anything_starts(server, tmp_path):
    db = tmp_path / "runs.db"
    before = len(server.received)
    result = run_cli(
        [
            "--endpoint",
            "compatible",
            "--base-url",
            server.base_url,
            "--model",
            "clean",
            "--validators",
            "pii,telepathy",
            "--database-url",
            f"sqlite:///{db}",
        ],
        tmp_path,
    )
    assert result.returncode == 2
    assert "Unknown validator telepathy" in result.stderr and "Traceback" not in result.stderr
    assert len(server.received) == before and not db.exists()
