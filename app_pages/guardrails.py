"""Guardrails lab: one streamed answer, every validation strategy side by side, measured."""

import json
from typing import cast

import pandas as pd
import streamlit as st

from app_pages.access import check_spend, current_owner
from app_pages.kept import Kept
from app_pages.race_structured import FREE_TEXT, SCHEMA_LABELS
from app_pages.shared import Changes, current_settings, owned_run, run_log, settle_previous
from lib import guards
from lib.core.config import moderation_config
from lib.core.errors import StreamRaceError
from lib.endpoints.resolve import default_params, resolve
from lib.present import charts
from lib.present.display import (
    clipped_note,
    guard_held,
    guard_markdown,
    guard_runs,
    guard_status,
    plain_markdown,
)
from lib.storage.store import to_csv
from lib.structured import SCHEMAS, structure_for

SECONDS = {"perceived_s": "blank screen", "delivered_ttft_s": "delivered TTFT",
           "guard_e2e_s": "E2E + validation"}
MILLISECONDS = {"exposure_s": "exposure", "validation_s": "validation"}


FIRST = guards.PRESETS[0]
KEPT = Kept("guard", prompt=FIRST.prompt, max_tokens=FIRST.max_tokens,
            validators=list(FIRST.validators), plant=FIRST.plant)
# What a preset sets survives a visit to another page, as on the race page (app_pages/kept.py);
# a bare string here would be drawn on the page (Streamlit's magic).


def apply_preset() -> None:
    label = st.session_state.get("guard_preset")
    preset = next((p for p in guards.PRESETS if p.label == label), None)
    if preset:
        KEPT.set(prompt=preset.prompt, max_tokens=preset.max_tokens,
                 validators=list(preset.validators), plant=preset.plant)
        st.session_state["guard_answer_as"] = preset.schema or FREE_TEXT
        st.session_state["guard_strategies"] = guards.strategies_for(preset.schema is not None)


def panels(labels: list[str]) -> list[tuple]:
    """One panel per strategy, three to a row: (status line, answer, held-back caption)."""
    slots = []
    for start in range(0, len(labels), 3):
        for label, column in zip(labels[start:start + 3], st.columns(3, gap="medium")):
            box = column.container(border=True)
            box.markdown(f"**🛡️ {label}**")
            slots.append((box.empty(), box.empty(), box.empty()))
    return slots


def draw(
    traces, slots, changes: Changes, elapsed: float | None = None, drawn: dict | None = None
) -> None:
    """Each panel's status line, answer and held-back caption; an answer is rebuilt only when
    its strategy has new events (`drawn` remembers how many each panel showed)."""
    drawn = {} if drawn is None else drawn
    for index, (trace, (status, body, held)) in enumerate(zip(traces, slots)):
        changes.markdown(status, guard_status(trace, elapsed))
        version = (len(trace.guard.events), trace.status)  # every chunk is an event in each
        if drawn.get(index) != version:
            drawn[index] = version
            runs = guard_runs(trace)
            changes.markdown(body, guard_markdown(runs) + (clipped_note(len(trace.text)) or ""))
            changes.caption(held, guard_held(runs) or "")


def run_lab(run: guards.GuardRun, store, results: dict) -> None:
    """Start the run and redraw the panels as the strategies release text, until it ends (or
    is stopped); owned from its start (owned_run)."""
    changes, drawn = Changes(), dict[int, str]()
    with owned_run(run, results, "last_guard", store=store, rows=run.traces):
        slots = panels([lane.label for lane in run.lanes])
        while True:
            finished = run.done  # read first: the frame drawn next then includes the end
            draw(run.traces(), slots, changes, run.elapsed(), drawn)
            if finished:
                break
            run.join(0.04)


