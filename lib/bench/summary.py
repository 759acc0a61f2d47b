"""A benchmark's summary (live or from the run log), its tables, and the progress line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from lib.core import metrics
from lib.core.errors import InvalidInput
from lib.core.metrics import ModeSummary, Slo
from lib.core.trace import MODES, Trace
from lib.storage.store import RUN_COLUMNS, Store, trace_to_row


@dataclass(frozen=True)
class Progress:
    """A snapshot for a progress bar: counts and the running p50s of the measured calls."""

    phase: str
    """`warmup`, `measured` or `done`."""
    done: int
    total: int
    warmup_done: int
    warmup_total: int
    in_flight: int
    errors: int
    elapsed_s: float
    p50: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """mode → {"ttft_s": …, "perceived_s": …} over the measured calls done so far."""

    @property
    def fraction(self) -> float:
        total = self.total + self.warmup_total
        return (self.done + self.warmup_done) / total if total else 1.0



@dataclass(frozen=True)
class BenchSummary:
    """A benchmark's summary: per mode, counts, rates, goodput and a distribution per metric
    (definitions in lib.metrics.summarize). Built the same way from a live benchmark and from
    the run log."""

    bench_id: str
    created_at: str
    endpoint: dict
    settings: dict
    status: str
    duration_s: float | None
    slo: Slo
    modes: dict[str, ModeSummary]
    note: str | None = None
    errors: tuple[dict, ...] = ()
    """What went wrong: one entry per mode and error kind, with a count and the first message."""

    @classmethod
    def of(cls, record: dict, traces: Sequence[Trace], slo: Slo, note: str | None = None
           ) -> "BenchSummary":
        measured = [t for t in traces if t.bench_phase == "measured"]
        settings = record["settings"]
        modes = [m for m in MODES if m in settings.get("modes", MODES)]
        return cls(
            bench_id=record["bench_id"], created_at=record["created_at"],
            endpoint={k: record[k] for k in ("endpoint_kind", "base_url", "model")},
            settings=settings, status=record["status"], duration_s=record["duration_s"],
            slo=slo, note=note,
            modes={m: metrics.summarize(measured, m, record["duration_s"], slo) for m in modes},
            errors=error_groups(measured),
        )

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def title(self) -> str:
        s = self.settings
        load = (f"{s['rate']:g} req/s" + (" Poisson" if s.get("poisson") else "")
                if s.get("rate") else f"concurrency {s.get('concurrency')}")
        if s.get("workers"):
            load += f" · {s['workers']} Ray workers"
        return (f"{self.created_at[:19].replace('T', ' ')} · {self.endpoint['model']} · "
                f"{s.get('prompts')} · {s.get('requests')} requests · {load} · {self.status}")

    def counts_frame(self) -> pd.DataFrame:
        """One row per mode: counts, throughput, error rate and goodput."""
        return pd.DataFrame([{
            "mode": m.mode, "requests": m.requests, "ok": m.ok, "errors": m.errors,
            "cancelled": m.cancelled, "req/s": m.request_throughput_rps,
            "good": m.good, "goodput req/s": m.goodput_rps,
            "goodput %": _percent(m.goodput_ratio), "error %": _percent(m.error_rate),
            "output tok/s": m.output_token_throughput_tps,
            **({"valid objects": m.valid_objects} if m.valid_objects is not None else {}),
        } for m in self.modes.values()])

    def errors_frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.errors), columns=["mode", "error_kind", "count", "error"])

    def percentiles_frame(self) -> pd.DataFrame:
        """One row per mode and metric that has values: n, mean and percentiles in ms (tokens/s
        for output_tps). A blocking call has no TPOT and no ICL: those rows are left out."""
        rows = []
        for name in (*metrics.SUMMARY_METRICS, *metrics.STRUCTURED_SUMMARY_METRICS):
            for m in self.modes.values():
                d = m.metrics.get(name)
                if d is None:
                    continue
                if not d.n:
                    continue
                scale, unit = (1.0, "tok/s") if name == "output_tps" else (1000.0, "ms")
                rows.append({"metric": name, "mode": m.mode, "unit": unit, "n": d.n, **{
                    k: getattr(d, k) * scale for k in ("mean", "p50", "p90", "p95", "p99")}})
        return pd.DataFrame(rows, columns=["metric", "mode", "unit", "n", "mean", "p50", "p90",
                                           "p95", "p99"])


def error_groups(traces: Sequence[Trace]) -> tuple[dict, ...]:
    """The failed traces grouped by mode and error kind, most frequent first: a benchmark
    against a broken endpoint says why in one line per cause, not once per request."""
    groups: dict[tuple[str, str], dict] = {}
    for trace in traces:
        if trace.status == "error":
            key = (trace.mode, trace.error_kind or "error")
            group = groups.setdefault(key, {"mode": key[0], "error_kind": key[1], "count": 0,
                                            "error": trace.error or ""})
            group["count"] += 1
    return tuple(sorted(groups.values(), key=lambda g: (-g["count"], g["mode"], g["error_kind"])))


def logged_summary(store: Store, bench_id: str, slo: Slo | None = None) -> BenchSummary:
    """The summary of a benchmark in the run log, computed as for a live one (against `slo`,
    else the benchmark's own objectives)."""
    record = store.benchmark(bench_id)
    if record is None:
        raise InvalidInput(f"There is no benchmark {bench_id} in the run log.")
    if slo is None:
        slo = Slo(**record["settings"].get("slo", {}))
    return BenchSummary.of(record, store.bench_traces(bench_id), slo)


def _percent(ratio: float | None) -> float | None:
    return None if ratio is None else 100.0 * ratio


def compare_frame(summaries: Sequence[BenchSummary],
                  metric_names=("ttft_s", "perceived_s", "e2e_s"),
                  labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Benchmarks side by side: per benchmark (or per `labels`, e.g. the endpoints of one run)
    and mode, p50 and p99 (ms) and goodput."""
    rows = []
    for index, summary in enumerate(summaries):
        label = labels[index] if labels is not None else summary.bench_id[:8]
        for m in summary.modes.values():
            row = {"benchmark" if labels is None else "endpoint": label, "mode": m.mode,
                   "requests": m.requests,
                   "req/s": m.request_throughput_rps, "goodput %": _percent(m.goodput_ratio),
                   "error %": _percent(m.error_rate)}
            for name in metric_names:
                d = m.metrics[name]
                for q in ("p50", "p99"):
                    value = getattr(d, q)
                    row[f"{name} {q} ms"] = None if value is None else value * 1000.0
            rows.append(row)
    return pd.DataFrame(rows)


def results_frame(traces: Sequence[Trace]) -> pd.DataFrame:
    """The run-log rows of these calls (the CSV export)."""
    return pd.DataFrame([trace_to_row(t) for t in traces], columns=list(RUN_COLUMNS))


def progress_line(p: Progress) -> str:
    """One line of progress: counts, then each mode's running p50 TTFT and blank screen."""
    if p.phase == "warmup":
        head = f"warm-up {p.warmup_done}/{p.warmup_total}"
    else:
        head = f"{p.done}/{p.total} requests"
    parts = [head, f"{p.in_flight} in flight", f"{p.errors} errors", f"{p.elapsed_s:.1f} s"]
    for mode, values in p.p50.items():
        shown = [f"{label} {_ms(values.get(name))}" for name, label in
                 (("ttft_s", "ttft"), ("perceived_s", "blank"))]
        parts.append(f"{mode} p50 " + " ".join(shown))
    return " · ".join(parts)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f} ms"


def max_in_flight(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals open at once (an end at the same instant as a start closes first):
    the concurrency a run really reached."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak
