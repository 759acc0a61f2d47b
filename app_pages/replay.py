"""Replay: save logged runs as recordings, carry them to another machine, and ask "what if"."""

import pandas as pd
import streamlit as st

from app_pages.access import current_owner, may_delete
from app_pages.shared import REPLAY_CHOICES, REPLAY_MODEL, current_settings, run_log
from lib import replay
from lib.core import metrics
from lib.core.errors import StreamRaceError
from lib.present import charts
from lib.present.display import rate, seconds
from lib.replay import Profile, Spec, Transform

RUN_COLUMNS = ["created_at", "source", "mode", "model", "ttft_s", "e2e_s", "output_tokens",
               "prompt"]
SCALES = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0]
SECONDS = {name: st.column_config.NumberColumn(name, format="%.3f s")
           for name in ("ttft_s", "e2e_s")}
BUILT_IN = "(the built-in text)"
TRANSFORMED, SYNTHETIC = "The recording, transformed", "A synthetic profile"


def select(recording) -> None:
    """Show the what-if of a recording just saved or imported (before those widgets are drawn)."""
    st.session_state["recording"] = recording.name
    st.session_state["what_if_kind"] = TRANSFORMED


def record(store, recordings) -> None:
    st.subheader("⏺️ Record a run")
    runs = store.recent(200, owner=current_owner())  # sign-in on: your own runs
    runs = runs[runs["status"] == "ok"].reset_index(drop=True)
    if runs.empty:
        st.caption("No complete run logged yet: run a race first.")
        return
    st.caption("Pick a streaming run, and its race's blocking run to replay both sides.")
    table = st.dataframe(runs[RUN_COLUMNS], key="runs_table", on_select="rerun", hide_index=True,
                         selection_mode="multi-row", column_config=SECONDS,
                         height=min(250, 35 * (len(runs) + 1) + 3))  # grid rows are 35 px
    picked = runs.iloc[table.selection.rows]
    cols = st.columns([3, 1], vertical_alignment="bottom")
    name = cols[0].text_input("Recording name", key="new_name", placeholder="e.g. demo-report")
    if cols[1].button("💾 Save recording", key="save", disabled=picked.empty):
        try:
            recording = replay.from_rows(name, picked.to_dict("records"))
            recordings.save(recording)
            select(recording)
        except StreamRaceError as error:
            st.error(error.message, icon="✋")
        else:
            st.success(f"Saved '{recording.name}': {len(recording.offsets)} chunks.", icon="💾")


def import_file(recordings) -> None:
    cols = st.columns([3, 1], vertical_alignment="center")
    uploaded = cols[0].file_uploader("Import a recording (.json)", type=["json"], key="import_file")
    replace = cols[1].checkbox("Replace a recording with the same name", key="import_replace")
    if uploaded is None:
        return
    # The file stays in the uploader across reruns: import it once, keep saying how it went.
    attempt = (uploaded.file_id, replace)
    outcomes = st.session_state.setdefault("imports", {})
    if attempt not in outcomes:
        try:
            recording = replay.loads(uploaded.getvalue())
            check_replace(recordings, recording.name, replace)
            recordings.save(recording, replace=replace)
            select(recording)
            outcomes[attempt] = ("success", f"Imported '{recording.name}' from {uploaded.name}.")
        except StreamRaceError as error:
            outcomes[attempt] = ("error", f"{uploaded.name}: {error.message}")
    kind, message = outcomes[attempt]
    (st.success if kind == "success" else st.error)(message)


def check_replace(recordings, name: str, replace: bool) -> None:
    """Replacing a recording deletes it: only its owner or an admin may (sign-in on)."""
    owners = recordings.owners()
    if replace and name in owners and not may_delete(owners[name]):
        raise StreamRaceError(f"'{name}' was saved by {owners[name] or 'someone before sign-in'}"
                              ": only they or an admin can replace it. Import it under another "
                              "name.")


def library(recordings) -> list:
    st.subheader("🎞️ Recordings")
    import_file(recordings)  # first: an imported recording is selected below
    saved, owners = recordings.all(), recordings.owners()
    if saved:
        rows = pd.DataFrame(replay.summary_rows(saved))
        if current_owner() is not None:  # sign-in on: who saved each
            rows["saved by"] = [owners.get(r.name) or "" for r in saved]
        st.dataframe(rows, key="recordings_table", hide_index=True, column_config=SECONDS)
        # Drawn once: inside the generator it was drawn again for every recording before the
        # chosen one (a duplicate key, and a crash, for any but the first).
        name = st.selectbox("Recording", [r.name for r in saved], key="recording")
        chosen = next(r for r in saved if r.name == name)
        cols = st.columns([1, 1, 4])
        cols[0].download_button("⬇️ Export JSON", replay.dumps(chosen, current_owner()),
                                f"{chosen.name}.json", "application/json", key="export",
                                on_click="ignore")
        owner = owners.get(chosen.name)
        if may_delete(owner):
            with cols[1].popover("🗑️ Delete"):
                if st.button(f"Delete '{chosen.name}' for good", key="delete"):
                    recordings.delete(chosen.name)
                    st.rerun()
        else:
            cols[2].caption(f"🔒 Saved by {owner or 'someone before sign-in was on'}: only "
                            "they or an admin can delete it.")
    else:
        st.caption("No recordings yet: record a run above, or import a file.")
    return saved