def show_outcome(traces) -> None:
    if traces[0].error:
        st.error(plain_markdown(traces[0].error), icon="🚨")
    guard = traces[0].guard
    chars = sum(b - a for a, b in guard.violations)
    st.subheader("The trade-off")
    st.caption(
        f"Validators: {', '.join(guard.validators)} · {len(guard.violations)} violation(s), "
        f"{chars} characters, in the answer"
        + (f" · 🧪 planted: “{guard.planted}”" if guard.planted else "")
    )
    frame = pd.DataFrame(guards.summary_rows(traces))
    shown = frame.drop(columns=["status"] if set(frame["status"]) == {"ok"} else [])
    shown[list(MILLISECONDS)] = shown[list(MILLISECONDS)] * 1000  # the CSV keeps seconds
    st.dataframe(
        shown,
        hide_index=True,
        key="guard_table",
        column_config={
            **{
                name: st.column_config.NumberColumn(label, format="%.3f s")
                for name, label in SECONDS.items()
            },
            **{
                name: st.column_config.NumberColumn(label, format="%.2f ms")
                for name, label in MILLISECONDS.items()
            },
            "exposure_chars": "exposed chars",
            "leaked_chars": "never removed",
        },
    )
    left, right = st.columns(2)
    left.plotly_chart(
        charts.guard_tradeoff(traces), key="guard_tradeoff", config={"displaylogo": False}
    )
    right.plotly_chart(
        charts.guard_timelines(traces), key="guard_timelines", config={"displaylogo": False}
    )
    st.download_button(
        "⬇️ Download table (CSV)",
        to_csv(frame, current_owner()),
        "streamrace-guardrails.csv",
        "text/csv",
        key="guard_csv", on_click="ignore",
    )


st.title("🛡️ Guardrails lab")
st.caption(
    "Streaming shows text before the whole answer can be validated; validating first brings "
    "the blank screen back. One streamed answer goes to every strategy at once: each panel "
    "shows what its user would see (struck out: shown, then removed; held back: not shown yet)."
)
st.pills("Preset", [p.label for p in guards.PRESETS], key="guard_preset", on_change=apply_preset)
KEPT.restore()
prompt = st.text_area("Prompt", key=KEPT.key("prompt"), height=70, **KEPT.watch("prompt"))

settings = current_settings()
moderation_url, moderation_key = moderation_config()
if settings.endpoint_kind == "openai" and not moderation_key:
    moderation_key = settings.api_key  # a key typed in the sidebar for OpenAI serves too
choices = [name for name in guards.VALIDATORS if name != "moderation" or moderation_key]
validators_key = KEPT.key("validators")
offered = [v for v in st.session_state[validators_key] if v in choices]
if offered != st.session_state[validators_key]:  # the moderation key is gone since
    st.session_state[validators_key] = offered
cols = st.columns(2)
chosen = cols[0].multiselect(
    "Validators",
    choices,
    key=validators_key,
    **KEPT.watch("validators", default="default", options=choices),
    help="\n".join(f"- **{k}**: {v}" for k, v in guards.VALIDATORS.items()),
)
if not moderation_key:
    cols[0].caption("🔑 Set OPENAI_API_KEY to add OpenAI's moderation endpoint.")
strategies = cols[1].multiselect(
    "Strategies",
    list(guards.ALL_STRATEGIES),
    default=list(guards.STRATEGIES),
    key="guard_strategies",
    help="\n".join(f"- **{s.name}**: {s.summary}" for s in guards.ALL_STRATEGIES.values()),
)
schema_choice = st.selectbox(
    "Answer as", [FREE_TEXT, *SCHEMAS], key="guard_answer_as",
    format_func=lambda name: SCHEMA_LABELS.get(name, name),
    help="A structured answer (a shipped schema, asked for in the endpoint's output mode): the "
         "`field` strategy shows each field once it closed and passed its checks.")
