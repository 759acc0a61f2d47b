"""The benchmark: many requests under load, blocking against streaming (`python -m lib.bench`).

prompts: the prompt sets; plan: settings and what is sent when (pure); runner: the
`Benchmark` that sends them from this process; workers: the `RayBenchmark` that sends them
from N Ray actors; summary: percentiles, goodput, and tables of the outcome.
"""

from lib.bench.plan import (
                            MAX_CONCURRENCY,
                            MAX_REQUESTS,
                            MAX_WORKERS,
                            BenchSettings,
                            arrival_offsets,
                            lane_note,
                            measured_span,
                            plan,
                            suite_params,
                            token_limit,
)
from lib.bench.prompts import PROMPT_SETS, BenchPrompt, PromptSet, load_prompts, parse_prompts
from lib.bench.runner import LIVE_METRICS, STOP_GRACE_S, Benchmark
from lib.bench.summary import (
                            BenchSummary,
                            Progress,
                            compare_frame,
                            error_groups,
                            logged_summary,
                            progress_line,
                            results_frame,
)
from lib.bench.workers import RayBenchmark, benchmark_for

__all__ = [
    "LIVE_METRICS", "MAX_CONCURRENCY", "MAX_REQUESTS", "MAX_WORKERS", "PROMPT_SETS",
    "STOP_GRACE_S", "BenchPrompt", "BenchSettings", "BenchSummary", "Benchmark", "Progress",
    "PromptSet", "RayBenchmark", "arrival_offsets", "benchmark_for", "compare_frame",
    "error_groups", "lane_note", "load_prompts",
    "logged_summary", "measured_span", "parse_prompts", "plan", "progress_line", "results_frame",
    "suite_params", "token_limit",
]
