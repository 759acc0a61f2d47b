"""Benchmark: many requests under load, blocking against streaming, with percentiles."""

import json
from dataclasses import replace
from typing import Any

import streamlit as st

from app_pages.access import check_spend, current_owner
from app_pages.race_structured import FREE_TEXT, SCHEMA_LABELS
from app_pages.shared import current_settings, owned_run, run_log, settle_previous
from lib.bench import (
    MAX_WORKERS,
    PROMPT_SETS,
    STOP_GRACE_S,
    Benchmark,
    BenchSettings,
    BenchSummary,
    benchmark_for,
    compare_frame,
    logged_summary,
    parse_prompts,
    progress_line,
    results_frame,
)
from lib.core.errors import InvalidInput, StreamRaceError
from lib.core.metrics import Slo
from lib.core.trace import MODES
from lib.endpoints.resolve import default_params, resolve
from lib.present import charts
from lib.present.display import plain_markdown, seconds
from lib.storage.store import to_csv
from lib.structured import SCHEMAS, structure_for

UPLOAD = "📄 My file"
MS = st.column_config.NumberColumn(format="%.1f")


def settings_from_form(form: dict) -> BenchSettings:
    if form["prompts"] == UPLOAD:
        if form["file"] is None:
            raise InvalidInput("Upload a prompt file: one prompt a line, or JSONL with prompt "
                               "and optional max_tokens.")
        try:
            prompts = parse_prompts(form["file"].getvalue().decode("utf-8"), form["file"].name)
        except UnicodeDecodeError:
            raise InvalidInput(f"{form['file'].name} is not a UTF-8 text file.") from None
    else:
        prompts = PROMPT_SETS[form["prompts"]]
    rate = form["rate"] if form["load"] == "Request rate" else None
    return BenchSettings(
        prompts=prompts, modes=tuple(form["modes"]), requests=int(form["requests"]),
        concurrency=int(form["concurrency"]), rate=rate, poisson=form["poisson"],
        seed=int(form["seed"]), warmup=int(form["warmup"]),
        deadline_s=form["deadline"] or None, max_tokens=int(form["max_tokens"]) or None,
        slo=Slo(form["slo_ttft_ms"] / 1000, form["slo_icl_ms"] / 1000),
        workers=int(form["workers"]),
    ).check()


def run_benchmark(bench: Benchmark, results: dict) -> None:
    """Start the benchmark and show progress until it ends; Stop or a new run cancels it
    (owned_run). The runner logs every call itself: the page keeps the benchmark in
    `results["last"]`."""
    where = st.empty()
    if bench.settings.workers:
        where.caption(f"🛰️ Starting {bench.settings.workers} Ray workers (a process each)…")
    with owned_run(bench, results, "last", grace_s=STOP_GRACE_S + 20):
        bar = st.progress(0.0, text="Starting…")
        if bench.settings.workers:
            where.caption(f"🛰️ {bench.describe_workers()}")
        live = st.empty()
        while not bench.join(0.25):
            progress = bench.progress()
            bar.progress(progress.fraction, text=progress_line(progress))
            cards = live.container().columns(4)
            for index, (mode, p50) in enumerate(progress.p50.items()):
                cards[2 * index].metric(f"{charts.LABELS[mode]} p50 TTFT",
                                        seconds(p50["ttft_s"]), border=True)
                cards[2 * index + 1].metric(f"{charts.LABELS[mode]} p50 blank screen",
                                            seconds(p50["perceived_s"]), border=True)
        bar.empty()
        live.empty()