def what_if_spec(saved) -> Spec:
    names = [r.name for r in saved]
    st.session_state.setdefault("what_if_kind", TRANSFORMED if saved else SYNTHETIC)
    kind = st.radio("Play", [TRANSFORMED, SYNTHETIC], key="what_if_kind", horizontal=True)
    cols = st.columns(4)
    if kind == SYNTHETIC:
        text = cols[3].selectbox("Text from", [BUILT_IN, *names], key="profile_text")
        return Spec(profile=Profile(
            ttft_s=cols[0].slider("Time to first token (ms)", 0, 5000, 500, 50,
                                  key="profile_ttft") / 1000,
            tokens_per_s=float(cols[1].slider("Tokens per second", 1, 300, 30, key="profile_tps")),
            tokens=int(cols[2].number_input("Answer length (tokens)", 1, 4000, 200,
                                            key="profile_tokens")),
            jitter_s=st.slider("Jitter ± (ms)", 0, 200, 0, 5, key="profile_jitter") / 1000,
            text=None if text == BUILT_IN else text,
        ))
    if not saved:
        st.info("Save or import a recording to transform it.", icon="🎞️")
        st.stop()
    cap = cols[2].number_input("Cap tokens/s (0: none)", 0.0, 1000.0, 0.0, 5.0, key="cap")
    stall = st.columns(4)
    return Spec(recording=st.session_state.get("recording", names[0]), transform=Transform(
        first_chunk_delay_s=cols[0].slider("Extra latency before the first chunk (ms)", 0, 3000,
                                           0, 50, key="delay_ms") / 1000,
        time_scale=cols[1].select_slider("Time per token", SCALES, 1.0, key="scale",
                                         format_func=lambda v: f"×{v:g}"),
        max_tokens_per_s=cap or None,
        jitter_s=cols[3].slider("Jitter ± (ms)", 0, 200, 0, 5, key="jitter_ms") / 1000,
        seed=int(stall[0].number_input("Jitter seed", 0, 2**31 - 1, 0, key="replay_seed")),
        stall_s=stall[1].slider("Stall (s)", 0.0, 10.0, 0.0, 0.1, key="replay_stall_s"),
        stall_at=stall[2].slider("Stall at (% of the answer)", 0, 100, 50, 5, key="stall_at") / 100,
    ))


def use_in_race(model: str) -> None:
    """Select the replay endpoint with this model in the sidebar (a callback: runs before the
    sidebar is drawn)."""
    st.session_state[REPLAY_CHOICES] = [model, *[m for m in st.session_state.get(REPLAY_CHOICES, [])
                                                 if m != model]][:8]
    st.session_state["endpoint_kind"] = "replay"
    st.session_state[REPLAY_MODEL] = model


def what_if(saved) -> None:
    st.subheader("🔮 What if…")
    try:
        spec = what_if_spec(saved)
        recorded, transformed = replay.preview(spec, {r.name: r for r in saved})
    except StreamRaceError as error:
        st.error(error.message, icon="✋")
        return
    st.caption(replay.label(spec))
    after = metrics.compute(transformed[1])
    blocking_after = metrics.e2e_s(transformed[0])

    def delta(what_if: float | None, index: int, metric) -> str | None:
        """How much later (or sooner) than recorded, when there is a recording to compare with."""
        was = metric(recorded[index]) if recorded else None
        if was is None or what_if is None or abs(what_if - was) < 0.0005:
            return None
        return f"{(what_if - was) * 1000:+.0f} ms"

    cards = st.columns(4)
    cards[0].metric("⚡ First words", seconds(after.ttft_s),
                    delta(after.ttft_s, 1, metrics.ttft_s), "inverse", border=True)
    cards[1].metric("⚡ Last words", seconds(after.e2e_s),
                    delta(after.e2e_s, 1, metrics.e2e_s), "inverse", border=True)
    cards[2].metric("⏳ Blocking answer", seconds(blocking_after),
                    delta(blocking_after, 0, metrics.e2e_s), "inverse", border=True,
                    help="When a blocking call of the same request gets its whole answer.")
    cards[3].metric("⚡ Tokens/s", rate(after.output_tps), border=True,
                    help=f"Worst stall {seconds(after.icl_max_s)}; "
                         f"median gap {seconds(after.icl_p50_s)}")
    st.plotly_chart(charts.replay_preview(recorded, transformed), key="replay_preview",
                    config={"displaylogo": False})
    if st.button("▶️ Use in race", type="primary", key="use_in_race", on_click=use_in_race,
                 args=(spec.model,)):
        st.switch_page("app_pages/race.py")


st.title("🎞️ Replay")
st.caption("Record a logged run, replay it at its recorded timing from a local server (no network, "
           "no API), and ask what the user would see if the model were slower, or stalled. "
           "Replayed and simulated runs are logged as such, never as live measurements.")
try:
    store = run_log(current_settings().database_url)
    recordings = replay.Recordings(store)
    record(store, recordings)
    saved = library(recordings)
except StreamRaceError as error:
    st.error(error.message)
    st.stop()
what_if(saved)