plant_cols = st.columns([1, 2, 2])
plant_on = plant_cols[0].toggle(
    "🧪 Plant a violation",
    key=KEPT.key("plant"),
    **KEPT.watch("plant"),
    help="Inserts this text into the live stream, the same every run.",
)
plant_text = plant_cols[1].text_input(
    "Planted text", guards.DEFAULT_PLANT, key="guard_plant_text", disabled=not plant_on
)
plant_at = plant_cols[2].slider(
    "Position (fraction of max tokens)",
    0.0,
    1.0,
    0.5,
    0.05,
    key="guard_plant_at",
    disabled=not plant_on,
)
with st.expander("Settings: validators, strategies, sampling"):
    c = list(st.columns(4))
    banned = c[0].text_input(
        "Banned terms", ", ".join(guards.ValidatorSettings.banned), key="guard_banned"
    )
    max_chars = c[1].number_input(
        "Max length (characters)",
        1,
        100_000,
        guards.ValidatorSettings.max_chars,
        key="guard_max_chars",
    )
    on_fail = c[2].radio(
        "On failure",
        ["redact", "retract"],
        key="guard_on_fail",
        horizontal=True,
        help="redact: remove the violating span; retract: the whole answer, "
        "sentence or window it is in",
    )
    stream_first = c[3].toggle(
        "window: stream_first",
        True,
        key="guard_stream_first",
        help="Release each window, then validate it (NeMo's default)",
    )
    c = list(st.columns(4))
    window_tokens = c[0].number_input(
        "window: tokens", 1, 1000, guards.GuardOptions.chunk_size, key="guard_window_tokens"
    )
    window_context = c[1].number_input(
        "window: context tokens",
        0,
        999,
        guards.GuardOptions.context_size,
        key="guard_window_context",
    )
    max_tokens = c[2].number_input(
        "Max tokens", 1, 4096, key=KEPT.key("max_tokens"), **KEPT.watch("max_tokens")
    )
    seed = c[3].number_input("Seed", 0, 2**31 - 1, 42, key="guard_seed")
    c = list(st.columns([3, 1]))
    schema = c[0].text_area(
        "JSON Schema (json_schema)",
        json.dumps(guards.DEFAULT_SCHEMA, indent=1),
        key="guard_schema",
        height=120,
    )
    timeout_s = c[1].number_input(
        "Timeout (s)",
        1.0,
        600.0,
        60.0,
        key="guard_timeout",
        help="Longest wait for the next byte before the call fails",
    )
buttons = st.columns([1, 1, 6])
run = buttons[0].button("▶️ Run", type="primary", key="guard_run")
stop = buttons[1].button("⏹️ Stop", key="guard_stop")

results = st.session_state.setdefault("guard_results", {})
settle_previous(results)
try:
    store = run_log(settings.database_url)
except StreamRaceError as error:  # nothing is run that could not be logged
    store = None
    st.warning(f"{error.message} Nothing is sent until the run log can be written.", icon="✋")
if run and store is not None:
    try:
        validators = guards.build_validators(
            chosen,
            guards.ValidatorSettings(
                banned=tuple(banned.split(",")),
                max_chars=int(max_chars),
                schema=schema,
                moderation_url=moderation_url,
                moderation_key=moderation_key,
            ),
        )
        names = guards.check_strategies(strategies)
        options = guards.GuardOptions(
            cast(guards.OnFail, on_fail), int(window_tokens), int(window_context), stream_first
        )
        plant = (
            guards.Plant.at_fraction(plant_text, plant_at, int(max_tokens)) if plant_on else None
        )
        with st.spinner("Starting the embedded model (once per app process)…", show_time=True):
            endpoint = resolve(settings)
        params = default_params(
            endpoint, max_tokens=int(max_tokens), seed=int(seed), timeout_s=float(timeout_s)
        )
        structure = None if schema_choice == FREE_TEXT else structure_for(
            schema_choice, endpoint.kind)
        lab = guards.GuardRun(endpoint, prompt, params, validators, names, options, plant,
                              structure=structure)
        check_spend(settings)  # shared: the presenter's key has a limit per person
    except StreamRaceError as error:
        st.warning(error.message, icon="✋")
    else:
        run_lab(lab, store, results)
        show_outcome(lab.traces())
elif "last_guard" in results:
    if stop:
        st.info(
            "Stopped: the generation was cancelled; what each strategy had shown is kept and "
            "logged as cancelled.",
            icon="⏹️",
        )
    last = results["last_guard"]
    draw(last, panels([t.guard.label for t in last]), Changes())
    show_outcome(last)