def show_summary(bench: Benchmark, summary: BenchSummary) -> None:
    st.subheader("Summary")
    st.caption(f"{summary.title()} · measured for {seconds(summary.duration_s)} · goodput: "
               f"TTFT ≤ {summary.slo.ttft_s * 1000:g} ms and ICL p99 ≤ "
               f"{summary.slo.icl_p99_s * 1000:g} ms")
    for problem in (bench.failure, bench.log_error):
        if problem:
            st.error(plain_markdown(problem), icon="🚨")
    st.dataframe(summary.counts_frame(), hide_index=True, key="bench_counts", placeholder="–",
                 column_config={c: MS for c in ("req/s", "goodput req/s", "goodput %", "error %",
                                                "output tok/s")})
    if summary.errors:
        st.markdown("**What went wrong**")
        st.dataframe(summary.errors_frame(), hide_index=True, key="bench_errors",
                     column_config={"error": st.column_config.TextColumn(width="large")})
    if not any(m.ok for m in summary.modes.values()):
        st.caption("No request completed: no percentiles to show.")
    else:
        st.dataframe(summary.percentiles_frame(), hide_index=True, key="bench_percentiles",
                     height="content", column_config={c: MS for c in ("mean", "p50", "p90", "p95",
                                                                      "p99")})
        st.plotly_chart(charts.bench_percentiles(summary.modes), key="bench_percentile_bars",
                        config={"displaylogo": False})
        st.plotly_chart(charts.bench_over_time(bench.traces), key="bench_over_time",
                        config={"displaylogo": False})
    cols = st.columns([1, 1, 4])
    # A download reruns nothing: a rerun redrew the page under its stale copy (two of each).
    cols[0].download_button("⬇️ Results CSV", to_csv(results_frame(bench.traces), current_owner()),
                            f"benchmark-{bench.bench_id[:8]}.csv", "text/csv", key="bench_csv",
                            on_click="ignore")
    cols[1].download_button("⬇️ Summary JSON", json.dumps(summary.as_dict(), indent=2),
                            f"benchmark-{bench.bench_id[:8]}.json", "application/json",
                            key="bench_json", on_click="ignore")


def compare(store, current: BenchSummary | None, slo: Slo) -> None:
    st.subheader("Compare with an earlier benchmark")
    logged = store.benchmarks(100)
    earlier = logged[logged["bench_id"] != (current.bench_id if current else None)]
    if earlier.empty:
        st.caption("No earlier benchmark in the run log yet.")
        return
    labels = {row.bench_id: f"{row.created_at[:19].replace('T', ' ')} · {row.model} · "
              f"{row.runs} runs · {row.status} · {row.bench_id[:8]}"
              for row in earlier.itertuples()}
    chosen = st.selectbox(
        "Earlier benchmark",
        list(labels),
        format_func=labels.get,
        index=None,
        placeholder="Pick a benchmark from the run log",
        key="bench_compare",
    )
    if chosen is None:
        return
    summaries = [s for s in (current, logged_summary(store, chosen, slo)) if s is not None]
    st.dataframe(compare_frame(summaries), hide_index=True, key="bench_compare_table")
    st.plotly_chart(
        charts.bench_comparison([(s.bench_id[:8], s.modes) for s in summaries]),
        key="bench_compare_chart",
        config={"displaylogo": False},
    )


