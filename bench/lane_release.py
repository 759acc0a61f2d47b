"""How close together a race's lanes leave: the release spread (goal ≤ 1 ms), the spread of
the requests on the wire, and each lane's TTFT error against its script.

    .venv/bin/python bench/lane_release.py [--races 50] [--lanes 3]

Races of N lanes (lib.race, the app's path) against two playback servers in this process of
known, different speeds (first word at 100 ms and 300 ms), half the lanes blocking: per race,
max − min of the lanes' t_run (the release spread, docs/metrics.md) and of their t0 (the
requests leaving), and per streamed lane its measured TTFT minus the scripted one. The last
line is `release_spread_p99_ms=…`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `make bench` runs us by path

from lib.core import metrics  # noqa: E402
from lib.core.calls import warm_up  # noqa: E402
from lib.core.trace import MODES, Params  # noqa: E402
from lib.endpoints import Endpoint  # noqa: E402
from lib.race import Lane, run_headless  # noqa: E402
from lib.serving.playback import PlaybackServer, Script  # noqa: E402

SCRIPTS = {"quick": Script.regular(ttft_s=0.1, gap_s=0.01, n=10),
           "slow": Script.regular(ttft_s=0.3, gap_s=0.02, n=10)}


def ms(values: list[float], q: float) -> float:
    return (metrics.percentile(values, q) or 0.0) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--races", type=int, default=50)
    parser.add_argument("--lanes", type=int, default=3, choices=(2, 3, 4))
    args = parser.parse_args()
    warm_up()
    with PlaybackServer(SCRIPTS) as server:
        endpoints = [Endpoint("compatible", model, {m: server.base_url for m in MODES})
                     for model in SCRIPTS]
        lanes = [Lane(endpoints[i % 2], MODES[(i // 2 + 1) % 2], label=f"lane {i + 1}")
                 for i in range(args.lanes)]
        release, sent, errors = [], [], []
        for index in range(args.races + 1):
            traces = run_headless(lanes, f"release {index}", Params(), None)
            if index == 0:
                continue  # the first race pays for first connections: not counted
            release.append(metrics.release_spread_s(traces) or 0.0)
            sent.append(metrics.sent_spread_s(traces) or 0.0)
            errors += [(metrics.ttft_s(t) or 0.0) - SCRIPTS[t.request.model].offsets[0]
                       for t in traces if t.mode == "streaming"]
    print(f"{args.races} races of {args.lanes} lanes ({', '.join(lane.mode for lane in lanes)}), "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"release spread: p50 {ms(release, 50):.3f} ms, p99 {ms(release, 99):.3f} ms, "
          f"max {max(release) * 1000:.3f} ms; within 1 ms: "
          f"{sum(r <= 0.001 for r in release)} of {len(release)}")
    print(f"requests sent spread: p50 {ms(sent, 50):.2f} ms, p99 {ms(sent, 99):.2f} ms")
    print(f"streamed TTFT − script: p50 {ms(errors, 50):.2f} ms, p99 {ms(errors, 99):.2f} ms")
    print(f"release_spread_p99_ms={ms(release, 99):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
