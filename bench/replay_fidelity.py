"""How faithfully the replay endpoint plays a recording, measured through the real race.

A recording (300 ms to the first chunk, then 80 chunks about 15 ms apart, seeded jitter) is
saved in a temporary run log and raced RACES times against the app's own replay server (a
process of its own, as the app starts it), as recorded and under a what-if transform. Each
race's streaming TTFT, E2E and median ICL, and its blocking E2E, are compared with what the
timeline says they should be. The errors include the loopback accept delay (the request's
bytes to the server's receipt), which a replay adds to the recorded TTFT by design.

    python bench/replay_fidelity.py [--races 10]

The last line is the figure: the median absolute TTFT error, in ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib import replay  # noqa: E402
from lib.core import metrics  # noqa: E402
from lib.core.config import Settings  # noqa: E402
from lib.core.trace import Params  # noqa: E402
from lib.endpoints.resolve import resolve  # noqa: E402
from lib.race import run_headless  # noqa: E402
from lib.replay import Recording, Recordings, Spec, Transform, play, timeline_trace  # noqa: E402
from lib.storage.store import Store  # noqa: E402


def recording() -> Recording:
    regular = tuple(0.3 + 0.015 * i for i in range(80))
    offsets = replay.add_jitter(regular, 0.004, seed=11)
    return Recording("bench", offsets, tuple(f"w{i} " for i in range(80)), output_tokens=80,
                     input_tokens=12, token_source="server", blocking_at_s=offsets[-1] + 0.01)


def errors_ms(endpoint, transform: Transform, races: int, rec: Recording) -> dict[str, list[float]]:
    expected = timeline_trace(play(rec, transform))
    blocking_at = play(rec, transform).blocking_at_s
    found: dict[str, list[float]] = {"ttft": [], "e2e": [], "icl_p50": [], "blocking_e2e": []}
    for index in range(races):
        blocking, streaming = run_headless(endpoint, f"bench race {index}", Params(), None)
        assert blocking.status == streaming.status == "ok", (blocking.error, streaming.error)
        found["ttft"].append(metrics.ttft_s(streaming) - metrics.ttft_s(expected))
        found["e2e"].append(metrics.e2e_s(streaming) - metrics.e2e_s(expected))
        found["icl_p50"].append(metrics.icl_p50_s(streaming) - metrics.icl_p50_s(expected))
        found["blocking_e2e"].append(metrics.e2e_s(blocking) - blocking_at)
    return {name: [v * 1000 for v in values] for name, values in found.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--races", type=int, default=10)
    args = parser.parse_args()
    rec = recording()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/runs.db"
        Recordings(Store(url)).save(rec)
        ttft_all = []
        for transform in (Transform(), Transform(time_scale=2, first_chunk_delay_s=0.2)):
            spec = Spec(recording=rec.name, transform=transform)
            endpoint = resolve(Settings(endpoint_kind="replay", model=spec.model,
                                                  database_url=url))
            found = errors_ms(endpoint, transform, args.races, rec)
            print(f"{replay.label(spec)}: {args.races} races, error in ms (replayed − timeline)")
            for name, values in found.items():
                absolute = sorted(abs(v) for v in values)
                print(f"  {name:<13} median {statistics.median(values):+6.2f}  "
                      f"median |·| {statistics.median(absolute):5.2f}  max |·| {absolute[-1]:6.2f}")
            ttft_all += [abs(v) for v in found["ttft"]]
        replay.stop_server()
    print(f"replay fidelity: median |TTFT error| {statistics.median(ttft_all):.2f} ms "
          f"over {len(ttft_all)} races")
    return 0


if __name__ == "__main__":
    sys.exit(main())