st.title("📈 Benchmark")
st.caption(
    "Many requests, under load: blocking against streaming, with percentiles, throughput "
    "and goodput. Every request is logged (source benchmark)."
)
with st.form("bench_form"):
    cols = list(st.columns([2, 2, 3, 2]))
    form: dict[str, Any] = {
        "prompts": cols[0].selectbox("Prompts", [*PROMPT_SETS, UPLOAD], key="bench_prompts"),
        "requests": cols[1].number_input(
            "Requests",
            1,
            100_000,
            20,
            key="bench_requests",
            help="Measured requests, all modes together.",
        ),
        "modes": cols[2].multiselect("Modes", MODES, MODES, key="bench_modes"),
        "warmup": cols[3].number_input(
            "Warm-up requests",
            0,
            10_000,
            2,
            key="bench_warmup",
            help="Sent first, logged, not counted.",
        ),
        "file": st.file_uploader(
            "Prompt file (with “📄 My file”)", type=["txt", "jsonl"], key="bench_file"
        ),
    }
    cols = list(st.columns(4))
    form["load"] = cols[0].radio("Load", ["Concurrency", "Request rate"], key="bench_load")
    form["concurrency"] = cols[1].number_input(
        "Max in flight",
        1,
        1024,
        4,
        key="bench_concurrency",
        help="With a request rate, the cap: a request due while it is reached waits, and the "
        "wait shows in queue_s.",
    )
    form["rate"] = cols[2].number_input("Rate (req/s)", 0.1, 10_000.0, 10.0, key="bench_rate")
    form["poisson"] = cols[3].checkbox("Poisson arrivals", key="bench_poisson")
    cols = list(st.columns([1, 2, 3]))
    form["workers"] = cols[0].number_input(
        "Ray workers", 0, MAX_WORKERS, 0, key="bench_workers",
        help="0: every request is sent from the app's process. N: from N Ray actors, each with "
        "its share of the concurrency (or of the one schedule) and its own clients; without "
        "an address, a local Ray on this machine (started once, a few seconds).")
    form["ray_address"] = cols[1].text_input(
        "Ray address (with workers)", "", key="bench_ray_address", placeholder="host:port",
        help="A running Ray cluster's head (`ray start --head` prints it); empty: local.")
    cols = list(st.columns(6))
    form["seed"] = cols[0].number_input("Seed (arrivals)", 0, 2**31 - 1, 0, key="bench_seed")
    form["max_tokens"] = cols[1].number_input(
        "Max tokens (0: set's)", 0, 32_768, 0, key="bench_max_tokens"
    )
    form["deadline"] = cols[2].number_input(
        "Deadline s (0: none)", 0.0, 86_400.0, 0.0, key="bench_deadline"
    )
    form["timeout"] = cols[3].number_input("Timeout (s)", 1.0, 600.0, 60.0, key="bench_timeout")
    form["slo_ttft_ms"] = cols[4].number_input(
        "SLO TTFT ≤ ms", 1.0, 600_000.0, 200.0, key="bench_slo_ttft"
    )
    form["slo_icl_ms"] = cols[5].number_input(
        "SLO ICL p99 ≤ ms", 1.0, 600_000.0, 50.0, key="bench_slo_icl"
    )
    form["answer_as"] = st.columns(3)[0].selectbox(
        "Answer as", [FREE_TEXT, *SCHEMAS], key="bench_answer_as",
        format_func=lambda name: SCHEMA_LABELS.get(name, name),
        help="A structured benchmark: every call asks for this object; the summary adds the "
             "time to the first field and to a schema-valid object.")
    submitted = st.form_submit_button("▶️ Run benchmark", type="primary", key="bench_run")
stop = st.button("⏹️ Stop", key="bench_stop")

results = st.session_state.setdefault("bench_results", {})
settle_previous(results)
store = None
try:
    store = run_log(current_settings().database_url)
    if submitted:
        settings = settings_from_form(form)
        check_spend(current_settings(), requests=settings.requests + settings.warmup)
        with st.spinner("Starting the embedded model (once per app process)…", show_time=True):
            endpoint = resolve(current_settings())
        if form["answer_as"] != FREE_TEXT:
            settings = replace(settings, structure=structure_for(form["answer_as"],
                                                                 endpoint.kind))
        params = default_params(endpoint, timeout_s=float(form["timeout"]))
        bench = benchmark_for(endpoint, settings, params, store,
                              form["ray_address"].strip() or None)
        if bench.note:
            st.info(bench.note, icon="🖥️")
        run_benchmark(bench, results)
except StreamRaceError as error:
    st.warning(error.message, icon="✋")

last = results.get("last")
summary = last.summary() if last is not None else None
if last is not None:
    if last.status in ("stopped", "deadline"):
        st.info("Stopped by you." if last.status == "stopped" else "The deadline passed.", icon="⏹️")
        st.caption(
            "Requests in flight were cancelled and logged as cancelled with what they "
            "had received; the rest were not sent."
        )
    if last.note and not submitted:
        st.info(last.note, icon="🖥️")
    show_summary(last, summary)
if store is not None:
    compare(
        store,
        summary,
        summary.slo if summary else Slo(form["slo_ttft_ms"] / 1000, form["slo_icl_ms"] / 1000),
    )
