"""Previews: a playback Script as a Trace, so that metrics and charts need nothing new.
"""

from __future__ import annotations

from collections.abc import Mapping

from lib.core import metrics
from lib.core.trace import Chunk, Mode, Params, Request, Trace
from lib.replay.whatif import Spec, lookup, play
from lib.serving.playback import Script
from lib.storage.recording import Recording


def summary_rows(recordings: list[Recording]) -> list[dict]:
    """One line per recording for a table: what it is, and its timing at a glance."""
    rows = []
    for rec in recordings:
        trace = timeline_trace(play(rec), rec.mode)
        rows.append({
            "name": rec.name, "mode": rec.mode, "chunks": len(rec.offsets),
            "ttft_s": metrics.ttft_s(trace), "e2e_s": metrics.e2e_s(trace),
            "output_tokens": rec.output_tokens, "model": rec.model,
            "created_at": rec.created_at, "prompt": rec.prompt,
        })
    return rows


def timeline_trace(script: Script, mode: Mode = "streaming") -> Trace:
    """The trace a client would record of `script` on an ideal network: t_start = t0 = 0.

    Streaming, one chunk per text piece at its offset; blocking, the whole answer when the
    blocking response leaves.
    """
    if mode == "streaming":
        chunks = [Chunk(o, t) for o, t in zip(script.offsets, script.texts)]
    else:
        at = script.blocking_at_s if script.blocking_at_s is not None else script.offsets[-1]
        chunks = [Chunk(at, script.text)]
    request = Request("(preview)", Params(), "replay", "", "preview")
    return Trace(request=request, mode=mode, t_start=0.0, t0=0.0, chunks=chunks,
                 t_end=chunks[-1].t, output_tokens=script.output_tokens,
                 input_tokens=script.input_tokens, status="ok")


def preview(spec: Spec, recordings: Mapping[str, Recording]) -> tuple[tuple[Trace, Trace] | None,
                                                                    tuple[Trace, Trace]]:
    """(blocking, streaming) preview traces as recorded and as the spec plays them.

    A synthetic profile has a "recorded" pair only when it borrows a recording's text.
    """
    def pair(script: Script) -> tuple[Trace, Trace]:
        return timeline_trace(script, "blocking"), timeline_trace(script, "streaming")

    what_if = pair(spec.script(recordings))
    if spec.profile is None:
        return pair(play(lookup(recordings, spec.recording or ""))), what_if
    if spec.profile.text:
        return pair(play(lookup(recordings, spec.profile.text))), what_if
    return None, what_if
