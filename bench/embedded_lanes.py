"""The embedded model under 2, 3 and 4 race lanes: a real comparison, or a queue?

    .venv/bin/python bench/embedded_lanes.py [--rounds 3] [--lanes 2,3,4] [--tokens 96]

Runs real races (lib.race, the app's own path: Mirascope, the openai SDK, httpx) on the
embedded model (lib.serving.embedded: one llama-server process, SLOTS parallel slots), every
lane streamed with the same prompt, and reads per lane its TTFT and tokens/s after the first
token (the server's usage count). A lane that waited for another (a queue) would show its first
token only after another lane had finished; with parallel slots every lane's first token comes
before any lane ends, and the lanes share the machine's cores (tokens/s per lane falls as lanes
are added, their sum stays). Per lane count it prints: TTFT p50 and max, the spread of first
tokens within a race, tokens/s per lane (median, min) and all lanes together, and how many
lanes were queued (first token after another lane's last). The last line is
`four_lane_queued=…, four_lane_tokens_per_s_per_lane=…` (the last lane count measured).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `make bench` runs us by path

from lib.core import metrics  # noqa: E402
from lib.core.config import Settings  # noqa: E402
from lib.core.trace import Params  # noqa: E402
from lib.endpoints.resolve import default_params  # noqa: E402
from lib.endpoints.resolve import resolve as resolve_endpoint  # noqa: E402
from lib.race import Lane, run_headless  # noqa: E402
from lib.serving import embedded  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
WORDS = {2: "two", 3: "three", 4: "four"}


def lanes_of(endpoint, count: int) -> list[Lane]:
    return [Lane(endpoint, "streaming", label=f"lane {i + 1}") for i in range(count)]


def queued(traces) -> int:
    """Lanes whose first token came after another lane of the race had received its last."""
    firsts = [t.chunks[0].t for t in traces if t.chunks]
    lasts = [t.chunks[-1].t for t in traces if t.chunks]
    return sum(1 for first in firsts if any(last < first for last in lasts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lanes", default="2,3,4", help="lane counts to measure (2 to 4)")
    parser.add_argument("--tokens", type=int, default=96, help="max tokens per answer")
    args = parser.parse_args()
    counts = [int(n) for n in args.lanes.split(",")]
    endpoint = resolve_endpoint(Settings("local"))
    # The race's own parameters on the embedded model (its repeat penalty and stop sequence).
    params = default_params(endpoint, **Params(max_tokens=args.tokens, timeout_s=300).as_dict())
    print(f"server: llama-server, 1 process, {embedded.SLOTS} slots x {embedded.threads()} "
          f"threads; {args.tokens} tokens, {args.rounds} races per lane count")
    run_headless(lanes_of(endpoint, 2), PROMPT, params, None)  # a first race, not counted
    last = ""
    for count in counts:
        ttfts, rates, totals, spreads, queue, empty = [], [], [], [], 0, 0
        for _ in range(args.rounds):
            traces = run_headless(lanes_of(endpoint, count), PROMPT, params, None)
            bad = [t for t in traces if t.status != "ok"]
            if bad:
                sys.exit(f"error: a lane failed: {bad[0].error}")
            firsts = [f for f in (metrics.ttft_s(t) for t in traces) if f is not None]
            empty += count - len(firsts)  # the base model may end at once: no first token
            ttfts += firsts
            if len(firsts) >= 2:
                spreads.append(max(firsts) - min(firsts))
            lane_rates = [r for r in (metrics.output_tps(t) for t in traces) if r is not None]
            rates += lane_rates
            totals.append(sum(lane_rates))
            queue += queued(traces)
        print(f"{count} lanes at once: TTFT p50 {statistics.median(ttfts):.3f} s "
              f"(max {max(ttfts):.3f}); first tokens within a race at most "
              f"{max(spreads, default=0):.3f} s apart; tokens/s per lane median "
              f"{statistics.median(rates):.1f} "
              f"(min {min(rates):.1f}), all lanes together {statistics.median(totals):.1f}; "
              f"queued lanes {queue} of {count * args.rounds}"
              + (f" ({empty} answers empty)" if empty else ""))
        last = (f"{WORDS[count]}_lane_queued={queue}, {WORDS[count]}_lane_tokens_per_s_per_lane"
                f"={statistics.median(rates):.1f}")
    print(f"load average: {os.getloadavg()[0]:.2f}")
    embedded.stop_all()
    print(last)
    return 0


if __name__ == "__main__":
    sys.exit(main())
